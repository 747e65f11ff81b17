"""1,000 clients: every report stored once, every spool pruned, writes shared across hosts.

Slow (a minute or two on 2 cores); CI skips it. Run: scripts/test -m slow
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from tests.cluster.fleet import SETTINGS, collector, stored_seqs

CLIENTS = 1000


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_thousand_clients_two_rounds(store, fleet):
    fleet.make(CLIENTS, reports_each=3)
    settings = dataclasses.replace(SETTINGS, concurrency=50, batch_size=500, expireafter=600)

    async def scenario():
        await fleet.serve()
        fleet.register(store)
        col = collector(store, fleet, settings)
        first = await col.run_round()
        writes = col.writer.writes
        for client in fleet.clients:
            client.produce(1)
        second = await col.run_round()
        await col.close()
        await fleet.close()
        return first, second, writes

    first, second, writes = asyncio.run(scenario())
    assert first.aborted is None and first.failed == {}, first.summary()
    assert (first.pulled, first.stored) == (CLIENTS, 3 * CLIENTS)
    assert (second.pulled, second.stored) == (CLIENTS, CLIENTS)
    assert writes < CLIENTS / 5, f"{writes} writes for {CLIENTS} pulls: no group commit"
    for client in fleet.clients:
        assert stored_seqs(store, client) == client.produced, client.name
    # round 2 asked each client `--since 3`: everything up to there may go from the spools
    assert all(c.spool.status()["acked_seq"] >= 3 for c in fleet.clients)
