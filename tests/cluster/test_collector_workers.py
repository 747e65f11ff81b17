"""The master's collector over worker processes (hub.collector_pool): one round, exactly once.

Real worker processes (spawned), real SSH to the product's report services, the stand-in
with access control: each worker logs in as hubd with the access it is handed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import fcntl
import logging
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from hub.collector import RoundFigures
from hub.collector_pool import worker_of
from hub.config import parse_hub_config
from hub.master_watch import MasterWatch
from hub.metrics import HubMetrics
from hub.mongo import access_as, connect
from hub.store import HubStore
from hubcluster.config_check import ConfigError
from tests.cluster.fleet import SETTINGS, collector, pool, stored_seqs
from tests.conftest import wait_until

SLOW = dataclasses.replace(SETTINGS, concurrency=2, batch_size=2)


def _hubd_store(cluster) -> HubStore:
    with access_as(cluster.access("hubd")):
        return HubStore(connect(cluster.uri, timeout=10))


def _all_stored_once(store: HubStore, fleet) -> None:
    for client in fleet.clients:
        assert stored_seqs(store, client) == client.produced, client.name


def test_two_workers_store_every_report_once_as_one_round(standin_set, store, fleet):
    fleet.make(12, reports_each=3)
    member = standin_set.primary()

    async def scenario():
        await fleet.serve()
        fleet.register(store)
        col = pool(standin_set, fleet, member)
        col.metrics = HubMetrics("hub1")
        first = await col.run_round()
        shares = [len(r.figures.failed) + r.figures.pulled for r in col.last_results]
        opened = col.connects
        for client in fleet.clients:
            client.produce(2)
        second = await col.run_round()
        reopened = col.connects - opened
        await col.close()
        await fleet.close()
        return col, first, second, shares, opened, reopened

    col, first, second, shares, opened, reopened = asyncio.run(scenario())
    assert first.aborted is None and first.failed == {}
    assert (first.pulled, first.stored) == (12, 36)
    assert (second.pulled, second.stored) == (12, 24)
    # both workers had hosts, and each host's connection stayed in its worker
    assert len(shares) == 2 and min(shares) > 0 and sum(shares) == 12
    assert (opened, reopened) == (12, 0)
    _all_stored_once(store, fleet)
    # one view: the round recorded once with the merged figures, and the metrics too
    rounds = list(store.db["rounds"].find({}, {"pulled": 1, "stored": 1}).sort("finished", 1))
    assert [(r["pulled"], r["stored"]) for r in rounds] == [(12, 36), (12, 24)]
    registry = col.metrics.registry
    assert registry.get_sample_value("hubcluster_reports_stored_total") == 60
    assert registry.get_sample_value("hubcluster_collection_pull_duration_seconds_count") == 24


def test_partitioning_is_a_stable_hash_of_the_host_key():
    hosts = [f"{i:064x}" for i in range(2000)]
    here = [worker_of(h, 3) for h in hosts]
    assert here == [worker_of(h, 3) for h in hosts]
    assert all(550 < here.count(w) < 780 for w in range(3))  # about a third each
    # the same in another interpreter with another hash seed (Python's hash() is not)
    code = (
        "from hub.collector_pool import worker_of;"
        f"print([worker_of(f'{{i:064x}}', 3) for i in range({len(hosts)})])"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str(here)


async def _ignore(old, new):
    return None


@pytest.mark.parametrize("fault", ["kill", "isolate"])
def test_two_workers_master_lost_mid_round_then_new_master_finishes(
    standin_set, store, fleet, fault
):
    fleet.make(24, reports_each=8)

    async def scenario():
        await fleet.serve()
        fleet.register(store)
        old = standin_set.primary()
        with access_as(standin_set.access("hubd")):
            watch = MasterWatch(standin_set.uri, old, on_change=_ignore)
        stop = asyncio.Event()
        watching = asyncio.create_task(watch.run(stop))
        await asyncio.sleep(0.3)
        col = pool(standin_set, fleet, old, SLOW, is_master=lambda: watch.state.is_master)
        task = asyncio.create_task(col.run_round())
        while col.progress.get("done", 0) < 2:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(getattr(standin_set, fault), old)
        first = await task
        stop.set()
        await watching
        watch.close()
        await col.close()
        # (closing a client of a dead member waits for its timeout: not on the way)
        closing = asyncio.create_task(asyncio.to_thread(col.store.client.close))
        # the new master, with the same database and cursors, finishes the job
        new = await asyncio.to_thread(
            wait_until, lambda: standin_set.primary() not in (None, old), 15, 0.05, "new primary"
        )
        new = standin_set.primary()
        col2 = pool(standin_set, fleet, new, SLOW)
        second = await col2.run_round()
        await col2.close()
        col2.store.client.close()
        await fleet.close()
        await closing
        return first, second

    first, second = asyncio.run(scenario())
    assert first.aborted and first.aborted.startswith("stopped writing"), first.aborted
    assert first.pulled < 24
    assert second.aborted is None and second.failed == {}
    fresh = _hubd_store(standin_set)
    _all_stored_once(fresh, fleet)
    assert fresh.db["reports"].count_documents({}) == 24 * 8
    fresh.client.close()


def _waiting_on(inodes: set[int]) -> set[int]:
    """Which of these files someone is blocked on, waiting for a lock (/proc/locks '->')."""
    with open("/proc/locks") as locks:
        waiting = [line.split() for line in locks if " -> " in line]
    return {int(fields[6].split(":")[2]) for fields in waiting} & inodes


def make_for_both_workers(fleet, count: int, reports_each: int) -> None:
    """`count` clients, and more while one of 2 workers has none: keys are random, and a
    test counting both workers' answers needs hosts in each."""
    fleet.make(count, reports_each=reports_each)
    while len({worker_of(c.sha, 2) for c in fleet.clients}) < 2:
        fleet.make(1, reports_each=reports_each)


