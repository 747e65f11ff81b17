"""Collection throughput on loopback, and the time from a killed primary to the next stored report.

Run: .venv/bin/python benchmarks/collection.py [--clients 200] [--reports 3] [--concurrency 50]

The stand-in replica set runs in its own process (`hubctl lab mongo`), the N client report
services in another (`benchmarks/fleet_server.py`), the collector here, so the CPU seconds
reported are the collector's own. Round 1 opens every SSH connection; round 2 reuses them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.collection_baselines import ansible_round, openssh_round, prepare
from hub.collector import Collector
from hub.config import CollectorSettings
from hub.keystore import KeyStore
from hub.master_watch import MasterWatch
from hub.mongo import connect
from hub.replset import ReplicaSet
from hub.store import HubStore
from hubcluster.keys import ensure_key_pair, import_public_key

HERE = Path(__file__).resolve().parent


def start_standin(election_timeout: float) -> tuple[subprocess.Popen, str, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from hubctl.app import main; main()",
            "lab",
            "mongo",
            "--election-timeout",
            f"{election_timeout}s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    uri = proc.stdout.readline().strip()
    control = proc.stdout.readline().strip()
    rs = ReplicaSet(uri)
    rs.initiate(rs.seeds, "CFEngineNova", election_timeout_ms=int(election_timeout * 1000))
    rs.close()
    return proc, uri, control


def start_fleet(count: int, root: Path, reports: int) -> tuple[subprocess.Popen, list]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "fleet_server.py"), str(count), str(root), str(reports)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc, json.loads(proc.stdout.readline())


def produce(fleet: subprocess.Popen) -> None:
    fleet.stdin.write("produce\n")
    fleet.stdin.flush()
    assert fleet.stdout.readline().strip() == "ok"


async def timed_round(collector: Collector) -> dict:
    cpu0, t0 = time.process_time(), time.perf_counter()
    figures = await collector.run_round()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "pulled": figures.pulled,
        "failed": len(figures.failed),
        "stored": figures.stored,
        "seconds": wall,
        "clients_per_s": figures.pulled / wall,
        "cpu_per_client": cpu / max(figures.pulled, 1),
    }


class FirstStore(HubStore):
    """Notes when the first report of the new master lands (benchmark instrumentation)."""

    first_at: float | None = None

    def store_reports(self, host: str, records: list, hub: str) -> int:
        stored = super().store_reports(host, records, hub)
        if stored and self.first_at is None:
            self.first_at = time.time()
        return stored


async def failover_to_first_report(uri: str, control: str, hub_key, keystore, settings) -> dict:
    """Kill the primary; a watch on each other member starts its collector when it wins."""
    from hubctl.lab.standin.control import control_request

    rs = ReplicaSet(uri)
    old = rs.wait_for_primary(10)
    others = [m for m in rs.seeds if m != old]
    rs.close()
    stores = {m: FirstStore(connect(uri, timeout=10)) for m in others}
    collectors: dict[str, Collector] = {}
    elected: dict[str, float] = {}
    stop = asyncio.Event()

    def handler(member: str):
        async def on_change(_old, new) -> None:
            if new.is_master:
                elected[member] = time.time()
                asyncio.create_task(collectors[member].run_round())

        return on_change

    watches = {m: MasterWatch(uri, m, handler(m)) for m in others}
    for m in others:
        collectors[m] = Collector(
            stores[m], settings, m, hub_key, keystore.get, lambda m=m: watches[m].state.is_master
        )
    tasks = [asyncio.create_task(w.run(stop)) for w in watches.values()]
    await asyncio.sleep(1.0)
    t0 = time.time()
    await asyncio.to_thread(control_request, control, "kill", old)
    deadline = time.time() + 60
    while time.time() < deadline and not any(s.first_at for s in stores.values()):
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.gather(*tasks)
    first = min(s.first_at for s in stores.values() if s.first_at)
    for c in collectors.values():
        await c.close()
    for w in watches.values():
        w.close()
    return {"to_new_master": min(elected.values()) - t0, "to_first_report": first - t0}


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hubcluster-bench-"))
    keystore = KeyStore(tmp / "hub" / "ppkeys")
    hub_key, _ = ensure_key_pair(keystore.hub_private_key_path)
    (tmp / "hub.pub").write_bytes(hub_key.export_public_key())
    standin, uri, control = start_standin(args.election_timeout)
    fleet, clients = start_fleet(args.clients, tmp, args.reports)
    try:
        client = connect(uri, timeout=10)
        store = HubStore(client)
        store.ensure_indexes()
        for i, (sha, port) in enumerate(clients):
            pub = (tmp / "clients" / f"c{i:05d}" / "ppkeys" / "localhost.pub").read_bytes()
            keystore.add(import_public_key(pub))
            store.record_host(sha, f"c{i:05d}", "127.0.0.1", port, hub="bench")
        settings = CollectorSettings(concurrency=args.concurrency, ifelapsed=0)
        collector = Collector(store, settings, "bench", hub_key, keystore.get, lambda: True)
        first = await timed_round(collector)
        produce(fleet)
        second = await timed_round(collector)
        await collector.close()
        client.close()
        baselines = {}
        if args.baselines:
            files = prepare(tmp, clients, keystore.hub_private_key_path)
            for name, fn in (("OpenSSH + xargs -P", openssh_round), ("Ansible raw", ansible_round)):
                produce(fleet)
                one = fn(tmp, files, args.clients, args.concurrency)
                produce(fleet)
                two = fn(tmp, files, args.clients, args.concurrency)
                baselines[name] = (one, two)
        produce(fleet)
        failover = await failover_to_first_report(uri, control, hub_key, keystore, settings)
    finally:
        fleet.stdin.close()
        fleet.wait(timeout=30)
        standin.terminate()
        standin.wait(timeout=30)
    print(
        f"collection of {args.clients} clients x {args.reports} reports, concurrency "
        f"{args.concurrency}, stand-in replica set (majority writes)"
    )
    for name, r in (("round 1 (new connections)", first), ("round 2 (reused connections)", second)):
        print(
            f"  {name:30s} {r['clients_per_s']:7.1f} clients/s  {r['seconds']:6.2f} s  "
            f"{r['cpu_per_client'] * 1000:6.2f} ms CPU/client  pulled {r['pulled']} "
            f"failed {r['failed']} stored {r['stored']}"
        )
    ratio = second["clients_per_s"] / first["clients_per_s"]
    print(f"  round 2 / round 1 throughput: {ratio:.2f}x")
    for name, (one, two) in baselines.items():
        for label, r, ours in (("round 1", one, first), ("round 2", two, second)):
            print(
                f"  {name:19s} {label}: {r['clients_per_s']:7.1f} clients/s  "
                f"{r['cpu_per_client'] * 1000:6.2f} ms CPU/client  pulled {r['pulled']}; "
                f"hubcluster is {ours['clients_per_s'] / max(r['clients_per_s'], 1e-9):.2f}x "
                f"the throughput at {r['cpu_per_client'] / max(ours['cpu_per_client'], 1e-9):.2f}x "
                "less CPU per client"
            )
    print(
        f"  killed primary -> new master: {failover['to_new_master']:.2f} s; -> its first stored "
        f"report: {failover['to_first_report']:.2f} s (stand-in election timeout "
        f"{args.election_timeout:g} s, master watch polls every 0.25 s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--reports", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--election-timeout", type=float, default=2.0)
    parser.add_argument(
        "--baselines",
        action="store_true",
        help="also time OpenSSH + xargs -P and Ansible raw (run setup_baselines.sh)",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
