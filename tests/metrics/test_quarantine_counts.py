"""Issue 20: a report the database refuses is quarantined, and the hub's metric counts it
like the parser's refusals (reason class 'unstorable'), through the collector's own writer."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator

import pytest

from hub.metrics import HubMetrics
from hub.mongo import connect
from hub.store import HubStore, Pull
from hubcluster.report_kinds import INVENTORY
from tests.cluster.fleet import INVENTORY_SAMPLE, Fleet, collector


@pytest.fixture
def store(standin_set) -> Iterator[HubStore]:
    client = connect(standin_set.uri, timeout=10)
    hub_store = HubStore(client)
    hub_store.ensure_indexes()
    yield hub_store
    client.close()


def quarantined(metrics: HubMetrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "hubcluster_reports_quarantined_total", {"reason": reason}
    )
    assert value is not None
    return value


def test_a_report_the_database_refuses_is_counted_as_quarantined(store, tmp_path):
    fleet = Fleet(tmp_path / "clients", tmp_path / "hub")
    (client,) = fleet.make(1, reports_each=0)
    col = collector(store, fleet)
    col.metrics = metrics = HubMetrics("hub1")
    good = {"seq": 1, "time": 1.0, "kind": INVENTORY, "payload": INVENTORY_SAMPLE}
    # An integer BSON cannot hold: nothing before the write checks the payload's values.
    refused = {**good, "seq": 2, "payload": {**INVENTORY_SAMPLE, "uptime": 2**64}}
    pull = Pull(client.sha, [good, refused], [], 2, dt.datetime.now(dt.UTC), "e1", "")

    async def write() -> int:
        try:
            return await col.writer.write(pull)
        finally:
            await col.close()

    assert asyncio.run(write()) == 1
    evidence = store.db["rejected_reports"].find_one({"host": client.sha})
    assert evidence["seq"] == 2 and evidence["reason"].startswith("the database refused it")
    assert quarantined(metrics, "unstorable") == 1
    assert sum(quarantined(metrics, r) for r in ("too_large", "not_json", "bad_shape")) == 0
