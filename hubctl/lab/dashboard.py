"""The lab's live view: members, master, collection, clients per policy server, failovers."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from pymongo.errors import PyMongoError

from hub.mongo import connect
from hub.replset import ReplicaSet
from hub.store import REPORTS, HubStore
from hub.topology import ReplsetError, Topology
from hubctl.lab.cluster import LabCluster
from hubctl.lab.dashboard_layout import Dashboard
from hubctl.replset_commands import hub_side


@dataclass
class Failover:
    old: str
    new: str
    cause: str | None  # "kill" or "isolate" of the old master; None for a planned move
    took: float | None  # seconds from that cause to the new master being seen

    def describe(self) -> str:
        when = f"{self.took:.1f}s after the {self.cause}" if self.cause else "planned"
        return f"{self.old} -> {self.new} ({when})"


@dataclass
class Timeline:
    """What the dashboard remembers between refreshes: master changes and their duration."""

    master: str | None = None
    master_since: float | None = None
    failovers: list[Failover] = field(default_factory=list)
    agent_rounds: int = 0

    def observe(self, lab: LabCluster, master: str | None, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if master and master != self.master and self.master is not None:
            # Each failover is timed from what happened to the master it replaced, and only
            # if that happened while it was master: an older kill of another hub is no cause.
            action, at = lab.disruptions.get(self.master, (None, None))
            if at is not None and (self.master_since is None or at >= self.master_since):
                self.failovers.append(Failover(self.master, master, action, now - at))
            else:
                self.failovers.append(Failover(self.master, master, None, None))
        if master and master != self.master:
            self.master_since = now
        if master:
            self.master = master


def _topology(uri: str) -> Topology | None:
    rs = ReplicaSet(uri, timeout=2.0)
    try:
        return rs.topology()
    except ReplsetError:
        return None
    finally:
        rs.close()


def snapshot(lab: LabCluster, timeline: Timeline) -> dict:
    status = lab.status()
    timeline.observe(lab, status["master"])
    client = connect(lab.uri, timeout=2.0)
    try:
        reports = HubStore(client).reading(REPORTS).estimated_document_count()
    except PyMongoError:
        reports = None
    finally:
        client.close()
    services = {h.service: h.name for h in lab.hubs}
    pointing = {c: services.get(s, s) for c, s in lab.policy_servers().items()}
    return {
        "status": status,
        "reports": reports,
        "per_server": dict(Counter(pointing.values())),
        "clients": pointing,
        "side": hub_side(lab.uri, _topology(lab.uri)),
        "timeline": timeline,
    }


def render(snap: dict) -> Dashboard:
    """The dashboard for `snap`; it lays itself out for the console it is printed on."""
    return Dashboard(snap)