def test_role_lost_stops_every_worker_at_once(standin_set, store, fleet):
    """Every pull is in flight when the role is lost; none of their answers is stored."""
    make_for_both_workers(fleet, 8, reports_each=2)
    locks = [open(c.state.spool_dir / "spool.lock", "a+") for c in fleet.clients]  # noqa: SIM115
    master = [True]
    # each worker may pull all 8 at once, however the hash splits them
    settings = dataclasses.replace(SETTINGS, concurrency=16, expireafter=30, host_timeout=30)

    async def scenario():
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(32))
        await fleet.serve()
        fleet.register(store)
        for lock in locks:
            fcntl.flock(lock, fcntl.LOCK_EX)  # every report service hangs on its spool
        col = pool(standin_set, fleet, standin_set.primary(), settings, is_master=lambda: master[0])
        await col.start()  # both workers up
        task = asyncio.create_task(col.run_round())
        # every pull connected and asked: each report service waits for its spool's lock
        inodes = {os.fstat(lock.fileno()).st_ino for lock in locks}
        await asyncio.to_thread(
            wait_until, lambda: _waiting_on(inodes) == inodes, 30, 0.05, "every pull asked"
        )
        master[0] = False  # as the master watch sees it; hubd tells the workers at once
        await asyncio.sleep(0.5)
        for lock in locks:
            fcntl.flock(lock, fcntl.LOCK_UN)  # the answers come now, after the role is gone
        figures = await asyncio.wait_for(task, 10)
        results = list(col.last_results)
        await col.close()
        col.store.client.close()
        await fleet.close()
        return figures, results

    figures, results = asyncio.run(scenario())
    for lock in locks:
        lock.close()
    assert figures.aborted and figures.aborted.startswith("stopped writing"), figures.aborted
    assert len(results) == 2 and all(r.figures.aborted for r in results)
    assert sum(r.writes for r in results) == 0
    assert store.db["reports"].count_documents({}) == 0
    assert store.db["rounds"].count_documents({}) == 0
    assert all(c.spool.status()["acked_seq"] == 0 for c in fleet.clients)


def test_workers_refuse_to_write_under_a_stale_term(standin_set, store, fleet):
    """Workers holding the term of a master deposed since: each one's write is refused."""
    make_for_both_workers(fleet, 8, reports_each=2)

    async def scenario():
        await fleet.serve()
        fleet.register(store)
        old = standin_set.primary()
        first = pool(standin_set, fleet, old)
        await first.run_round()  # stores under the old term
        old_term = first.term
        await first.close()
        first.store.client.close()
        await asyncio.to_thread(standin_set.kill, old)
        new = await asyncio.to_thread(wait_until, standin_set.primary, 15, 0.05, "new primary")
        for client in fleet.clients:
            client.produce(2)
        hubd = _hubd_store(standin_set)
        newer = collector(hubd, fleet)
        await newer.run_round()  # the new master collects under its term: the fence moves
        for client in fleet.clients:
            client.produce(2)
        # A collector whose round began under the old term, writing to the new primary:
        stale = pool(standin_set, fleet, new)
        stale.term = old_term
        hosts = await asyncio.to_thread(stale.store.hosts)
        cursors = await asyncio.to_thread(stale.store.cursors)
        figures = RoundFigures(hub="hub1", started=dt.datetime.now(dt.UTC))
        await stale.pull_due(hosts, cursors, figures)
        results = list(stale.last_results)
        await stale.close()
        stale.store.client.close()
        hubd.client.close()
        await newer.close()
        await fleet.close()
        return old_term, newer.term, figures, results

    old_term, new_term, figures, results = asyncio.run(scenario())
    assert new_term > old_term
    assert figures.aborted and "newer term" in figures.aborted, figures.aborted
    assert len(results) == 2
    for result in results:
        assert result.figures.aborted and result.figures.stored == 0, result.figures
    fresh = _hubd_store(standin_set)
    assert fresh.db["reports"].count_documents({"term": old_term}) == len(fleet.clients) * 2
    assert fresh.db["reports"].count_documents({"term": {"$gt": new_term}}) == 0
    fresh.client.close()


