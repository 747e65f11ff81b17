"""What the overview page shows, gathered in one blocking call (run in a thread).

Read from secondaries within the staleness bound, like `hubctl query`: hub states, the
last round, counts of clients by last contact, and the fleet's compliance as the master
recorded it after its last round (hub.compliance_history); never a document per host.
Roles come from hub.hub_roles (the one judgement of master/standby/unreachable).
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import Any

import pymongo
from pymongo import monitoring
from pymongo.database import Database

from hub import compliance_history as ch
from hub.health_check import Thresholds
from hub.hub_roles import classify_hubs, master_of
from hub.portal.host_listing import count_matching
from hub.queries import Queries, read_preference
from hub.replset import ReplicaSet
from hub.store import HOSTS, LAST_SEEN, HubStore


class AnsweredBy(monitoring.CommandListener):
    """Which member answered this thread's latest command: the page says where it read."""

    def __init__(self) -> None:
        self._local = threading.local()

    def last(self) -> str | None:
        return getattr(self._local, "member", None)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        host, port = event.connection_id
        self._local.member = f"{host}:{port}"

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@dataclass
class Reader:
    """The portal's database handles; one per hubd, shared by every request."""

    client: pymongo.MongoClient
    replset: ReplicaSet
    answered: AnsweredBy
    max_staleness: float

    @property
    def queries(self) -> Queries:
        return Queries(self.client, read_preference("secondaryPreferred", self.max_staleness))

    @property
    def store(self) -> HubStore:
        return HubStore(self.client, self.max_staleness)

    def close(self) -> None:
        self.replset.close()
        self.client.close()


def client_counts(db: Database, now: dt.datetime, stale_after: float) -> dict[str, int]:
    """Registered clients fresh, stale and never seen, counted in the database."""
    total = count_matching(db[HOSTS], {})
    seen = count_matching(db[LAST_SEEN], {})  # every contact sets `latest` (record_last_seen)
    cutoff = now - dt.timedelta(seconds=stale_after)
    fresh = count_matching(db[LAST_SEEN], {"latest": {"$gte": cutoff}})
    return {"total": total, "fresh": fresh, "stale": seen - fresh, "never": max(0, total - seen)}


def fleet_compliance(db: Database) -> dict[str, Any]:
    """The master's newest compliance record (hub.compliance_history), else counted now."""
    newest = ch.recent(db[ch.COMPLIANCE_HISTORY], 1)
    return newest[0] if newest else ch.fleet_compliance(db)


def gather_overview(reader: Reader, expected: list[str]) -> dict[str, Any]:
    """Blocking: everything the overview shows, with when it was read and from where."""
    now = dt.datetime.now(dt.UTC)
    topology = reader.replset.topology()
    store, queries = reader.store, reader.queries
    states = store.hub_states()
    roles = classify_hubs(states, topology, now, expected)
    members = {m.hub or m.name: m for m in topology.members}
    hubs = []
    for role in roles:
        member = members.get(role.name)
        hubs.append(
            {
                "name": role.name,
                "role": role.role,
                "label": role.label,
                "member": role.member,
                "member_state": member.state if member else None,
                "health": member.health if member else None,
                "lag": None if member is None else member.lag_seconds,
                "release": role.state.get("release"),
                "generation": role.state.get("generation"),
                "problems": role.state.get("problems") or [],
            }
        )
    master = master_of(roles)
    rounds = store.last_rounds(1)
    fleet = fleet_compliance(queries.db)
    answered = reader.answered.last()
    return {
        "now": now,
        "hubs": hubs,
        "master": master.name if master else None,
        "last_round": rounds[0] if rounds else None,
        "primary": topology.primary,
        "maintenance": topology.maintenance,
        "frozen": {
            m.name: m.frozen_until
            for m in topology.members
            if m.frozen_until is not None and m.frozen_until > now
        },
        "clients": client_counts(queries.db, now, Thresholds().stale_after),
        "compliance": {
            k: fleet.get(k) for k in ("hosts", "reporting", "compliant", "share", ch.TIME)
        },
        "answered_by": answered,
    }
