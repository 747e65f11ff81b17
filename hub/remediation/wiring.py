"""How hubd holds remediation: the engine its master runs after each round, and the upkeep
every hub does (answering re-sync asks, showing breakers in its metrics)."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING

from pymongo.errors import PyMongoError

from hub import release_generations as generations
from hub.health_check import Thresholds
from hub.health_snapshot import failed_items
from hub.remediation.actions import Actions
from hub.remediation.engine import RemediationEngine
from hub.remediation.resync import answer_resyncs, restore_current
from hub.store import HubStore

if TYPE_CHECKING:
    from hub.node import HubNode

log = logging.getLogger("hubcluster.remediation")


def remediation_engine(node: HubNode) -> RemediationEngine:
    config = node.config
    # Through this hub's own member without retries, like the collector: a claim written
    # after this hub lost the primary role fails instead of following the new primary.
    store = HubStore(node.collector_client, config.max_staleness)
    settings = config.remediation.resolved(config.collector.interval)
    limits = Thresholds(
        collect_interval=config.collector.interval, sync_interval=config.sync_interval
    )
    return RemediationEngine(
        store,
        settings,
        node.name,
        lambda: node.watch.state.is_master,
        node.event,
        Actions(
            store,
            settings,
            node.hub_key,
            node.keystore.get,
            config.collector.connect_timeout,
        ),
        node.metrics,
        functools.partial(failed_items, config.mongo_uri, limits),
    )


async def upkeep(node: HubNode) -> None:
    async def sync() -> str:
        root = node.config.masterfiles
        newest = await asyncio.to_thread(generations.latest, node.store)
        restored = await asyncio.to_thread(restore_current, root, newest)
        await node._peer_sync()
        if restored is None:
            return f"{node.name} synced with its peers"
        log.info("masterfiles re-sync: %s", restored)
        await node._publish_state()  # the master judges divergence from this state
        return f"{node.name}: {restored}"

    try:
        await answer_resyncs(node.store, node.name, sync)
        await asyncio.to_thread(node.remediation.refresh_metrics)
    except PyMongoError as exc:
        log.warning("remediation upkeep: the set did not answer: %s", exc)
