"""Collection throughput on loopback: the collector against N client report services.

Run: .venv/bin/python -m benchmarks.collection [--clients 200] [--reports 3] [--concurrency 200]
     [--workers 1,2] [--fleet-processes 2] [--baselines]
     (--baselines: also OpenSSH + xargs -P and Ansible raw; 1,000 clients: --clients 1000)

The stand-in replica set (access control and TLS on, as in production) runs in its own
process (`hubctl lab mongo`), the N client report services in --fleet-processes processes
(`benchmarks/fleet_server.py`), and the collector as hubd runs it: hub.collector_pool with
W worker processes, for each W of --workers, all in one run; "in-process (no workers)" is
today's collector in hubd's own process, as it ran before issue 15 added workers (the
baseline). Each collector does two rounds over new reports: round 1 opens every SSH
connection, round 2 reuses them.

Per round it prints the collector's CPU per client (hubd's process and its workers), the
clients/s one core would sustain at that cost (1 / CPU per client), and what bounded the
round: the CPU each part used (in cores: CPU seconds / wall seconds) against what it has.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median

from benchmarks.collection_baselines import ansible_round, openssh_round, prepare
from benchmarks.loopback_fleet import produce, start_loopback
from benchmarks.ssh_before import ssh_before
from hub.collector import Collector
from hub.collector_pool import CollectorPool
from hub.collector_worker import WorkerSpec
from hub.config import DEFAULT_CONCURRENCY, CollectorSettings

HERE = Path(__file__).resolve().parent
CLOCK = os.sysconf("SC_CLK_TCK")
BUSY = 0.85  # a part using this share of what it has is what bounded the round


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_of(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes have used, from /proc."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK


def machine_cpu() -> float:
    """CPU seconds every core of the machine has been busy, from /proc/stat."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLOCK  # all but idle and iowait


@dataclass
class Round:
    pulled: int
    failed: int
    stored: int
    writes: int
    seconds: float
    collector_cpu: float
    fleet_cpu: float
    db_cpu: float
    hubd_cpu: float  # the part of collector_cpu in hubd's own process (all of it in-process)
    machine_cpu: float  # every process's, ours and others' (other work on a shared machine)
    collector_cores: float  # what the collector may use: its workers (or hubd's one core)
    fleet_cores: float

    @property
    def clients_per_s(self) -> float:
        return self.pulled / self.seconds

    @property
    def cpu_per_client(self) -> float:
        return self.collector_cpu / max(self.pulled, 1)

    def bound(self) -> str:
        machine = cores()
        use = {
            "collector CPU": self.collector_cpu / self.seconds,
            "fleet CPU": self.fleet_cpu / self.seconds,
            "database CPU": self.db_cpu / self.seconds,
        }
        others = max(self.machine_cpu - sum(use.values()) * self.seconds, 0.0) / self.seconds
        has = {
            "collector CPU": min(self.collector_cores, machine),
            "fleet CPU": min(self.fleet_cores, machine),
            "database CPU": 1.0,  # the stand-in serves from one Python process
        }
        shares = ", ".join(f"{k.split()[0]} {v:.2f}" for k, v in use.items())
        shares += f", other processes {others:.2f}"
        if sum(use.values()) + others >= BUSY * machine:
            use["other processes' CPU"] = others
            top = max(use, key=lambda k: use[k])
            return f"all {machine} cores busy, most by {top} (cores: {shares})"
        full = [k for k in use if use[k] >= BUSY * has[k]]
        if full:
            return f"{' and '.join(full)} (cores: {shares})"
        return f"no CPU: round trips and waits (cores: {shares})"


