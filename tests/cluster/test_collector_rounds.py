"""The collector's ordinary rounds over real SSH against the stand-in: every report stored
exactly once, across rounds and restarts; a failing, hung or impostor client fails alone;
a cancelled round stops its pulls; a kept connection to a vanished client is opened again."""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import time

import asyncssh
import pytest

from hubcluster.report_kinds import INVENTORY
from tests.cluster.fleet import INVENTORY_SAMPLE, SETTINGS, collector, stored_seqs
from tests.cluster.vanishing_relay import VanishingRelay


def test_round_over_tens_of_clients_stores_every_report_once(store, fleet):
    fleet.make(30, reports_each=6)

    async def scenario():
        await fleet.serve()
        fleet.register(store)
        col = collector(store, fleet)
        first = await col.run_round()
        writes = col.writer.writes
        for client in fleet.clients[:10]:
            client.produce(2)
        second = await col.run_round()
        await col.close()
        await fleet.close()
        return first, second, writes

    first, second, writes = asyncio.run(scenario())
    assert first.aborted is None and first.failed == {}
    assert first.pulled == 30 and first.stored == 180
    # 60 pulls (6 reports in batches of 4) shared their writes: group commit happened
    assert writes < 60, writes
    assert second.stored == 20
    for client in fleet.clients:
        assert stored_seqs(store, client) == client.produced
    # the clients pruned what the collector acknowledged on the second ask
    assert all(c.spool.status()["acked_seq"] >= 6 for c in fleet.clients)
    assert store.db["rounds"].count_documents({}) == 2


def test_restart_reuses_cursors_and_stores_nothing_twice(store, fleet):
    fleet.make(5, reports_each=3)

    async def scenario():
        await fleet.serve()
        fleet.register(store)
        for _ in range(3):  # three hubd lifetimes, each with a fresh collector
            col = collector(store, fleet)
            await col.run_round()
            await col.close()
        await fleet.close()

    asyncio.run(scenario())
    assert store.db["reports"].count_documents({}) == 15


def test_wrong_host_key_and_hung_client_fail_alone(store, fleet, tmp_path):
    good, impostor, hung = fleet.make(3)
    # The impostor's service presents another key than the one registered in ppkeys/.
    other = asyncssh.generate_private_key("ssh-ed25519")
    impostor.state.private_key_path.write_bytes(other.export_private_key())
    lock = open(hung.state.spool_dir / "spool.lock", "a+")  # noqa: SIM115 - held for the test
    settings = dataclasses.replace(SETTINGS, expireafter=1.0)

    async def scenario():
        await fleet.serve()
        fleet.register(store)
        fcntl.flock(lock, fcntl.LOCK_EX)  # the hung client's service blocks on its spool
        col = collector(store, fleet, settings)
        t0 = time.monotonic()
        figures = await col.run_round()
        elapsed = time.monotonic() - t0
        fcntl.flock(lock, fcntl.LOCK_UN)
        await col.close()
        await fleet.close()
        return figures, elapsed

    figures, elapsed = asyncio.run(scenario())
    lock.close()
    assert figures.pulled == 1 and stored_seqs(store, good) == good.produced
    assert "host key does not match" in figures.failed[impostor.sha]
    assert figures.failed[hung.sha] == "cancelled after expireafter 1s"
    assert elapsed < 5
    cursor = store.db["cursors"].find_one({"_id": hung.sha})
    assert cursor["last_error"] == "cancelled after expireafter 1s"
    assert stored_seqs(store, hung) == []


def test_ifelapsed_lock_skips_recent_hosts(store, fleet):
    fleet.make(4)
    settings = dataclasses.replace(SETTINGS, ifelapsed=3600)

    async def scenario():
        await fleet.serve()
        fleet.register(store)
        col = collector(store, fleet, settings)
        first = await col.run_round()
        second = await col.run_round()
        await col.close()
        await fleet.close()
        return first, second

    first, second = asyncio.run(scenario())
    assert first.pulled == 4 and second.pulled == 0 and second.skipped == 4


def test_malformed_reports_are_rejected_per_host_with_reason(store, fleet):
    good, bad = fleet.make(2, reports_each=2)
    bad.produced.append(bad.spool.append(INVENTORY, INVENTORY_SAMPLE))

    async def scenario():
        await fleet.serve()
        fleet.register(store)
        huge = "y" * (SETTINGS.max_report_bytes + 10)
        bad.spool.append("inventory", {"blob": huge})
        col = collector(store, fleet)
        figures = await col.run_round()
        await col.close()
        await fleet.close()
        return figures

    figures = asyncio.run(scenario())
    assert figures.pulled == 2 and figures.rejected == 1
    rejected = store.db["rejected_reports"].find_one({"host": bad.sha})
    assert "exceeds the limit" in rejected["reason"]
    assert stored_seqs(store, bad) == bad.produced
    assert store.db["cursors"].find_one({"_id": bad.sha})["seq"] == rejected["seq"]


# ----- structured concurrency (issue 12) ---------------------------------------------------


def test_cancelling_a_round_stops_its_pulls(store, fleet):
    clients = fleet.make(4)
    locks = [open(c.state.spool_dir / "spool.lock", "a+") for c in clients]  # noqa: SIM115
    settings = dataclasses.replace(SETTINGS, expireafter=30, host_timeout=30)

    async def scenario():
        await fleet.serve()
        fleet.register(store)
        for lock in locks:
            fcntl.flock(lock, fcntl.LOCK_EX)  # every service blocks on its spool
        col = collector(store, fleet, settings)
        task = asyncio.create_task(col.run_round())
        deadline = time.monotonic() + 5
        while len(col._connections) < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # the four asks are in flight
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for lock in locks:
            fcntl.flock(lock, fcntl.LOCK_UN)  # the services answer now, to nobody
        await asyncio.sleep(1.5)
        await col.close()
        await fleet.close()

    asyncio.run(scenario())
    for lock in locks:
        lock.close()
    assert store.db["reports"].count_documents({}) == 0
    assert store.db["cursors"].count_documents({}) == 0


def test_a_reused_connection_to_a_client_that_rebooted_is_opened_again_at_once(store, fleet):
    """No keepalive on the collector's connections (hubcluster.ssh_options): a client that
    vanished is found out when the next round uses its connection, and that round opens a
    new one and collects it, rather than failing it for a round."""
    (client,) = fleet.make(1, reports_each=2)

    async def scenario():
        await fleet.serve()
        relay = VanishingRelay(client.port)
        port = await relay.start()
        store.record_host(client.sha, client.name, "127.0.0.1", port, hub="hub1")
        col = collector(store, fleet)
        first = await col.run_round()
        relay.vanish()
        client.produce(2)
        second = await col.run_round()
        await col.close()
        await relay.close()
        await fleet.close()
        return first, second, col.connects

    first, second, connects = asyncio.run(scenario())
    assert first.failed == {} and second.failed == {}, second.failed
    assert (first.stored, second.stored, connects) == (2, 2, 2)
    assert stored_seqs(store, client) == client.produced
