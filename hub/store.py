"""The hub's data in MongoDB (db `cfreport`): reports, cursors, hosts, rounds, last-seen.

Writes go to the primary with majority write concern, so what a hub stored survives a
failover; reads that serve operators go to secondaries (secondaryPreferred with a staleness
bound) so they never load the collector and keep answering while the primary is away.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pymongo
from pymongo import ASCENDING, DESCENDING, IndexModel, UpdateOne
from pymongo.read_preferences import SecondaryPreferred, _ServerMode
from pymongo.write_concern import WriteConcern

from hub.mongo import DB_NAME

MAJORITY = WriteConcern("majority", wtimeout=10_000)

REPORTS = "reports"
CURSORS = "cursors"
HOSTS = "hosts"
ROUNDS = "rounds"
LAST_SEEN = "last_seen"
HUB_STATE = "hub_state"
REJECTED = "rejected_reports"


REPORT_BODY = ("kind", "time", "payload")


def report_id(host: str, seq: int) -> str:
    # One id per (host key, sequence): a report stored twice is the same document.
    return f"{host}/{seq:016d}"


@dataclass(frozen=True)
class Pull:
    """What one host's report service returned past its cursor, and the cursor's next value."""

    host: str
    records: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    newest: int
    pulled_at: dt.datetime


def _insert_once(
    host: str, record: dict[str, Any], now: dt.datetime, hub: str, fields: tuple[str, ...]
) -> UpdateOne:
    body = {name: record[name] for name in fields}
    doc = {"host": host, "seq": record["seq"], **body, "stored": now, "stored_by": hub}
    return UpdateOne({"_id": report_id(host, record["seq"])}, {"$setOnInsert": doc}, upsert=True)


class HubStore:
    """Typed access to the collections over one pymongo client, shared by the parts using it."""

    def __init__(self, client: pymongo.MongoClient, max_staleness: float = 90.0) -> None:
        self.client = client
        self.db = client.get_database(DB_NAME, write_concern=MAJORITY)
        self.read_preference: _ServerMode = SecondaryPreferred(max_staleness=int(max_staleness))

    def reading(self, name: str, read_preference: _ServerMode | None = None) -> Any:
        return self.db.get_collection(name, read_preference=read_preference or self.read_preference)

    def ensure_indexes(self) -> None:
        self.db[REPORTS].create_indexes(
            [
                IndexModel([("host", ASCENDING), ("seq", ASCENDING)], name="host_seq", unique=True),
                IndexModel([("kind", ASCENDING), ("time", DESCENDING)], name="kind_time"),
            ]
        )
        self.db[ROUNDS].create_indexes([IndexModel([("finished", DESCENDING)], name="finished")])
        self.db["events"].create_indexes([IndexModel([("time", ASCENDING)], name="time")])

    # ----- hosts ----------------------------------------------------------------------
    def record_host(
        self, sha: str, hostname: str, address: str, report_port: int, hub: str
    ) -> None:
        now = dt.datetime.now(dt.UTC)
        self.db[HOSTS].update_one(
            {"_id": sha},
            {
                "$set": {
                    "hostname": hostname,
                    "address": address,
                    "report_port": report_port,
                    "registered_by": hub,
                    "updated": now,
                },
                "$setOnInsert": {"registered": now},
            },
            upsert=True,
        )

    def forget_host(self, sha: str) -> None:
        self.db[HOSTS].update_one({"_id": sha}, {"$set": {"revoked": True}})

    def hosts(self) -> list[dict[str, Any]]:
        """Hosts to collect from, read from the primary (the collector runs there anyway)."""
        return list(self.db[HOSTS].find({"revoked": {"$ne": True}}))

    # ----- reports and cursors ---------------------------------------------------------
    def cursors(self) -> dict[str, dict[str, Any]]:
        return {doc["_id"]: doc for doc in self.db[CURSORS].find()}

    def store_pulls(self, pulls: list[Pull], hub: str) -> list[int]:
        """Store many hosts' pulls in one write per collection; returns each pull's new count.

        Reports (and refused ones, kept as evidence) are idempotent upserts keyed by
        (host, seq); cursors move only after both writes are on a majority, and by `$max`,
        so a slower, older round can never move a cursor backwards.
        """
        now = dt.datetime.now(dt.UTC)
        evidence = [
            _insert_once(p.host, r, now, hub, ("reason", "raw")) for p in pulls for r in p.rejected
        ]
        if evidence:
            self.db[REJECTED].bulk_write(evidence, ordered=False)
        reports, owner = [], []
        for index, p in enumerate(pulls):
            for r in p.records:
                reports.append(_insert_once(p.host, r, now, hub, REPORT_BODY))
                owner.append(index)
        counts = [0] * len(pulls)
        if reports:
            result = self.db[REPORTS].bulk_write(reports, ordered=False)
            for op_index in result.upserted_ids:
                counts[owner[op_index]] += 1
        cursors = [
            UpdateOne(
                {"_id": p.host},
                {"$max": {"seq": p.newest}, "$set": {"last_pull": p.pulled_at}},
                upsert=True,
            )
            for p in pulls
        ]
        if cursors:
            self.db[CURSORS].bulk_write(cursors, ordered=False)
        return counts

    def mark_pull(self, host: str, pulled_at: dt.datetime, error: str | None) -> None:
        self.db[CURSORS].update_one(
            {"_id": host},
            {"$set": {"last_attempt": pulled_at, "last_error": error}, "$setOnInsert": {"seq": 0}},
            upsert=True,
        )

    # ----- rounds -------------------------------------------------------------------
    def record_round(self, figures: dict[str, Any]) -> None:
        self.db[ROUNDS].insert_one(dict(figures))

    def last_rounds(self, limit: int = 1) -> list[dict[str, Any]]:
        coll = self.reading(ROUNDS)
        return list(coll.find({}, {"_id": 0}).sort("finished", DESCENDING).limit(limit))

    # ----- hub state and last-seen -------------------------------------------------------
    def set_hub_state(self, hub: str, **fields: Any) -> None:
        fields["updated"] = dt.datetime.now(dt.UTC)
        self.db[HUB_STATE].update_one({"_id": hub}, {"$set": fields}, upsert=True)

    def hub_states(self) -> list[dict[str, Any]]:
        return list(self.reading(HUB_STATE).find().sort("_id", ASCENDING))

    def record_last_seen(self, hub: str, seen: dict[str, dt.datetime]) -> None:
        """Batch of `host -> when` a client contacted `hub`; newer times win."""
        if not seen:
            return
        ops = [
            UpdateOne({"_id": host}, {"$max": {f"hubs.{hub}": when, "latest": when}}, upsert=True)
            for host, when in seen.items()
        ]
        self.db[LAST_SEEN].bulk_write(ops, ordered=False)
