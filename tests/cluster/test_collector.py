"""The master's collector over real SSH against the stand-in: exactly once, across failovers."""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import time

import asyncssh
import pytest
from pymongo import WriteConcern
from pymongo.errors import NotPrimaryError

from hub.config import parse_hub_config
from hub.keystore import KeyStore
from hub.master_watch import MasterWatch
from hub.mongo import connect, connect_member
from hub.node import HubNode
from hub.store import HubStore
from hubcluster.keys import ensure_key_pair
from tests.cluster.fleet import SETTINGS, collector, stored_seqs
from tests.conftest import wait_until


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
    # A report that cannot be stored as is: its payload is a string.
    bad.produced.append(bad.spool.append("inventory", {"x": 1}))

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


def test_not_master_writes_nothing(store, fleet):
    fleet.make(3)

    async def scenario():
        await fleet.serve()
        fleet.register(store)
        col = collector(store, fleet, is_master=lambda: False)
        figures = await col.run_round()
        await col.close()
        await fleet.close()
        return figures

    figures = asyncio.run(scenario())
    assert figures.aborted == "not master"
    assert store.db["reports"].count_documents({}) == 0


async def _ignore(old, new):
    return None


def test_primary_killed_mid_round_then_new_master_finishes(standin_set, store, fleet):
    fleet.make(24, reports_each=8)
    slow = dataclasses.replace(SETTINGS, concurrency=2, batch_size=2)

    async def scenario():
        await fleet.serve()
        fleet.register(store)
        old = standin_set.primary()
        watch = MasterWatch(standin_set.uri, old, on_change=_ignore)
        stop = asyncio.Event()
        watching = asyncio.create_task(watch.run(stop))
        await asyncio.sleep(0.3)
        # as in hubd: the collector writes through its own member, without retries
        own = HubStore(connect_member(standin_set.uri, old, timeout=3, retryWrites=False))
        col = collector(own, fleet, slow, is_master=lambda: watch.state.is_master)
        task = asyncio.create_task(col.run_round())
        while col.progress.get("done", 0) < 4:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(standin_set.kill, old)
        first = await task
        stop.set()
        await watching
        watch.close()
        await col.close()
        own.client.close()
        # the new master's collector, with the same database and cursors, finishes the job
        await asyncio.to_thread(wait_until, standin_set.primary, 15, 0.05, "new primary")
        fresh = HubStore(connect(standin_set.uri, timeout=10))
        col2 = collector(fresh, fleet, slow)
        second = await col2.run_round()
        await col2.close()
        await fleet.close()
        return first, second, fresh

    first, second, fresh = asyncio.run(scenario())
    assert first.aborted and first.aborted.startswith("stopped writing")
    assert second.aborted is None and second.failed == {}
    total = 0
    for client in fleet.clients:
        seqs = stored_seqs(fresh, client)
        assert seqs == client.produced, client.name
        total += len(seqs)
    assert total == 24 * 8
    fresh.client.close()


def test_isolated_old_primary_stops_writing(standin_set, fleet, tmp_path):
    fleet.make(6)
    old = standin_set.primary()
    # The collector's database client sees only the old primary, as an isolated hub would.
    direct = connect(f"mongodb://{old}/?directConnection=true", timeout=3)
    store = HubStore(direct)
    store.db = direct.get_database("cfreport", write_concern=WriteConcern("majority", wtimeout=300))
    majority_side = HubStore(connect(standin_set.uri, timeout=10))

    async def scenario():
        await fleet.serve()
        fleet.register(majority_side)
        standin_set.isolate(old)
        col = collector(store, fleet)
        figures = await col.run_round()
        await col.close()
        await fleet.close()
        return figures

    figures = asyncio.run(scenario())
    # a write-concern timeout, or the step-down that follows it: either way it stops at once
    assert figures.aborted.startswith("stopped writing: ")
    assert figures.pulled == 0
    new_primary = lambda: "{}:{}".format(*(majority_side.client.primary or ("", "")))  # noqa: E731
    wait_until(lambda: new_primary() not in (":", old), 10, what="a primary on the majority side")
    assert majority_side.db["reports"].count_documents({}) == 0
    # every client keeps its reports: nothing was acknowledged to any of them
    assert all(c.spool.status()["acked_seq"] == 0 for c in fleet.clients)
    direct.close()
    majority_side.client.close()


def test_hubd_collector_writes_only_through_its_own_member(standin_set, tmp_path):
    """A hub whose mongod is a secondary cannot store a report, even with a primary elsewhere."""
    primary = standin_set.primary()
    secondary = next(h for h in standin_set.hosts if h != primary)
    hubs = [
        {"name": f"hub{i}", "mongo": host, "service": f"127.0.0.1:{5400 + i}"}
        for i, host in enumerate(standin_set.hosts, 1)
    ]
    me = next(h["name"] for h in hubs if h["mongo"] == secondary)
    config = parse_hub_config(
        {
            "hub": {"name": me, "workdir": str(tmp_path / me), "listen": "127.0.0.1:5400"},
            "replset": {"uri": standin_set.uri},
            "hubs": hubs,
        }
    )
    ensure_key_pair(KeyStore(config.ppkeys).hub_private_key_path)
    node = HubNode(config)
    try:
        with pytest.raises(NotPrimaryError):
            node.collector.store.db["reports"].insert_one({"_id": "x/1", "host": "x", "seq": 1})
        # the hub's other writes (events, last-seen) still follow the primary
        node.store.db["events"].insert_one({"kind": "test"})
    finally:
        node.client.close()
        node.collector_client.close()
        node.watch.close()
