"""Maintenance windows: open one so that stopping a member briefly elects nobody, close it.

Opening freezes the other secondaries when the member is the primary, and records the
window in the database, because mongod does not report a member's freeze to anyone and
`status` (and the remediation triggers) must show and respect it. Closing unfreezes the
frozen secondaries and removes the record.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from pymongo.errors import PyMongoError

from hub.events import now_utc
from hub.mongo import DB_NAME, SURVIVES_FAILOVER
from hub.topology import explain_failure

if TYPE_CHECKING:
    from hub.replset import ReplicaSet

MAINTENANCE = "maintenance"


def open_maintenance(rs: ReplicaSet, member: str, seconds: float) -> list[str]:
    """Freeze the other secondaries so that stopping `member` briefly elects nobody."""
    topo = rs.topology()
    view = topo.member(member)
    member, label = view.name, view.label
    until = now_utc() + dt.timedelta(seconds=seconds)
    steps = []
    if topo.primary == member:
        for m in topo.members:
            if m.name != member and m.health and m.state == "SECONDARY":
                rs.freeze(m.name, seconds)
                steps.append(f"froze {m.label} until {until:%Y-%m-%d %H:%M:%S}Z")
    else:
        steps.append(f"{label} is not primary: stopping it causes no election, froze nothing")
    coll = rs.client[DB_NAME].get_collection(MAINTENANCE, write_concern=SURVIVES_FAILOVER)
    try:
        coll.replace_one(
            {"_id": "current"},
            {"_id": "current", "member": member, "started": now_utc(), "until": until},
            upsert=True,
        )
    except PyMongoError as exc:
        raise explain_failure(exc, "recording the maintenance window") from None
    rs.event(
        "maintenance-start",
        f"maintenance of {member} for {seconds:g}s",
        member=member,
        until=until,
    )
    steps.append(f"maintenance window for {label} open until {until:%Y-%m-%d %H:%M:%S}Z")
    return steps


def close_maintenance(rs: ReplicaSet) -> list[str]:
    """Unfreeze the frozen secondaries and close the maintenance window."""
    topo = rs.topology()
    steps = []
    window = topo.maintenance
    for m in topo.members:
        if m.health and m.state == "SECONDARY" and m.frozen_until is not None:
            rs.unfreeze(m.name)
            steps.append(f"unfroze {m.label}")
    try:
        rs.client[DB_NAME].get_collection(MAINTENANCE, write_concern=SURVIVES_FAILOVER).delete_one(
            {"_id": "current"}
        )
    except PyMongoError as exc:
        raise explain_failure(exc, "closing the maintenance window") from None
    who = window["member"] if window else "no open window"
    rs.event("maintenance-end", f"maintenance ended ({who})")
    steps.append("maintenance window closed" if window else "no maintenance window was open")
    return steps
