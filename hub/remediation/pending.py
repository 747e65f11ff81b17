"""The triggers each rule holds before acting, as the master last published them.

The holds live in the master's memory (hub.remediation.engine); after each round's
remediation pass it writes them here, one document for all rules, with majority write
concern, so that `hubctl remediation list` can say "client001 pending 12s, hold ends in
48s". The document names its publisher and when it was written: a figure from a hub that is
no longer master (it died, or lost the primary) is not shown as the cluster's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from hub.hub_roles import MASTER, classify_hubs
from hub.remediation.ledger import aware
from hub.store import HubStore
from hub.topology import Topology

PENDING = "remediation_pending"  # one document, CURRENT, rewritten by the master each round
CURRENT = "current"


@dataclass(frozen=True)
class Waiting:
    """One trigger in its hold: the target, since when it fires, when its hold ends."""

    target: str
    name: str
    since: dt.datetime
    due: dt.datetime

    def to_doc(self) -> dict[str, Any]:
        return {"target": self.target, "name": self.name, "since": self.since, "due": self.due}


def publish(store: HubStore, hub: str, rules: dict[str, list[Waiting]]) -> None:
    """Replace the published holds with this round's (every rule, an empty list too)."""
    doc = {
        "by": hub,
        "published": dt.datetime.now(dt.UTC),
        "rules": {name: [w.to_doc() for w in waiting] for name, waiting in rules.items()},
    }
    store.db[PENDING].replace_one({"_id": CURRENT}, doc, upsert=True)


@dataclass
class PendingView:
    """The published holds as an operator may trust them."""

    by: str | None  # the publishing hub; None: never published
    published: dt.datetime | None
    current: bool  # published by the hub that is master now
    rules: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def of(self, rule: str) -> list[dict[str, Any]] | None:
        """The rule's pending triggers; None when unknown (no current figure for it)."""
        if not self.current:
            return None
        return self.rules.get(rule)


def read_pending(store: HubStore, primary: str | None, now: dt.datetime) -> PendingView:
    """The published holds, judged against the hub that is master now (the one whose member
    is `primary`, and whose state is fresh: hub.hub_roles)."""
    doc = store.db[PENDING].find_one({"_id": CURRENT})
    if not doc:
        return PendingView(None, None, False)
    states = store.hub_states()
    roles = classify_hubs(states, Topology(set_name=None, primary=primary), now)
    master = next((r.name for r in roles if r.role == MASTER), None)
    rules = {
        str(name): [
            {**w, "since": aware(w["since"]), "due": aware(w["due"])} for w in waiting or []
        ]
        for name, waiting in (doc.get("rules") or {}).items()
    }
    by = str(doc.get("by"))
    return PendingView(by, aware(doc["published"]), by == master, rules)
