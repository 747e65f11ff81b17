"""A publish that cannot be lost: durable once a majority of hubs hold the release.

On the master hub's host: the tree is installed (not yet served), the next release
generation is taken with a majority write, then this hub records that it holds that
generation and serves the release. The other hubs see the new generation within a second
(hubd looks for one, see hub.node) and take the release from any hub serving it; each says
so in its state document. The publish waits until a majority of the configured hubs (or,
with `wait="all"`, every hub not silent) report holding that generation.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hub import release_generations as generations
from hub.config import HubConfig
from hub.hub_directory import hub_names
from hub.hub_roles import UNREACHABLE, classify_hubs
from hub.masterfiles import (
    current_release_id,
    current_release_since,
    publish_release,
    serve_release,
)
from hub.release_generations import Generation
from hub.store import HubStore
from hub.topology import Topology

WAIT_MAJORITY = "majority"
WAIT_ALL = "all"
POLL_SECONDS = 0.25


@dataclass
class Published:
    generation: Generation
    previous: str | None
    holders: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    needed: int = 0
    durable: bool = False
    started: float = field(default_factory=time.monotonic)  # when the install began

    def holders_line(self) -> str:
        held = ", ".join(self.holders) or "no hub"
        line = f"{self.generation.describe()} held by {held} ({len(self.holders)} of "
        line += f"{len(self.holders) + len(self.missing)} hubs"
        return line + (f"; not yet on {', '.join(self.missing)})" if self.missing else ")")


def install_and_record(hub: HubConfig, store: HubStore, source: Path) -> Published:
    """Install `source` here, take its generation (majority write), then serve it."""
    started = time.monotonic()
    root = hub.masterfiles
    previous = current_release_id(root)
    rid = publish_release(root, source, switch=False)
    generation = generations.record(store, rid, generations.tree_hash_of(root, rid), hub.name)
    generations.hold(root, generation)
    serve_release(root, rid)
    store.set_hub_state(
        hub.name,
        release=rid,
        release_since=current_release_since(root),
        generation=generation.number,
    )
    return Published(generation, previous, started=started)


def holders(states: list[dict], generation: Generation) -> list[str]:
    """Hubs whose state says they hold `generation` (or a newer one)."""
    return sorted(s["_id"] for s in states if int(s.get("generation") or 0) >= generation.number)


def wait_for_holders(
    hub: HubConfig,
    store: HubStore,
    topology: Callable[[], Topology | None],
    published: Published,
    wait: str,
    timeout: float,
) -> Published:
    """Wait until enough hubs hold the release; fills in who does and whether it is durable."""
    names = hub_names(hub.hubs, topology())  # a replaced hub no longer counts
    majority = len(names) // 2 + 1
    deadline = time.monotonic() + timeout
    while True:
        states = store.hub_states()
        held = [n for n in holders(states, published.generation) if n in names]
        if wait == WAIT_ALL:
            roles = classify_hubs(states, topology(), dt.datetime.now(dt.UTC), expected=names)
            healthy = [r.name for r in roles if r.role != UNREACHABLE] or names
            needed = max(majority, len(healthy))
            wanted = set(healthy) | set(held)
        else:
            needed = majority
            wanted = set(names)
        published.holders = held
        published.missing = sorted(wanted - set(held))
        published.needed = needed
        published.durable = len(held) >= majority and len(held) >= needed
        if published.durable:
            # On the generation's record, where every hub's /metrics finds it.
            generations.record_publish_seconds(
                store, published.generation, time.monotonic() - published.started
            )
            return published
        if time.monotonic() >= deadline:
            return published
        time.sleep(POLL_SECONDS)
