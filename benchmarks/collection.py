"""Collection throughput on loopback: the collector against N client report services.

Run: .venv/bin/python -m benchmarks.collection [--clients 200] [--reports 3] [--concurrency 50]
     [--baselines]   (also OpenSSH + xargs -P and Ansible raw; 1,000 clients: --clients 1000)

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
from hub.mongo import connect
from hub.replset import ReplicaSet
from hub.store import HubStore
from hubcluster.keys import ensure_key_pair, import_public_key

HERE = Path(__file__).resolve().parent


def start_standin() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from hubctl.app import main; main()",
            "lab",
            "mongo",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    uri = proc.stdout.readline().strip()
    proc.stdout.readline()  # the control URL; this benchmark kills nothing
    rs = ReplicaSet(uri)
    rs.initiate(rs.seeds, "CFEngineNova")
    rs.close()
    return proc, uri


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
    cpu0, t0, writes0 = time.process_time(), time.perf_counter(), collector.writer.writes
    figures = await collector.run_round()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "writes": collector.writer.writes - writes0,
        "pulled": figures.pulled,
        "failed": len(figures.failed),
        "stored": figures.stored,
        "seconds": wall,
        "clients_per_s": figures.pulled / wall,
        "cpu_per_client": cpu / max(figures.pulled, 1),
    }


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hubcluster-bench-"))
    keystore = KeyStore(tmp / "hub" / "ppkeys")
    hub_key, _ = ensure_key_pair(keystore.hub_private_key_path)
    (tmp / "hub.pub").write_bytes(hub_key.export_public_key())
    standin, uri = start_standin()
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
            f"failed {r['failed']} stored {r['stored']} in {r['writes']} group writes"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--reports", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--baselines",
        action="store_true",
        help="also time OpenSSH + xargs -P and Ansible raw (run setup_baselines.sh)",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
