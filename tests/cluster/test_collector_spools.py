"""The collector and a client's spool changing under it: a spool that lost its state is
collected under a new epoch, and reports a full spool dropped show as a gap, never silently."""

from __future__ import annotations

import asyncio

import pytest
from pymongo.read_preferences import Primary
from typer.testing import CliRunner

from client_agent.spool import Spool
from hub.mongo import connect
from hub.queries import Queries
from hubctl.app import app
from tests.cluster.fleet import collector, stored_seqs
from tests.conftest import wait_until


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
