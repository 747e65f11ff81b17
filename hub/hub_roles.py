"""Which hub is master, which are standbys, and which have gone silent: judged once, here.

A hub writes its state document every `state_interval` seconds, and that document says
"master" as long as the hub believed it; a hub that died keeps saying it. So the role shown
to an operator is never the one a hub wrote: a hub silent for more than SILENT_INTERVALS of
its own refresh intervals is unreachable, and the master is the hub that runs on the replica
set's primary (matched by the member's `hub` tag or by the member address the hub reported).
`hubctl status`, `hubctl check`, `hubctl masterfiles verify` and the lab dashboard all ask
this module.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from hub.topology import Topology
from hubcluster.durations import format_duration

MASTER, STANDBY, UNREACHABLE = "master", "standby", "unreachable"
# Allows a couple of missed writes (a slow majority, a busy loop) before calling a hub silent.
SILENT_INTERVALS = 4
# What hubd uses when its config does not say; older hubs did not publish their interval.
DEFAULT_STATE_INTERVAL = 15.0


@dataclass(frozen=True)
class HubRole:
    name: str
    member: str | None
    role: str  # MASTER, STANDBY or UNREACHABLE
    silent_for: float | None  # seconds since its last state write; None if it never wrote
    state: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def label(self) -> str:
        """The role as a table shows it."""
        if self.role == MASTER:
            return "master (collects)"
        if self.role == UNREACHABLE:
            if self.silent_for is None:
                return "unreachable (never reported)"
            return f"unreachable (no word for {format_duration(self.silent_for)})"
        return STANDBY

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "member": self.member,
            "role": self.role,
            "silent_for": None if self.silent_for is None else round(self.silent_for, 1),
        }


def _age(now: dt.datetime, when: dt.datetime | None) -> float | None:
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (now - when).total_seconds())


def silent_after(state: dict[str, Any]) -> float:
    """Seconds without a state write after which this hub counts as unreachable."""
    interval = state.get("state_interval") or DEFAULT_STATE_INTERVAL
    return SILENT_INTERVALS * float(interval)


def classify_hubs(
    states: list[dict[str, Any]],
    topology: Topology | None,
    now: dt.datetime,
    expected: list[str] | None = None,
) -> list[HubRole]:
    """Each hub's role, judged from the replica set's view and the age of its state.

    `states` are the hub_state documents; `expected` names hubs that should exist (from a
    config) so that one that never wrote shows up as unreachable.
    """
    primary = topology.primary if topology else None
    primary_hub = None
    if topology is not None and (view := topology.primary_view()) is not None:
        primary_hub = view.hub
    by_name = {s["_id"]: s for s in states}
    roles = []
    for name in sorted(set(by_name) | set(expected or [])):
        state = by_name.get(name, {})
        member = state.get("member")
        silent = _age(now, state.get("updated"))
        if silent is None or silent > silent_after(state):
            role = UNREACHABLE
        elif primary is not None and (member == primary or name == primary_hub):
            role = MASTER
        else:
            role = STANDBY
        roles.append(HubRole(name, member, role, silent, state))
    return roles


def master_of(roles: list[HubRole]) -> HubRole | None:
    return next((r for r in roles if r.role == MASTER), None)
