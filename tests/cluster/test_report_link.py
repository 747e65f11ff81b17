"""The collector asks each client on one kept `reports --stream` channel (hub.report_stream),
falls back to a channel per ask for a client from before streams, and treats a stream that
breaks its framing as a failed pull that stores nothing."""

from __future__ import annotations

import asyncio
import json
import logging

from hubcluster.report_kinds import INVENTORY
from tests.cluster.fleet import INVENTORY_SAMPLE, collector, stored_seqs
from tests.cluster.hostile_service import start_line_service


def _report(seq: int) -> str:
    record = {"seq": seq, "epoch": "e-link", "time": 1.0, "kind": INVENTORY}
    return json.dumps({**record, "payload": INVENTORY_SAMPLE})


def test_rounds_ask_on_one_kept_stream(store, fleet):
    clients = fleet.make(2, reports_each=6)  # more than a batch (4): asked twice a round

    async def scenario():
        await fleet.serve()
        fleet.register(store)
        col = collector(store, fleet)
        rounds = [await col.run_round()]
        for client in clients:
            client.produce(3)
        rounds.append(await col.run_round())
        rounds.append(await col.run_round())  # nothing new: one ask, answered empty
        channels = [col._connections[c.sha].channels for c in clients]
        await col.close()
        await fleet.close()
        return rounds, channels

    rounds, channels = asyncio.run(scenario())
    assert [r.stored for r in rounds] == [12, 6, 0] and not any(r.failed for r in rounds)
    for client in clients:
        assert stored_seqs(store, client) == client.produced == list(range(1, 10))
    assert channels == [1, 1]  # five asks each, on one channel


def test_a_client_from_before_streams_is_asked_a_channel_per_ask(store, fleet):
    (old,) = fleet.make(1, reports_each=0)
    lines = [(seq, _report(seq)) for seq in range(1, 4)]

    async def scenario():
        old.acceptor = await start_line_service(old.state, lambda: lines, streams=False)
        fleet.register(store)
        col = collector(store, fleet)
        rounds = [await col.run_round(), await col.run_round()]
        channels = col._connections[old.sha].channels
        await col.close()
        await fleet.close()
        return rounds, channels

    rounds, channels = asyncio.run(scenario())
    assert [r.stored for r in rounds] == [3, 0] and not any(r.failed for r in rounds)
    assert stored_seqs(store, old) == [1, 2, 3]
    assert channels == 3  # the refused stream, then one per ask: never a stream again


def test_a_stream_that_breaks_its_framing_fails_the_pull_and_stores_nothing(store, fleet, caplog):
    cut, chatty = fleet.make(2, reports_each=0)
    lines = [(seq, _report(seq)) for seq in range(1, 4)]
    # A last line, then a report in the same packet: the answer would run into the next.
    trailing = [*lines, (4, "#end\n" + _report(4))]

    async def scenario():
        cut.acceptor = await start_line_service(cut.state, lambda: lines, end=False)
        chatty.acceptor = await start_line_service(chatty.state, lambda: trailing)
        fleet.register(store)
        col = collector(store, fleet)
        with caplog.at_level(logging.INFO):
            figures = await col.run_round()
        await col.close()
        await fleet.close()
        return figures

    figures = asyncio.run(scenario())
    assert figures.failed == {
        cut.sha: "the report service closed its stream inside an answer",
        chatty.sha: "the report service sent more after the end of its answer",
    }
    assert stored_seqs(store, cut) == [] and stored_seqs(store, chatty) == []
    assert store.db["cursors"].count_documents({"seq": {"$gt": 0}}) == 0
    assert not [r for r in caplog.records if r.exc_info]
