"""hubd's supervisor: a part that raises, ends or stalls is logged, restarted and reported."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

from hub.health_check import CRITICAL, Snapshot, Thresholds, judge
from hub.supervisor import Supervisor, published_problems
from hub.topology import Topology


async def supervise(sup: Supervisor, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(sup.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, 5)


def test_a_loop_that_raises_is_logged_with_its_traceback_and_restarted(caplog):
    starts = []

    async def flaky() -> None:
        starts.append(time.monotonic())
        if len(starts) == 1:
            raise RuntimeError("injected failure")
        await asyncio.sleep(3600)

    sup = Supervisor("hub1", check_every=0.05)
    sup.keep_running("master watch", flaky)
    with caplog.at_level(logging.ERROR, "hubcluster.supervisor"):
        asyncio.run(supervise(sup, 0.5))
    assert len(starts) == 2  # restarted once, then it ran on
    [record] = [r for r in caplog.records if "master watch raised" in r.getMessage()]
    assert record.exc_info and "injected failure" in str(record.exc_info[1])
    [problem] = sup.problems()
    assert problem.startswith("master watch raised RuntimeError: injected failure; restarted")
    assert sup.report()["master watch"]["restarts"] == 1


def test_a_loop_whose_heartbeat_stops_is_cancelled_and_restarted():
    beats = {"last": time.monotonic()}
    starts = []
    cancelled = []

    async def stalls() -> None:
        starts.append(1)
        try:
            if len(starts) == 1:
                await asyncio.sleep(3600)  # alive, but no heartbeat: a stall
            while True:
                beats["last"] = time.monotonic()
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            cancelled.append(len(starts))
            raise

    sup = Supervisor("hub1", check_every=0.05)
    sup.keep_running("master watch", stalls, lambda: beats["last"], stall_after=0.3)
    asyncio.run(supervise(sup, 1.0))
    assert cancelled[0] == 1 and len(starts) == 2
    [problem] = sup.problems()
    assert "master watch stalled for" in problem and "restarted" in problem


def test_a_job_that_raises_goes_on_and_a_job_that_stops_running_is_started_again(caplog):
    runs = []

    async def job() -> None:
        runs.append(1)
        raise ValueError("bad answer from a peer")

    sup = Supervisor("hub1", check_every=0.05)
    guarded = sup.guarded("peer sync", job, interval=0.1)
    restarted = []
    sup.on_stall("peer sync", lambda: restarted.append(1))

    async def scenario() -> None:
        await guarded()  # raises inside: must not escape
        await guarded()
        await supervise(sup, 0.6)  # and then the scheduler never runs it again

    with caplog.at_level(logging.ERROR, "hubcluster.supervisor"):
        asyncio.run(scenario())
    assert len(runs) == 2
    assert any(r.exc_info for r in caplog.records if "peer sync failed" in r.getMessage())
    assert restarted, "a job that stopped running was not started again"
    assert any("peer sync did not run for" in p for p in sup.problems())


def test_a_blocked_event_loop_is_reported():
    sup = Supervisor("hub1", check_every=0.05, lag_limit=1.0)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(sup.run(stop))
        await asyncio.sleep(0.1)
        time.sleep(1.3)  # a blocking call on the loop
        await asyncio.sleep(0.1)
        stop.set()
        await task

    asyncio.run(scenario())
    assert any("event loop was blocked" in p for p in sup.problems())


def test_published_problems_make_check_critical_and_overruns_a_warning():
    now = dt.datetime.now(dt.UTC)
    state = {
        "_id": "hub2",
        "role": "standby",
        "member": "h2:27017",
        "updated": now,
        "state_interval": 15.0,
        "problems": ["master watch raised RuntimeError: x; restarted (3s ago)"],
        "round_overruns": {"in_a_row": 4, "last_seconds": 11.1, "interval": 2.0},
    }
    critical, warning = published_problems("hub2", state)
    assert critical == ["hub2: master watch raised RuntimeError: x; restarted (3s ago)"]
    assert warning == [
        "hub2: rounds keep overrunning (4 in a row, the last took 11.1 s for a 2 s interval)"
    ]
    topo = Topology(members=[], primary=None, set_name="s")
    verdict = judge(Snapshot(topo, now, {"finished": now, "seconds": 1.0}, [state]), Thresholds())
    assert verdict.state == CRITICAL
    assert "hub2: master watch raised RuntimeError" in verdict.summary


def test_loops_ending_because_hubd_stops_are_no_problem(caplog):
    sup = Supervisor("hub1", check_every=0.05)
    stop = asyncio.Event()

    async def watch() -> None:
        await stop.wait()  # as the master watch does

    sup.keep_running("master watch", watch)

    async def scenario() -> None:
        task = asyncio.create_task(sup.run(stop))
        await asyncio.sleep(0.2)
        stop.set()
        await asyncio.wait_for(task, 5)

    with caplog.at_level(logging.ERROR, "hubcluster.supervisor"):
        asyncio.run(scenario())
    assert sup.problems() == [] and not caplog.records
