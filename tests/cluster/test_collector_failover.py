"""The collector across failovers, against the stand-in: only the master writes, through its
own member; a round cut by a killed or isolated primary stores nothing twice and loses
nothing; a master of an older term is fenced off after the election."""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
from concurrent.futures import ThreadPoolExecutor

import pytest
from pymongo import WriteConcern
from pymongo.errors import NotPrimaryError

from hub.config import parse_hub_config
from hub.keystore import KeyStore
from hub.master_watch import MasterWatch
from hub.mongo import access_as, connect, connect_member
from hub.node import HubNode
from hub.store import HubStore
from hubcluster.keys import ensure_key_pair
from tests.cluster.fleet import SETTINGS, collector, stored_seqs
from tests.conftest import hubd_access, wait_until


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
            "replset": {"uri": standin_set.uri, **hubd_access(standin_set)},
            "hubs": hubs,
        }
    )
    ensure_key_pair(KeyStore(config.ppkeys).hub_private_key_path)
    with access_as(config.mongo_access):  # it plays hubd
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


# ----- a fencing token on every stored report (issue 12) ----------------------------------


def test_a_master_of_an_older_term_stores_nothing_after_the_election(standin_set, fleet):
    late = fleet.make(3, reports_each=2)  # the old master's pulls from these are in flight
    others = fleet.make(2, reports_each=2)
    old = standin_set.primary()
    # Both collectors' clients follow whichever member is primary: the worst case, in which
    # the old master's late writes would land on the new primary but for the fence.
    old_store = HubStore(connect(standin_set.uri, timeout=10))
    new_store = HubStore(connect(standin_set.uri, timeout=10))
    locks = [open(c.state.spool_dir / "spool.lock", "a+") for c in late]  # noqa: SIM115
    slow = dataclasses.replace(SETTINGS, expireafter=30, host_timeout=30)

    async def scenario():
        # The services' threads block on their spools: room for the collectors' own threads.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(32))
        await fleet.serve()
        fleet.register(new_store)
        for lock in locks:
            fcntl.flock(lock, fcntl.LOCK_EX)
        old_col = collector(old_store, fleet, slow)
        old_round = asyncio.create_task(old_col.run_round())
        while old_col.progress.get("done", 0) < len(others):
            await asyncio.sleep(0.02)  # its other pulls are done; `late` ones hang
        await asyncio.to_thread(standin_set.isolate, old)

        await asyncio.to_thread(
            wait_until, lambda: _primary(new_store) not in ("", old), 15, 0.05, "new primary"
        )
        new_col = collector(new_store, fleet, dataclasses.replace(SETTINGS, expireafter=1))
        new_round = await new_col.run_round()  # `late` clients hang for it too: they fail
        for lock in locks:
            fcntl.flock(lock, fcntl.LOCK_UN)  # the old master's pulls now get their answers
        first = await old_round
        await old_col.close()
        await new_col.close()
        await fleet.close()
        return old_col.term, new_col.term, first, new_round

    old_term, new_term, first, new_round = asyncio.run(scenario())
    for lock in locks:
        lock.close()
    assert old_term is not None and new_term is not None and new_term > old_term
    assert first.aborted and "stopped writing" in first.aborted, first.aborted
    assert set(new_round.failed) == {c.sha for c in late}
    reports = new_store.db["reports"]
    # nothing the old master collected after the election is stored
    assert reports.count_documents({"host": {"$in": [c.sha for c in late]}}) == 0
    for client in others:
        terms = {d["term"] for d in reports.find({"host": client.sha})}
        assert terms <= {old_term, new_term} and stored_seqs(new_store, client) == client.produced
    assert all(c.spool.status()["acked_seq"] == 0 for c in late)
    old_store.client.close()
    new_store.client.close()


def _primary(store: HubStore) -> str:
    return "{}:{}".format(*(store.client.primary or ("", ""))).strip(":")
