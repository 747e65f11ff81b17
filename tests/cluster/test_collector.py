"""The master's collector over real SSH against the stand-in: exactly once, across failovers."""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import time
from concurrent.futures import ThreadPoolExecutor

import asyncssh
import pytest
from pymongo import WriteConcern
from pymongo.errors import NotPrimaryError
from pymongo.read_preferences import Primary
from typer.testing import CliRunner

from client_agent.spool import Spool
from hub.config import parse_hub_config
from hub.keystore import KeyStore
from hub.master_watch import MasterWatch
from hub.mongo import access_as, connect, connect_member
from hub.node import HubNode
from hub.queries import Queries
from hub.store import HubStore
from hubcluster.keys import ensure_key_pair
from hubcluster.report_kinds import INVENTORY
from hubctl.app import app
from tests.cluster.fleet import INVENTORY_SAMPLE, SETTINGS, collector, stored_seqs
from tests.cluster.vanishing_relay import VanishingRelay
from tests.conftest import hubd_access, wait_until


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


def test_a_spool_that_lost_its_state_is_collected_under_a_new_epoch(store, fleet):
    keeps, wiped = fleet.make(2, reports_each=3)

    async def scenario():
        await fleet.serve()
        fleet.register(store)
        col = collector(store, fleet)
        await col.run_round()
        old_epoch = store.db["cursors"].find_one({"_id": wiped.sha})["epoch"]
        # the client's state directory is wiped (a restored backup, a re-image)
        wiped.acceptor.close()
        await wiped.acceptor.wait_closed()
        wiped.spool.close()
        for name in ("spool.log", "spool.meta"):
            (wiped.state.spool_dir / name).unlink()
        wiped.spool = Spool(wiped.state.spool_dir)
        wiped.produced = []
        wiped.produce(2)
        keeps.produce(1)
        await fleet.serve([wiped])
        fleet.register(store, [wiped])
        await col.close()  # the client's service restarted: its connection is gone
        col = collector(store, fleet)
        second = await col.run_round()
        await col.close()
        await fleet.close()
        return old_epoch, second

    old_epoch, second = asyncio.run(scenario())
    assert second.failed == {} and second.stored == 3
    new_epoch = wiped.spool.epoch
    assert new_epoch != old_epoch
    docs = store.db["reports"].find({"host": wiped.sha})
    by_epoch = sorted((d["epoch"], d["seq"]) for d in docs)
    expected = [(old_epoch, s) for s in (1, 2, 3)] + [(new_epoch, 1), (new_epoch, 2)]
    assert by_epoch == sorted(expected)
    cursor = store.db["cursors"].find_one({"_id": wiped.sha})
    assert (cursor["epoch"], cursor["seq"]) == (new_epoch, 2)
    event = store.db["events"].find_one({"kind": "spool-epoch"})
    assert event and new_epoch in event["message"] and event["details"]["host"] == wiped.sha
    assert stored_seqs(store, keeps) == keeps.produced


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


# ----- drops are never silent (issue 11) ---------------------------------------------------


def test_reports_a_full_spool_dropped_show_as_a_gap(standin_set, store, fleet):
    (small,) = fleet.make(1, reports_each=1)
    small.spool.close()
    small.spool = Spool(small.state.spool_dir, max_bytes=4096)  # no hub collects for a while
    for _ in range(10):
        small.produce(4)

    async def scenario():
        await fleet.serve()
        fleet.register(store)
        col = collector(store, fleet)
        figures = await col.run_round()
        await col.close()
        await fleet.close()
        return figures

    figures = asyncio.run(scenario())
    assert figures.failed == {} and figures.rejected == 0
    stored = stored_seqs(store, small)
    lost = [seq for seq in small.produced if seq not in stored]
    assert lost, "the cap should have dropped reports"
    gaps = list(store.db["gaps"].find({"host": small.sha}))
    assert gaps and sum(g["count"] for g in gaps) == len(lost)
    assert all(any(g["first"] <= s <= g["last"] for g in gaps) for s in lost)
    assert all(g["reason"] == "spool over its cap of 4096 bytes" for g in gaps)
    row = Queries(store.client, Primary()).hosts()[0]
    assert row["lost"] == len(lost)
    result = CliRunner().invoke(app, ["check", "--mongo", standin_set.uri])
    assert result.exit_code == 1, result.stdout
    assert f"1 hosts lost {len(lost)} reports to their spool cap" in result.stdout


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


@pytest.mark.slow  # about 20 s: a lab of three hubd; the fleet test above covers it in CI
def test_agent_with_a_wiped_spool_is_collected_again_end_to_end(lab):
    """Real hubd, `client-agent run` and `serve`: a client's spool state is lost, then it runs."""
    asyncio.run(lab.agent_runs())
    wait_until(lab.all_collected, 30, 0.3, "first collection")
    victim = lab.fleet[0]
    for name in ("spool.log", "spool.meta"):
        (victim.workdir / "spool" / name).unlink()  # `serve` keeps running meanwhile
    asyncio.run(lab.agent_runs())
    with Spool(victim.workdir / "spool") as spool:
        epoch = spool.epoch
    client = connect(lab.uri, timeout=10)
    try:
        db = client["cfreport"]
        sha = db.hosts.find_one({"hostname": victim.name})["_id"]

        def new_reports() -> list[int]:
            return sorted(d["seq"] for d in db.reports.find({"host": sha, "epoch": epoch}))

        wait_until(lambda: new_reports() == [1, 2], 30, 0.3, "the new spool's reports")
        assert db.reports.count_documents({"host": sha, "epoch": {"$ne": epoch}}) == 2
        assert db.events.find_one({"kind": "spool-epoch", "details.host": sha})
    finally:
        client.close()


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