class Bench:
    def __init__(self, args: argparse.Namespace, fleet: list, standin: subprocess.Popen) -> None:
        self.args = args
        self.fleet = fleet
        self.fleet_pids = [p.pid for p in fleet]
        self.db_pids = [standin.pid]

    async def timed_round(self, collector: Collector) -> Round:
        produce(self.fleet)
        pool = collector if isinstance(collector, CollectorPool) else None
        writes0 = pool.writes if pool else collector.writer.writes
        fleet0, db0, all0 = cpu_of(self.fleet_pids), cpu_of(self.db_pids), machine_cpu()
        cpu0, t0 = time.process_time(), time.perf_counter()
        figures = await collector.run_round()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        hubd_cpu = cpu
        fleet_cpu, db_cpu = cpu_of(self.fleet_pids) - fleet0, cpu_of(self.db_pids) - db0
        everything = machine_cpu() - all0
        if pool is not None:
            cpu += sum(r.cpu_seconds for r in pool.last_results)
            writes, workers = pool.writes - writes0, len(pool.workers)
        else:
            writes, workers = collector.writer.writes - writes0, 1
        return Round(
            figures.pulled,
            len(figures.failed),
            figures.stored,
            writes,
            wall,
            cpu,
            fleet_cpu,
            db_cpu,
            hubd_cpu,
            everything,
            float(workers),
            float(len(self.fleet)),
        )


Results = dict[str, list[tuple[Round, Round]]]  # per collector, one pair of rounds a repeat


async def measure(bench: Bench, make: Collector, label: str, results: Results) -> None:
    if isinstance(make, CollectorPool):
        await make.start()  # spawning is not collecting: not timed
    first = await bench.timed_round(make)
    second = await bench.timed_round(make)
    await make.close()
    results.setdefault(label, []).append((first, second))


async def run(args: argparse.Namespace) -> None:
    lab = start_loopback(args.clients, args.reports, args.fleet_processes, "hubcluster-bench-")
    bench = Bench(args, lab.fleet, lab.standin)
    results: Results = {}
    baselines = {}
    keystore, hub_key = lab.keystore, lab.hub_key
    try:
        own = lab.register()
        settings = CollectorSettings(concurrency=args.concurrency, ifelapsed=0)
        # Repeats alternate the collectors, so that a burst of other work on a shared
        # machine falls on all of them alike; ratios are taken within a repeat.
        for _ in range(args.repeat):
            if args.ssh_before:
                with ssh_before():
                    old = Collector(own, settings, "bench", hub_key, keystore.get, lambda: True)
                    old.streams = False  # a channel per ask, as before issue 15
                    await measure(bench, old, SSH_BEFORE, results)
            if not args.no_in_process:
                inline = Collector(own, settings, "bench", hub_key, keystore.get, lambda: True)
                await measure(bench, inline, IN_PROCESS, results)
            for workers in args.workers:
                chosen = CollectorSettings(
                    concurrency=args.concurrency, ifelapsed=0, workers=workers
                )
                spec = WorkerSpec(
                    "bench",
                    lab.uri,
                    lab.primary,
                    chosen,
                    keystore.hub_private_key_path,
                    keystore.directory,
                    access=lab.access,
                )
                pool = CollectorPool(
                    own, chosen, "bench", hub_key, keystore.get, lambda: True, spec
                )
                await measure(bench, pool, _label(workers), results)
        own.client.close()
        if args.baselines:
            files = prepare(lab.tmp, lab.clients, keystore.hub_private_key_path)
            for name, fn in (("OpenSSH + xargs -P", openssh_round), ("Ansible raw", ansible_round)):
                produce(lab.fleet)
                one = fn(lab.tmp, files, args.clients, args.concurrency)
                produce(lab.fleet)
                two = fn(lab.tmp, files, args.clients, args.concurrency)
                baselines[name] = (one, two)
    finally:
        lab.stop()
    report(args, results, baselines)


IN_PROCESS = "in-process (no workers)"
SSH_BEFORE = "in-process, SSH as before issue 15 (benchmarks/ssh_before.py)"
ROUNDS = ("round 1 (new connections)", "round 2 (reused)")


def _label(workers: int) -> str:
    return f"{workers} worker{'s' if workers > 1 else ''}"


