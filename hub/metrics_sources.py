"""Setting the hub's state gauges before a scrape, from what hubd holds and a few cheap looks.

Per scrape: the role (the master watch's word), the set's members (one replSetGetStatus to
this hub's own member) and the generation served. The fleet and key figures need reads of
a size that grows with the fleet, so they are read at most every FLEET_CACHE_SECONDS, in the
background, and a scrape shows the cached figures with their age: only the first waits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pymongo
from pymongo.errors import PyMongoError
from pymongo.read_preferences import PrimaryPreferred

from hub.health_check import Thresholds
from hub.masterfiles import current_release_id
from hub.metrics import HubMetrics
from hub.mongo import DB_NAME, connect_member
from hub.queries import Queries
from hub.release_generations import publish_seconds, served_generation
from hub.store import HOSTS, LAST_SEEN
from hubcluster.report_kinds import STATUSES

if TYPE_CHECKING:
    from hub.node import HubNode

log = logging.getLogger("hubcluster.metrics")

FLEET_CACHE_SECONDS = 60.0
# A client unseen this long is stale: the same bound `hubctl check` warns on.
STALE_AFTER = Thresholds().stale_after
MEMBER_TIMEOUT = 1.5


@dataclass
class FleetFigures:
    fresh: int = 0
    stale: int = 0
    never_seen: int = 0
    compliance: float | None = None
    outcomes: dict[str, int] = field(default_factory=dict)
    keys: int = 0
    revoked: int = 0
    taken: float = 0.0  # time.monotonic() when read


def read_fleet(
    db: Any, queries: Queries, keys: int, revoked: int, now: dt.datetime
) -> FleetFigures:
    """Blocking: the fleet's figures from hosts, last_seen and the latest-outcome summaries."""
    figures = FleetFigures(keys=keys, revoked=revoked, taken=time.monotonic())
    known = [d["_id"] for d in db[HOSTS].find({"revoked": {"$ne": True}}, {"_id": 1})]
    seen = {d["_id"]: d.get("latest") for d in db[LAST_SEEN].find({}, {"latest": 1})}
    for sha in known:
        latest = seen.get(sha)
        if latest is None:
            figures.never_seen += 1
            continue
        if latest.tzinfo is None:
            latest = latest.replace(tzinfo=dt.UTC)
        if (now - latest).total_seconds() <= STALE_AFTER:
            figures.fresh += 1
        else:
            figures.stale += 1
    compliance = queries.compliance()
    figures.compliance = compliance["fleet"]["share"]
    figures.outcomes = {s: sum(int(p.get(s, 0)) for p in compliance["promises"]) for s in STATUSES}
    return figures


class MetricSources:
    """Fills one hub's gauges; `refresh()` is awaited by the /metrics route before it answers."""

    def __init__(self, node: HubNode, metrics: HubMetrics) -> None:
        self.node = node
        self.metrics = metrics
        config = node.config
        self.member_client: pymongo.MongoClient = connect_member(
            config.mongo_uri, config.me.mongo, MEMBER_TIMEOUT
        )
        pref = PrimaryPreferred(max_staleness=int(max(90, config.max_staleness)))
        self.queries = Queries(node.client, pref)
        self.db = node.client.get_database(DB_NAME, read_preference=pref)
        self.fleet: FleetFigures | None = None
        self._publish_known: int | None = None  # the generation whose duration is shown
        self._reading: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        node, m = self.node, self.metrics
        m.is_master.set(1 if node.watch.state.is_master else 0)
        m.probe_age.set(max(0.0, time.monotonic() - node.watch.last_answer))
        m.interval.set(node.config.collector.interval)
        await asyncio.to_thread(self._members)
        await asyncio.to_thread(self._generation)
        await self._fleet()

    def _members(self) -> None:
        try:
            status = self.member_client.admin.command("replSetGetStatus")
        except PyMongoError as exc:
            log.debug("metrics: replSetGetStatus not answered: %s", exc)
            self.metrics.member_up.clear()
            self.metrics.member_state.clear()
            self.metrics.member_lag.clear()
            return
        if isinstance(status.get("term"), int):
            self.metrics.election_term.set(status["term"])
        rows = status.get("members", [])
        primary = next((r for r in rows if r.get("state") == 1), None)
        healthy = [r["optimeDate"] for r in rows if r.get("health") and r.get("optimeDate")]
        reference = primary["optimeDate"] if primary else max(healthy, default=None)
        for gauge in (self.metrics.member_up, self.metrics.member_state, self.metrics.member_lag):
            gauge.clear()  # a removed member's series ends
        for row in rows:
            name = self.node.hub_of(row.get("name")) or "?"
            self.metrics.member_up.labels(name).set(1 if row.get("health") else 0)
            self.metrics.member_state.labels(name).set(int(row.get("state", 0) or 0))
            if row.get("health") and reference is not None and row.get("optimeDate"):
                lag = max(0.0, (reference - row["optimeDate"]).total_seconds())
                self.metrics.member_lag.labels(name).set(lag)

    def _generation(self) -> None:
        masterfiles = self.node.config.masterfiles
        generation = served_generation(masterfiles, current_release_id(masterfiles))
        # 0: no release served (a new cluster, or a hub whose masterfiles were lost).
        self.metrics.generation.set(generation or 0)
        if generation and generation != self._publish_known:
            # One small read by _id per scrape, only until the publish has noted its duration.
            try:
                seconds = publish_seconds(self.node.store, generation)
            except PyMongoError as exc:
                log.debug("metrics: publish duration not read: %s", exc)
                return
            self.metrics.publish_seconds.set(float("nan") if seconds is None else seconds)
            if seconds is not None:
                self._publish_known = generation

    async def _fleet(self) -> None:
        """Show the cached figures; read new ones in the background once they are a minute
        old (at 10,000 clients a read takes seconds: no scrape waits for it but the first)."""
        old = self.fleet is None or time.monotonic() - self.fleet.taken >= FLEET_CACHE_SECONDS
        if old and (self._reading is None or self._reading.done()):
            self._reading = asyncio.create_task(self._read_in_thread())
        if self.fleet is None and self._reading is not None:
            await asyncio.shield(self._reading)
        figures = self.fleet
        if figures is None:
            return
        m = self.metrics
        m.clients.labels("fresh").set(figures.fresh)
        m.clients.labels("stale").set(figures.stale)
        m.clients.labels("never_seen").set(figures.never_seen)
        m.compliance.set(float("nan") if figures.compliance is None else figures.compliance)
        for status, count in figures.outcomes.items():
            m.promise_outcomes.labels(status).set(count)
        m.keys.labels("held").set(figures.keys)
        m.keys.labels("revoked").set(figures.revoked)
        m.fleet_age.set(time.monotonic() - figures.taken)

    async def _read_in_thread(self) -> None:
        try:
            self.fleet = await asyncio.to_thread(self._read_fleet)
        except PyMongoError as exc:
            log.warning("metrics: fleet figures not read (kept the last): %s", exc)

    def _read_fleet(self) -> FleetFigures:
        keystore = self.node.keystore
        keys, revoked = len(keystore.keys()), len(keystore.revoked())
        return read_fleet(self.db, self.queries, keys, revoked, dt.datetime.now(dt.UTC))

    def close(self) -> None:
        self.member_client.close()
