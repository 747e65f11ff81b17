"""The replica set's shape as a hub sees it: members, their states and lag, and the errors
reading or driving it. Built by hub.replset.ReplicaSet.topology(); read by every judgement of
health and role (status, check, the portal, the hub directory).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from pymongo.errors import OperationFailure, PyMongoError, ServerSelectionTimeoutError

# The member tag that names the hub running on a member, e.g. {"hub": "hub1"}.
HUB_TAG = "hub"
DEFAULT_MAX_LAG = 10.0
# mongod's member states; its stateStr for 8 is "(not reachable/healthy)", too long for a table.
STATE_NAMES = {
    0: "STARTUP",
    1: "PRIMARY",
    2: "SECONDARY",
    3: "RECOVERING",
    5: "STARTUP2",
    6: "UNKNOWN",
    7: "ARBITER",
    8: "DOWN",
    9: "ROLLBACK",
    10: "REMOVED",
}


class ReplsetError(RuntimeError):
    """An operation on the set failed; the message is one line an operator can act on."""


class ReplsetUnreachable(ReplsetError):
    """The set cannot be spoken to at all (nobody answers, or it is not the set named)."""


@dataclass
class MemberView:
    name: str
    state: str
    health: bool
    priority: float
    lag_seconds: float | None
    frozen_until: dt.datetime | None = None
    hub: str | None = None  # the hub running on this member, from its `hub` tag
    hidden: bool = False

    @property
    def label(self) -> str:
        """Hub name and address together, as every command shows a member."""
        return f"{self.hub} ({self.name})" if self.hub else self.name


@dataclass
class Topology:
    set_name: str | None
    primary: str | None
    members: list[MemberView] = field(default_factory=list)
    maintenance: dict[str, Any] | None = None
    initiated: bool = True

    def member(self, name: str) -> MemberView:
        """The member named by its address (host:port) or by its hub name."""
        for m in self.members:
            if name in (m.name, m.hub):
                return m
        known = ", ".join(m.label for m in self.members) or "none"
        raise ReplsetError(f"{name} is not a member of the set (members: {known})")

    def primary_view(self) -> MemberView | None:
        return next((m for m in self.members if m.name == self.primary), None)

    def health_code(self, max_lag: float = DEFAULT_MAX_LAG) -> int:
        """0 healthy, 1 degraded (a member down or lagging), 2 no primary."""
        if self.primary is None:
            return 2
        for m in self.members:
            if not m.health or (m.lag_seconds is not None and m.lag_seconds > max_lag):
                return 1
        return 0

    def to_json(self) -> dict[str, Any]:
        def iso(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value else None

        members = []
        for m in self.members:
            row = asdict(m)
            row["frozen_until"] = iso(m.frozen_until)
            members.append(row)
        doc: dict[str, Any] = {"set": self.set_name, "primary": self.primary, "members": members}
        if self.maintenance:
            doc["maintenance"] = {
                "member": self.maintenance["member"],
                "until": iso(self.maintenance["until"]),
            }
        return doc


def hub_tags(config: dict[str, Any]) -> dict[str, str]:
    """host:port -> hub name, from the members' tags in a replica-set config."""
    names = {}
    for c in config.get("members", []):
        name = (c.get("tags") or {}).get(HUB_TAG)
        if name:
            names[c["host"]] = name
    return names


def explain_failure(exc: PyMongoError, what: str) -> ReplsetError:
    if isinstance(exc, ServerSelectionTimeoutError):
        return ReplsetUnreachable(f"{what}: no member reachable ({str(exc).split(',')[0]})")
    if isinstance(exc, OperationFailure):
        return ReplsetError(f"{what}: {exc.details.get('errmsg', exc) if exc.details else exc}")
    return ReplsetError(f"{what}: {exc}")
