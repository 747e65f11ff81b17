"""Whole-lab failover: from a killed hub master to a new primary, its first report, every client.

Run: .venv/bin/python -m benchmarks.failover [--rounds 5] [--clients 10] [--election-timeout 2]
     [--agent-interval 2] [--collect-interval 1]

One lab (three hubd on the replica set, N clients) stays up for all rounds while every client
runs `client-agent run` on a fixed cadence, as under `hubctl lab up`. Each round waits for a
stable lab (every report collected, every client on the master), kills the master's mongod and
hubd, and times from the kill:
  primary     - until the replica set has a primary on another hub,
  report      - until the new master's first stored report (the report's own `stored` time),
  re-pointed  - until every client's policy_server.dat names the new master.
The killed hub is then revived and waited for as a secondary; the next round kills whoever is
master by then. Exits 1 if a round failed or a report was lost or doubled.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pymongo
from pymongo.errors import PyMongoError

from hub.master_watch import POLL_SECONDS
from hub.mongo import DB_NAME, connect
from hubctl.lab.cluster import LabCluster
from hubctl.lab.lab_hubs import LabHub

POLL = 0.05
WAIT = 60.0
MEASURES = ("primary", "report", "re-pointed")

T = TypeVar("T")


async def poll(check: Callable[[], T], timeout: float = WAIT) -> T | None:
    """`check()` every POLL seconds until it is truthy; None after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        # In a thread: the stand-in set serves from this process and must not wait on us.
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(POLL)


class AgentLoop:
    """Agent runs on every client at fixed slots; a batch that overruns skips to the next slot."""

    def __init__(self, lab: LabCluster, interval: float) -> None:
        self.lab = lab
        self.interval = interval
        self.durations: list[float] = []
        self.skipped = 0
        self.stop = asyncio.Event()

    async def run(self) -> None:
        slot = time.monotonic()
        while not self.stop.is_set():
            started = time.monotonic()
            await self.lab.agent_runs()
            self.durations.append(time.monotonic() - started)
            slot += self.interval
            while slot <= time.monotonic():
                slot += self.interval
                self.skipped += 1
            try:
                await asyncio.wait_for(self.stop.wait(), slot - time.monotonic())
            except TimeoutError:
                pass


def on_master(lab: LabCluster, master: LabHub) -> bool:
    servers = lab.policy_servers()
    return len(servers) == len(lab.fleet) and set(servers.values()) == {master.service}


def other_master(lab: LabCluster, old: LabHub) -> LabHub | None:
    master = lab.master()
    return master if master not in (None, old) else None


def stable_master(lab: LabCluster) -> LabHub | None:
    """The master, once every client follows it and every report is stored exactly once."""
    master = lab.master()
    if master is None or not on_master(lab, master) or not lab.all_collected():
        return None
    return master


def first_report(reports: Any, hub: str, since: dt.datetime) -> dt.datetime | None:
    """When `hub` (hubd stores its config name as `stored_by`) first stored a report after since."""
    try:
        doc = reports.find_one(
            {"stored_by": hub, "stored": {"$gt": since}}, sort=[("stored", pymongo.ASCENDING)]
        )
    except PyMongoError:
        return None  # no primary yet as pymongo sees it; ask again
    return doc["stored"] if doc else None


async def revive(lab: LabCluster, hub: LabHub) -> bool:
    """Start the killed hub again; True once its member is back as a secondary."""
    await asyncio.to_thread(lab.revive, hub.name)
    return bool(await poll(lambda: lab.member_state(hub.name) == "SECONDARY"))


async def one_round(lab: LabCluster, reports: Any, old: LabHub) -> tuple[LabHub | None, dict]:
    """Kill `old`, the master, and time the three points; a missing time is None."""
    await asyncio.to_thread(lab.kill, old.name)
    killed = lab.last_kill
    assert killed is not None
    times: dict[str, float | None] = dict.fromkeys(MEASURES)
    new = await poll(lambda: other_master(lab, old))
    if not new:
        return None, times
    times["primary"] = time.time() - killed
    # tz_aware client: `stored` comes back as aware UTC, so it compares with the kill as it is.
    since = dt.datetime.fromtimestamp(killed, dt.UTC)

    async def report() -> None:
        stored = await poll(lambda: first_report(reports, new.name, since))
        if stored:
            times["report"] = stored.timestamp() - killed

    async def repointed() -> None:
        if await poll(lambda: on_master(lab, new)):
            times["re-pointed"] = time.time() - killed

    await asyncio.gather(report(), repointed())
    return new, times


def describe(values: list[float]) -> str:
    if not values:
        return "no successful round"
    return (
        f"median {statistics.median(values):5.2f} s  min-max {min(values):.2f}-{max(values):.2f} s"
    )


async def run_rounds(lab: LabCluster, args: argparse.Namespace) -> bool:
    agents = AgentLoop(lab, args.agent_interval)
    agent_task = asyncio.create_task(agents.run())
    client = connect(lab.uri, timeout=2.0, tz_aware=True)
    results: list[dict] = []
    try:
        # Round 1 should start from clients that have run, like every later round.
        await poll(lambda: agents.durations)
        for n in range(1, args.rounds + 1):
            old = await poll(lambda: stable_master(lab))
            if not old:
                print(f"round {n}: FAILED, the lab never settled within {WAIT:g} s")
                results.append(dict.fromkeys(MEASURES))
                continue
            new, times = await one_round(lab, client[DB_NAME].reports, old)
            results.append(times)
            shown = "  ".join(
                f"{k} {v:5.2f} s" if v is not None else f"{k} FAILED" for k, v in times.items()
            )
            print(f"round {n}: {old.name} killed -> {new.name if new else 'none'}  {shown}")
            if not await revive(lab, old):
                print(f"  {old.name} not back as a secondary within {WAIT:g} s")
    finally:
        agents.stop.set()
        await asyncio.wait_for(agent_task, WAIT)
        client.close()
    # The last batch may still be on its way to the store; give the collector its time.
    held = bool(await poll(lab.all_collected))
    print(f"after {len(results)} rounds, every report stored once: {'yes' if held else 'NO'}")
    for key in MEASURES:
        values = [r[key] for r in results if r[key] is not None]
        failed = len(results) - len(values)
        print(f"  {key:11s} {describe(values)}" + (f"  ({failed} failed)" if failed else ""))
    print(
        f"replica set: {lab.replset_kind}, election timeout {args.election_timeout:g} s; "
        f"agent interval {args.agent_interval:g} s, collect interval {args.collect_interval:g} s, "
        f"master watch poll {POLL_SECONDS:g} s, {args.clients} clients"
    )
    # A batch longer than the interval skips slots, which is what stretches re-pointing.
    batch = statistics.median(agents.durations) if agents.durations else float("nan")
    print(
        f"agent batches: {len(agents.durations)}, median {batch:.2f} s each, "
        f"{agents.skipped} slots skipped because a batch overran"
    )
    return held and all(v is not None for r in results for v in r.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--election-timeout", type=float, default=2.0)
    parser.add_argument("--agent-interval", type=float, default=2.0)
    parser.add_argument("--collect-interval", type=float, default=1.0)
    args = parser.parse_args()
    lab = LabCluster(
        Path(tempfile.mkdtemp(prefix="hubcluster-failover-")),
        args.clients,
        election_timeout=args.election_timeout,
        collect_interval=args.collect_interval,
        sync_interval=1.0,
    )
    try:
        lab.up()
        ok = asyncio.run(run_rounds(lab, args))
    finally:
        lab.down()
    if not ok:
        print(f"lab files and logs: {lab.directory}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