def test_a_killed_worker_is_restarted_and_nothing_is_lost_or_stored_twice(
    standin_set, store, fleet, caplog
):
    fleet.make(16, reports_each=8)
    member = standin_set.primary()

    async def scenario():
        await fleet.serve()
        fleet.register(store)
        col = pool(standin_set, fleet, member, SLOW)
        task = asyncio.create_task(col.run_round())
        while col.progress.get("done", 0) < 2:
            await asyncio.sleep(0.01)
        victim = col.workers[0].proc
        os.kill(victim.pid, signal.SIGKILL)
        first = await task
        second = await col.run_round()
        restarted = col.workers[0].proc is not victim and col.workers[0].restarts == 1
        await col.close()
        col.store.client.close()
        await fleet.close()
        return first, second, restarted

    with caplog.at_level(logging.ERROR, logger="hubcluster.collector"):
        first, second, restarted = asyncio.run(scenario())
    assert first.aborted is None and first.failed  # the dead worker's hosts, this round
    assert all("collector worker stopped (killed by SIGKILL)" in w for w in first.failed.values())
    stopped = [r.getMessage() for r in caplog.records if "collector worker 0" in r.getMessage()]
    assert len(stopped) == 1 and "\n" not in stopped[0], stopped
    assert restarted
    assert second.aborted is None and second.failed == {}
    assert first.pulled + second.pulled >= 16
    _all_stored_once(store, fleet)
    assert store.db["reports"].count_documents({}) == 16 * 8


@pytest.mark.slow  # about a minute on 2 cores: 300 real report services in this process
def test_two_workers_collect_hundreds_of_clients_exactly_once(standin_set, store, fleet):
    fleet.make(300, reports_each=3)
    wide = dataclasses.replace(SETTINGS, concurrency=50, batch_size=500, host_timeout=60)
    member = standin_set.primary()

    async def scenario():
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(32))
        await fleet.serve()
        fleet.register(store)
        col = pool(standin_set, fleet, member, wide)
        rounds = []
        for _ in range(2):
            rounds.append(await col.run_round())
            for client in fleet.clients:
                client.produce(2)
        rounds.append(await col.run_round())
        await col.close()
        col.store.client.close()
        await fleet.close()
        return rounds, col.writes, col.connects

    rounds, writes, connects = asyncio.run(scenario())
    assert all(r.aborted is None and r.failed == {} for r in rounds)
    assert [r.stored for r in rounds] == [900, 600, 600]
    assert connects == 300
    # Group commit in each worker: fewer writes than half the pulls. How many pulls share a
    # write depends on timing (each worker groups only its own half of the fleet), so the
    # bound proves grouping, not a speed.
    assert writes < 3 * 300 / 2, f"{writes} writes for {3 * 300} pulls: no group commit"
    _all_stored_once(store, fleet)
    # each round acknowledged what the one before it stored: the clients pruned it
    assert all(c.spool.status()["acked_seq"] == c.produced[-3] for c in fleet.clients)


def _config(**collector):
    return {
        "hub": {"name": "hub1", "workdir": "/tmp/hub1"},
        "replset": {"uri": "mongodb://127.0.0.1:1/?replicaSet=rs"},
        "hubs": [{"name": "hub1", "mongo": "127.0.0.1:1", "service": "127.0.0.1:2"}],
        "collector": collector,
    }


def test_the_workers_setting_defaults_to_cores_but_one_and_refuses_nonsense_in_one_line():
    cores = len(os.sched_getaffinity(0))
    assert parse_hub_config(_config()).collector.workers == max(cores - 1, 1)
    assert parse_hub_config(_config(workers=3)).collector.workers == 3
    for bad, words in ((0, "between 1 and 256, got 0"), (257, "got 257"), ("2", "an integer")):
        with pytest.raises(ConfigError) as caught:
            parse_hub_config(_config(workers=bad))
        message = str(caught.value)
        assert message.startswith("collector.workers: must be") and words in message
        assert "\n" not in message


def test_a_worker_that_cannot_run_fails_its_hosts_in_one_line_each_round(
    standin_set, store, fleet, caplog, capfd
):
    fleet.make(4, reports_each=1)
    member = standin_set.primary()

    async def scenario():
        await fleet.serve()
        fleet.register(store)
        col = pool(standin_set, fleet, member)
        for worker in col.workers:  # its hub key is gone, say
            worker.spec = dataclasses.replace(worker.spec, hub_key_path=fleet.root / "missing")
        rounds = [await col.run_round() for _ in range(2)]
        await col.close()
        col.store.client.close()
        await fleet.close()
        return rounds

    with caplog.at_level(logging.ERROR, logger="hubcluster.collector"):
        rounds = asyncio.run(scenario())
    for figures in rounds:
        assert figures.pulled == 0 and len(figures.failed) == 4
        # "exit code 1", or "did not end" when its exit outlasts hubd's one-second look.
        ended = ("collector worker stopped (exit code 1)", "collector worker stopped (did not end)")
        assert all(any(e in w for e in ended) for w in figures.failed.values()), figures.failed
    said = [r.getMessage() for r in caplog.records]
    assert sum("cannot go on: KeyFileError" in line for line in said) == 4  # 2 workers x 2
    assert all("\n" not in line for line in said)
    assert "Traceback" not in capfd.readouterr().err
    assert store.db["reports"].count_documents({}) == 0
