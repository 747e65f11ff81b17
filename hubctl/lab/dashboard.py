"""The lab's live view: members, master, collection, clients per policy server, failovers."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from pymongo.errors import PyMongoError
from rich.console import Group
from rich.table import Table

from hub.mongo import connect
from hub.store import REPORTS, HubStore
from hubctl.lab.cluster import LabCluster
from hubctl.replset_commands import hub_side, render_hub_side


@dataclass
class Timeline:
    """What the dashboard remembers between refreshes: master changes and their duration."""

    master: str | None = None
    failovers: list[tuple[str, str, float | None]] = field(default_factory=list)
    agent_rounds: int = 0

    def observe(self, lab: LabCluster, master: str | None) -> None:
        if master and master != self.master and self.master is not None:
            took = time.time() - lab.last_kill if lab.last_kill else None
            self.failovers.append((self.master, master, took))
        if master:
            self.master = master


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
        "side": hub_side(lab.uri),
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
    if timeline.failovers:
        old, new, took = timeline.failovers[-1]
        when = f"{took:.1f}s after the kill" if took is not None else "planned"
        facts.add_row("last failover", f"{old} -> {new} ({when})")
    parts.append(facts)
    return Group(*parts)
