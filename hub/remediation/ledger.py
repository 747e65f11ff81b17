"""The remediation records in the replica set: what ran (and is running), breakers, pauses.

Every write is a majority write (HubStore's database), so a new master after a failover
reads the same budget, breaker and pause the old one wrote. A remediation is inserted under
its idempotency key (rule, target, evidence) BEFORE it runs: the insert that finds the key
taken is the proof that some master already acted on that evidence, and nothing runs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from hub.store import HubStore

REMEDIATIONS = "remediations"  # one document per decision to act (or to act in a dry run)
RULE_STATE = "remediation_rules"  # per rule: its summary, pause and breaker; "*": all rules
ASKS = "remediation_asks"  # `hubctl remediate HOST --rule R`, taken by the master's next round
RESYNCS = "remediation_resyncs"  # a master's ask that one hub re-sync its masterfiles
ALL_RULES = "*"

RUNNING = "running"
DONE = "done"
FAILED = "failed"
TIMED_OUT = "timed-out"  # outlived the rule's action_timeout (the client stopped its run)
DRY_RUN = "dry-run"
INTERRUPTED = "interrupted"  # its master went away mid-run: counted, never run again


def idempotency_key(rule: str, target: str, evidence: str) -> str:
    return f"{rule}/{target}/{evidence}"


class Ledger:
    def __init__(self, store: HubStore) -> None:
        self.store = store
        self.db = store.db  # the primary: what the master decides on

    def ensure_indexes(self) -> None:
        self.db[REMEDIATIONS].create_indexes(
            [
                IndexModel([("started", DESCENDING)], name="started"),
                IndexModel([("status", ASCENDING)], name="status"),
            ]
        )

    # ----- the records ------------------------------------------------------------------
    def claim(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """Insert `record` under its `_id` (the idempotency key); None when that key is new,
        else the record that holds it already."""
        try:
            self.db[REMEDIATIONS].insert_one(record)
        except DuplicateKeyError:
            return self.db[REMEDIATIONS].find_one({"_id": record["_id"]}) or {}
        return None

    def finish(self, key: str, status: str, result: str, **fields: Any) -> None:
        done = {"status": status, "result": result, "finished": _now(), **fields}
        self.db[REMEDIATIONS].update_one({"_id": key, "status": RUNNING}, {"$set": done})

    def since(self, when: dt.datetime) -> list[dict[str, Any]]:
        """Records started at or after `when`, oldest first (the rounds' budget reads)."""
        return list(self.db[REMEDIATIONS].find({"started": {"$gte": when}}).sort("started", 1))

    def running(self) -> list[dict[str, Any]]:
        return list(self.db[REMEDIATIONS].find({"status": RUNNING}))

    def give_up(self, key: str) -> bool:
        """Mark a running record interrupted; False if it finished meanwhile."""
        changed = self.db[REMEDIATIONS].update_one(
            {"_id": key, "status": RUNNING},
            {"$set": {"status": INTERRUPTED, "finished": _now(), "result": "master changed"}},
        )
        return changed.modified_count == 1

    def history(self, limit: int = 100, rule: str | None = None) -> list[dict[str, Any]]:
        query = {"rule": rule} if rule else {}
        docs = self.db[REMEDIATIONS].find(query).sort("started", -1).limit(limit)
        return list(reversed(list(docs)))

    # ----- rules: summaries, pauses, breakers -----------------------------------------
    def rule_states(self) -> dict[str, dict[str, Any]]:
        return {str(d["_id"]): d for d in self.db[RULE_STATE].find()}

    def publish_rules(self, summaries: dict[str, dict[str, Any]]) -> None:
        for name, summary in summaries.items():
            self.db[RULE_STATE].update_one(
                {"_id": name}, {"$set": {"summary": summary}}, upsert=True
            )

    def set_paused(self, rule: str, paused: bool, by: str) -> bool:
        """Pause or resume `rule` (or ALL_RULES); False when it already was so."""
        old = self.db[RULE_STATE].find_one_and_update(
            {"_id": rule},
            {"$set": {"paused": paused, "paused_by": by, "paused_at": _now()}},
            upsert=True,
        )
        return bool((old or {}).get("paused")) != paused

    def open_breaker(self, rule: str, share: float, limit: float, sentence: str) -> bool:
        """Open `rule`'s breaker; False when it was open already."""
        old = self.db[RULE_STATE].find_one_and_update(
            {"_id": rule},
            {
                "$set": {
                    "breaker": {
                        "open": True,
                        "since": _now(),
                        "share": share,
                        "limit": limit,
                        "message": sentence,
                    }
                }
            },
            upsert=True,
        )
        return not ((old or {}).get("breaker") or {}).get("open")

    def reset_breaker(self, rule: str, by: str) -> bool:
        """Close `rule`'s breaker; False when it was not open."""
        old = self.db[RULE_STATE].find_one_and_update(
            {"_id": rule, "breaker.open": True},
            {"$set": {"breaker": {"open": False, "reset_by": by, "reset_at": _now()}}},
        )
        return old is not None

    def open_breakers(self) -> dict[str, str]:
        """Rule -> the sentence that opened its breaker, for every open breaker."""
        # From a secondary too: `hubctl check` must still answer when there is no primary.
        docs = self.store.reading(RULE_STATE).find({"breaker.open": True})
        return {str(d["_id"]): d["breaker"].get("message", "") for d in docs}

    # ----- asks from hubctl remediate -----------------------------------------------------
    def ask(self, rule: str, target: str, by: str) -> str:
        ask_id = f"{rule}/{target}/{_now().isoformat()}"
        self.db[ASKS].insert_one(
            {"_id": ask_id, "rule": rule, "target": target, "by": by, "asked": _now()}
        )
        return ask_id

    def asks(self) -> list[dict[str, Any]]:
        return list(self.db[ASKS].find().sort("asked", 1))

    def drop_ask(self, ask_id: str) -> None:
        self.db[ASKS].delete_one({"_id": ask_id})


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def aware(when: dt.datetime) -> dt.datetime:
    """pymongo hands back naive UTC datetimes unless told otherwise."""
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
