"""The lab under load: 120 clients for minutes; hub logs clean, memory and files flat.

Slow; CI skips it. Run (5 to 8 minutes with the defaults on 2 busy cores):

    scripts/test -m slow -k load -s

HUBCLUSTER_LOAD_CLIENTS (default 120) sets the clients, HUBCLUSTER_LOAD_SECONDS (default
240) how long agent runs go on; HUBCLUSTER_LOAD_RUN_EVERY (default 15) how often each client
runs. Collection rounds are every 2 s, shorter than a round over 120 hosts may take, as in
the lab where issue 17's tracebacks were found.

It fails when any hub's (or client's) log holds a traceback; when any hubd's RSS or open
file descriptors grow round over round (sampled at each collection round; the median of the
last third of the rounds above the median of the second third by more than RSS_GROWTH_MB
or FD_GROWTH); when rounds overran without hubd's one overrun line for each; when a report
produced is not stored exactly once at the end. It prints the figures (-s shows them).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import pytest

from hub.mongo import DB_NAME, connect
from hubctl.lab.cluster import LabCluster
from tests.cluster.hub_samples import Sample, growth, overrun_lines, sample, tracebacks

CLIENTS = int(os.environ.get("HUBCLUSTER_LOAD_CLIENTS", "120"))
SECONDS = float(os.environ.get("HUBCLUSTER_LOAD_SECONDS", "240"))
RUN_EVERY = float(os.environ.get("HUBCLUSTER_LOAD_RUN_EVERY", "15"))
COLLECT_INTERVAL = 2.0
RUN_CONCURRENCY = 8
# An agent run's exit: 0 all kept, 1 a promise not kept, 3 no hub answered within the lab
# clients' 1 s connect timeout (on 2 cores shared with other work, hubs stall that long;
# the run spools its reports and says so in one line). 2 or a crash is a defect.
AGENT_OK = (0, 1, 3)
# Warm hubds moved under 1 MB (medians, 120 clients, 4 minutes); a leak of 2 KB per pull
# adds this much between the middles of the last two thirds (some 37 rounds of 120 pulls).
RSS_GROWTH_MB = 8.0
# Connections are kept between rounds: the count stays put (it moved by 2 at most) unless
# something is not closed; one descriptor lost every third round is past this.
FD_GROWTH = 10


async def _agent_runs(lab: LabCluster, stop: float, runs: list[int]) -> None:
    """Every client runs its agent every RUN_EVERY seconds until `stop` (forked, as the
    lab forks its clients: a fresh interpreter per run would measure Python's start-up)."""
    assert lab.forker is not None
    limit = asyncio.Semaphore(RUN_CONCURRENCY)

    async def one(c) -> None:
        async with limit:
            proc = lab.forker.start(["run", "--config", str(c.config)], c.workdir / "run.log")
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            runs.append(proc.poll() if proc.poll() is not None else -1)

    while time.monotonic() < stop:
        began = time.monotonic()
        await asyncio.gather(*(one(c) for c in lab.fleet))
        await asyncio.sleep(max(0.0, RUN_EVERY - (time.monotonic() - began)))


async def _watch_rounds(lab: LabCluster, stop: float) -> tuple[list[dict], dict[str, list]]:
    """Each new collection round's figures, and every hubd's sample taken at that round."""
    client = connect(lab.uri, timeout=10)
    rounds: list[dict] = []
    samples: dict[str, list[Sample]] = {h.name: [] for h in lab.hubs}
    seen = None
    try:
        while time.monotonic() < stop:
            query = {} if seen is None else {"started": {"$gt": seen}}
            new = await asyncio.to_thread(
                lambda q=query: list(client[DB_NAME].rounds.find(q).sort("started", 1))
            )
            for doc in new:
                seen = doc["started"]
                rounds.append(doc)
            if new:
                for h in lab.hubs:
                    assert h.proc is not None and h.proc.poll() is None, f"{h.name} died"
                    samples[h.name].append(sample(h.proc.pid))
            await asyncio.sleep(0.5)
    finally:
        client.close()
    return rounds, samples


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(1.0)
    return True


def _uncollected(lab: LabCluster) -> list[str]:
    """Which clients' reports are missing or stored twice, in one short phrase each."""
    produced, stored = lab.produced(), lab.stored()
    out = []
    for name, n in sorted(produced.items()):
        have = stored.get(name, [])
        missing = sorted(set(range(1, n + 1)) - set(have))
        twice = len(have) - len(set(have))
        if missing or twice or len(have) != n:
            where = f"{missing[0]}..{missing[-1]}" if missing else "none"
            out.append(f"{name}: {n} produced, {len(have)} stored, missing {where}, {twice} twice")
    return out[:10] + ([f"and {len(out) - 10} more"] if len(out) > 10 else [])


def _report(lab: LabCluster, rounds: list[dict], samples: dict, runs: list[int]) -> list[str]:
    seconds = [r["seconds"] for r in rounds]
    lines = [
        lab.ready_line(),
        f"{len(rounds)} rounds: median {statistics.median(seconds):.2f}s, "
        f"longest {max(seconds):.2f}s, {sum(s > COLLECT_INTERVAL for s in seconds)} over the "
        f"{COLLECT_INTERVAL:g}s interval; {len(runs)} agent runs, "
        f"{runs.count(3)} found no hub in time (exit 3), "
        f"{sum(code not in AGENT_OK for code in runs)} failed otherwise",
    ]
    for name, series in samples.items():
        first, last = series[0], series[-1]
        lines.append(
            f"{name}: RSS {first.rss_mb:.1f} -> {last.rss_mb:.1f} MB "
            f"(growth {growth([s.rss_mb for s in series]):+.1f}), "
            f"fds {first.fds} -> {last.fds} (growth {growth([s.fds for s in series]):+.1f}), "
            f"{len(series)} samples"
        )
    return lines


@pytest.mark.slow
@pytest.mark.timeout(int(SECONDS) + 900)
def test_hubs_stay_clean_and_flat_under_load(tmp_path):
    lab = LabCluster(
        tmp_path / "lab",
        clients=CLIENTS,
        collect_interval=COLLECT_INTERVAL,
        sync_interval=5.0,
        state_interval=2.0,
    )
    try:
        lab.up()

        async def scenario():
            stop = time.monotonic() + SECONDS
            runs: list[int] = []
            driving = asyncio.create_task(_agent_runs(lab, stop, runs))
            rounds, samples = await _watch_rounds(lab, stop)
            await driving
            return rounds, samples, runs

        rounds, samples, runs = asyncio.run(scenario())
        print("\n" + "\n".join(_report(lab, rounds, samples, runs)))

        # Every report produced stored exactly once (a duplicate would repeat a seq).
        if not _wait(lab.all_collected, 120):
            pytest.fail("not every report stored once: " + "; ".join(_uncollected(lab)))
    finally:
        lab.down()

    # Read once every hubd has stopped: stopping in the middle of a busy round counts too.
    logs = {h.name: h.log.read_text(errors="replace") for h in lab.hubs}
    found = [f"{name}: {tb}" for name, text in logs.items() for tb in tracebacks(text)]
    assert not found, f"{len(found)} tracebacks in hub logs:\n" + "\n".join(found)
    # The clients' services and runs went through the same load: they owe one line too.
    agents = [
        f"{c.name}/{log.name}: {tb}"
        for c in lab.fleet
        for log in c.workdir.glob("*.log")
        for tb in tracebacks(log.read_text(errors="replace"))
    ]
    assert not agents, f"{len(agents)} tracebacks in client logs:\n" + "\n".join(agents[:10])

    for name, series in samples.items():
        rss = growth([s.rss_mb for s in series])
        fds = growth([s.fds for s in series])
        assert rss <= RSS_GROWTH_MB, f"{name}'s RSS grew {rss:.1f} MB round over round"
        assert fds <= FD_GROWTH, f"{name}'s open fds grew by {fds:g} round over round"

    # Each round longer than the interval must have had its one line, in its hub's log.
    for name, text in logs.items():
        over = [
            r["seconds"] for r in rounds if r["hub"] == name and r["seconds"] > COLLECT_INTERVAL
        ]
        lines = overrun_lines(text)
        assert len(lines) >= len(over), (
            f"{name}: {len(over)} rounds overran the {COLLECT_INTERVAL:g}s interval, "
            f"but its log has {len(lines)} overrun lines"
        )
        # apscheduler's words for a missed run: overruns are hubd's own line, nothing else
        assert "maximum number of running instances" not in text, name
    failed = sorted({code for code in runs if code not in AGENT_OK})
    assert not failed, f"agent runs ended with exit statuses {failed} under load"
