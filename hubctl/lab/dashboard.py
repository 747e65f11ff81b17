"""The lab's live view: members, master, collection, clients per policy server, failovers."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from pymongo.errors import PyMongoError
from rich.console import Group
from rich.table import Table

from hub.mongo import connect
from hub.replset import ReplicaSet, ReplsetError, Topology
from hub.store import REPORTS, HubStore
from hubctl.lab.cluster import LabCluster
from hubctl.replset_commands import hub_side, render_hub_side


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
    per_server = Counter(services.get(s, s) for s in lab.policy_servers().values())
    return {
        "status": status,
        "reports": reports,
        "per_server": dict(per_server),
        "side": hub_side(lab.uri, _topology(lab.uri)),
        "timeline": timeline,
    }


def render(snap: dict) -> Group:
    status, timeline = snap["status"], snap["timeline"]
    hubs = Table(
        title=f"hubcluster lab - master: {status['master'] or 'NONE'}", title_justify="left"
    )
    for column in ("Hub", "mongod", "hubd", "Service", "Clients pointing here"):
        hubs.add_column(column)
    for h in status["hubs"]:
        state = h["mongod"] + (" (isolated)" if h["isolated"] else "")
        if h["mongod"] == "PRIMARY":
            state = f"[bold green]{state}[/]"
        hubs.add_row(
            h["name"], state, h["hubd"], h["service"], str(snap["per_server"].get(h["name"], 0))
        )
    parts = [hubs]
    if snap["side"]:
        parts.append(render_hub_side(snap["side"]))
    facts = Table.grid(padding=(0, 2))
    facts.add_row("reports stored", str(snap["reports"] if snap["reports"] is not None else "?"))
    facts.add_row("agent rounds run", str(timeline.agent_rounds))
    for h in status["hubs"]:
        if h.get("portal"):
            facts.add_row(f"portal of {h['name']}", h["portal"])
    if timeline.failovers:
        facts.add_row("last failover", timeline.failovers[-1].describe())
    parts.append(facts)
    return Group(*parts)
