"""Making a new hub's member electable, and only once the new hub has caught up.

`hubctl member add|replace` leave the new member at priority 0 and a record here of the
priority it should get; promote_ready() raises it once the member is a secondary within
CAUGHT_UP_LAG of the primary and the new hub's own hubd reports (in its hub state) the
set's newest release generation and at least the master hub's count of client keys.
hubctl does the raise with the operator's user: it is a reconfig, and hubd's database user
may not reconfigure the set (hub/db_roles.py).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from pymongo.errors import PyMongoError

from hub import release_generations as generations
from hub.events import now_utc
from hub.hub_roles import DEFAULT_STATE_INTERVAL, SILENT_INTERVALS
from hub.mongo import DB_NAME, SURVIVES_FAILOVER
from hub.replset import ReplicaSet
from hub.replset_config import primary_of, read_config, send_config
from hub.store import HUB_STATE, HubStore
from hub.topology import MemberView, ReplsetError, explain_failure

# Pending priority raises: {_id: host, hub, priority, requested, waiting}.
PROMOTIONS = "member_promotions"
# A new member this close to the primary has caught up (seconds of oplog).
CAUGHT_UP_LAG = 5.0


@dataclass
class Promotion:
    host: str
    hub: str
    priority: float


class Promotions:
    """The pending priority raises of the set behind `rs`."""

    def __init__(self, rs: ReplicaSet) -> None:
        self.rs = rs

    def _promotions(self) -> Any:
        return self.rs.client[DB_NAME].get_collection(PROMOTIONS, write_concern=SURVIVES_FAILOVER)

    def request(self, p: Promotion) -> None:
        doc = {
            "hub": p.hub,
            "priority": p.priority,
            "requested": now_utc(),
            "waiting": "not looked at yet",
        }
        try:
            self._promotions().replace_one({"_id": p.host}, {"_id": p.host, **doc}, upsert=True)
        except PyMongoError as exc:
            raise explain_failure(
                exc, f"{p.hub} was added with priority 0, but its promotion was not recorded"
            ) from None

    def pending(self) -> list[dict[str, Any]]:
        try:
            return list(self._promotions().find())
        except PyMongoError as exc:
            raise explain_failure(exc, "reading pending promotions") from None

    def wait_promoted(self, host: str, timeout: float) -> str:
        """Promote `host` as soon as it has caught up; raise naming what it still lacks."""
        deadline = time.monotonic() + timeout
        while True:
            self.promote_ready()
            pending = next((p for p in self.pending() if p["_id"] == host), None)
            view = self.rs.topology().member(host)
            if pending is None and view.priority > 0:
                return f"{view.label} has caught up and may be elected (priority {view.priority:g})"
            if pending is None:
                raise ReplsetError(f"{view.label} is not waiting to be made electable")
            if time.monotonic() >= deadline:
                raise ReplsetError(
                    f"{view.label} has not caught up within {timeout:g}s ({pending['waiting']}); "
                    f"it stays unelectable until hubctl member promote {pending['hub']} "
                    "finds it has"
                )
            time.sleep(0.5)

    def promote_ready(self) -> list[str]:
        """Raise each pending member that has caught up; one sentence per member raised.

        Caught up means: its member a secondary within CAUGHT_UP_LAG of the primary, and its
        hubd reporting the set's newest release generation and at least the master hub's
        count of client keys. A member short of any stays at priority 0, and its promotion
        record says why.
        """
        pending = self.pending()
        if not pending:
            return []
        topo = self.rs.topology()
        primary = primary_of(topo)
        try:
            states = {s["_id"]: s for s in self.rs.client[DB_NAME][HUB_STATE].find()}
            newest = generations.latest(HubStore(self.rs.client))
        except PyMongoError as exc:
            raise explain_failure(exc, "reading the hubs' states") from None
        master = next((s for s in states.values() if s.get("member") == primary), None)
        said = []
        for p in pending:
            try:
                view: MemberView | None = topo.member(p["_id"])
            except ReplsetError:
                view = None
            if view is None or view.priority > 0:
                # Removed again, or raised by hand: nothing left to wait for.
                self._promotions().delete_one({"_id": p["_id"]})
                continue
            problem: str | None
            if master is None:
                problem = f"the master hub (on {primary}) has not reported its keys"
            else:
                problem = catch_up_problem(
                    view,
                    states.get(p["hub"]),
                    newest.number if newest else None,
                    int(master.get("keys") or 0),
                )
            if problem:
                self._promotions().update_one({"_id": p["_id"]}, {"$set": {"waiting": problem}})
                continue
            self._raise(primary, view, p)
            said.append(f"{view.label} has caught up: priority raised to {p['priority']:g}")
        return said

    def _raise(self, primary: str, view: MemberView, p: dict[str, Any]) -> None:
        config = read_config(self.rs, primary)
        members = [
            {**c, "priority": p["priority"]} if c["host"] == view.name else c
            for c in config["members"]
        ]
        send_config(self.rs, primary, config, members, f"raise {view.label}'s priority")
        self._promotions().delete_one({"_id": p["_id"]})
        message = f"{view.label} has caught up: priority raised to {p['priority']:g}"
        self.rs.event("member-promote", message, member=view.name, hub=p["hub"])


def catch_up_problem(
    view: MemberView | None,
    state: dict[str, Any] | None,
    generation: int | None,
    keys: int,
    max_lag: float = CAUGHT_UP_LAG,
    now: dt.datetime | None = None,
) -> str | None:
    """Why a new hub may not be elected yet, or None when it has caught up."""
    if view is None:
        return "it is not a member of the set"
    if not view.health or view.state != "SECONDARY":
        return f"its member is {view.state}, not SECONDARY"
    if view.lag_seconds is None or view.lag_seconds > max_lag:
        lag = "an unknown time" if view.lag_seconds is None else f"{view.lag_seconds:.1f}s"
        return f"its member lags {lag} behind the primary"
    if state is None:
        return f"its hubd has not reported (no hub state for {view.hub})"
    if state.get("member") != view.name:
        return f"the hub state of {view.hub} is from member {state.get('member')}"
    updated = state.get("updated")
    if isinstance(updated, dt.datetime):
        if updated.tzinfo is None:
            updated = updated.replace(tzinfo=dt.UTC)
        interval = float(state.get("state_interval") or DEFAULT_STATE_INTERVAL)
        age = ((now or now_utc()) - updated).total_seconds()
        if age > SILENT_INTERVALS * interval:
            return f"its hubd last reported {age:.0f}s ago"
    if state.get("generation") != generation:
        return (
            f"its hubd holds release generation {state.get('generation')}, "
            f"the set's is {generation}"
        )
    if int(state.get("keys") or 0) < keys:
        return f"its hubd holds {state.get('keys') or 0} client keys of the master's {keys}"
    return None