def report(args: argparse.Namespace, results: Results, baselines: dict) -> None:
    print(
        f"collection of {args.clients} clients x {args.reports} reports, concurrency "
        f"{args.concurrency}, fleet in {args.fleet_processes} processes, stand-in set "
        f"(majority writes, auth+TLS), {cores()} cores, {args.repeat} repeat(s)"
    )
    for label, repeats in results.items():
        print(f"  {label}:")
        for i, name in enumerate(ROUNDS):
            for r in (pair[i] for pair in repeats):
                per_core = 1 / r.cpu_per_client if r.cpu_per_client else float("inf")
                print(
                    f"    {name:26s} {r.clients_per_s:7.1f} clients/s {r.seconds:6.2f} s "
                    f"{r.cpu_per_client * 1000:5.2f} ms CPU/client = {per_core:5.0f} "
                    "clients/s/core"
                )
                print(
                    f"      pulled {r.pulled} failed {r.failed} stored {r.stored} in "
                    f"{r.writes} group writes; hubd's own process {r.hubd_cpu:.2f} s CPU of "
                    f"{r.collector_cpu:.2f}; bounded by {r.bound()}"
                )
    for workers in args.workers:
        repeats = results[_label(workers)]
        # What the collector's own CPU allows, each worker a core: where it goes with the
        # fleet and the database on other machines (as in production).
        cap = [workers / median(p[i].cpu_per_client for p in repeats) for i in (0, 1)]
        print(
            f"  {_label(workers)}: collector CPU alone allows {cap[0]:,.0f} / {cap[1]:,.0f} "
            f"clients/s (round 1 / 2; median CPU per client); 15 workers (16 cores): "
            f"{cap[0] * 15 / workers:,.0f} / {cap[1] * 15 / workers:,.0f}"
        )
    if SSH_BEFORE in results and IN_PROCESS in results:
        for i, name in enumerate(("round 1", "round 2")):
            now = median(p[i].cpu_per_client for p in results[IN_PROCESS])
            was = median(p[i].cpu_per_client for p in results[SSH_BEFORE])
            print(
                f"  in-process, {name}: {was * 1000:.2f} ms CPU/client with SSH as before, "
                f"{now * 1000:.2f} now: {was / now:.2f}x less"
            )
    base = results.get(_label(1))
    for workers in args.workers:
        if base is None or workers == 1:
            continue
        mine = results[_label(workers)]
        for i, name in enumerate(("round 1", "round 2")):
            pairs = zip(mine, base, strict=True)
            ratios = [m[i].clients_per_s / b[i].clients_per_s for m, b in pairs]
            listed = ", ".join(f"{r:.2f}" for r in ratios)
            print(
                f"  {_label(workers)} / 1 worker, {name}: {median(ratios):.2f}x throughput "
                f"(median of {listed})"
            )
            # Whether the ratio could reach more here: the fleet and the database share
            # this machine's cores with the workers, at their CPU per client of this run.
            per_client = median(
                (m[i].collector_cpu + m[i].fleet_cpu + m[i].db_cpu) / max(m[i].pulled, 1)
                for m in mine
            )
            ceiling = cores() / per_client
            one = median(b[i].clients_per_s for b in base)
            print(
                f"    ceiling on {cores()} cores: collector, fleet and database together "
                f"{per_client * 1000:.2f} ms CPU/client, so at most {ceiling:,.0f} clients/s "
                f"= {ceiling / one:.2f}x 1 worker's median"
            )
    for name, (one, two) in baselines.items():
        ours = (results.get(_label(1)) or next(iter(results.values())))[0]
        for label, r, mine_r in (("round 1", one, ours[0]), ("round 2", two, ours[1])):
            print(
                f"  {name:19s} {label}: {r['clients_per_s']:7.1f} clients/s  "
                f"{r['cpu_per_client'] * 1000:6.2f} ms CPU/client  pulled {r['pulled']}; "
                f"hubcluster is {mine_r.clients_per_s / max(r['clients_per_s'], 1e-9):.2f}x "
                f"the throughput at "
                f"{r['cpu_per_client'] / max(mine_r.cpu_per_client, 1e-9):.2f}x less CPU per client"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--reports", type=int, default=3)
    parser.add_argument(
        "--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="hubd's default unless given"
    )
    parser.add_argument(
        "--workers",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 2],
        help="collector worker counts to measure, in one run (default 1,2)",
    )
    parser.add_argument("--fleet-processes", type=int, default=2)
    parser.add_argument(
        "--repeat", type=int, default=1, help="measure every collector this many times"
    )
    parser.add_argument(
        "--no-in-process", action="store_true", help="skip the one-process collector baseline"
    )
    parser.add_argument(
        "--ssh-before",
        action="store_true",
        help="also the in-process collector with SSH as before issue 15 (chacha20, keepalive)",
    )
    parser.add_argument(
        "--baselines",
        action="store_true",
        help="also time OpenSSH + xargs -P and Ansible raw (run setup_baselines.sh)",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
