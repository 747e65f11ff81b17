"""What the collector's kept connections hold: open files and memory per client.

Run: .venv/bin/python -m benchmarks.kept_connections [--clients 2000]

The collector keeps one SSH connection (and its `reports --stream` channel) per client
across rounds, so a worker holds as many as it has clients. Against the stand-in set and
N report services in other processes (as `benchmarks/collection.py` runs them), the real
collector in this process pulls every client twice. Open files are counted with the
connections kept against the baseline of the same process once the collector has closed
them; resident memory against the baseline of the same process before the first round
(an upper bound per connection: it includes what the rounds allocate once, and Python
keeps freed memory for reuse rather than returning it, so closing does not lower it).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import tempfile
from pathlib import Path

from benchmarks.collection import produce, start_fleet, start_standin
from hub.collector import Collector
from hub.config import CollectorSettings
from hub.keystore import KeyStore
from hub.mongo import connect, connect_member, use_access
from hub.store import HubStore
from hubcluster.keys import ensure_key_pair, import_public_key


def _files() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS:")).split()[1])


async def _settle() -> tuple[int, int]:
    await asyncio.sleep(1.0)  # closed connections finish closing
    gc.collect()
    return _files(), _rss_kib()


async def measure(count: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hubcluster-kept-"))
    keystore = KeyStore(tmp / "hub" / "ppkeys")
    hub_key, _ = ensure_key_pair(keystore.hub_private_key_path)
    (tmp / "hub.pub").write_bytes(hub_key.export_public_key())
    standin, uri, access = start_standin()
    use_access(access)
    fleet, clients = start_fleet(count, tmp, 3, 2)
    try:
        store = HubStore(connect(uri, timeout=30))
        store.ensure_indexes()
        for i, (sha, port) in enumerate(clients):
            pub = (tmp / "clients" / f"c{i:05d}" / "ppkeys" / "localhost.pub").read_bytes()
            keystore.add(import_public_key(pub))
            store.record_host(sha, f"c{i:05d}", "127.0.0.1", port, hub="bench")
        primary = "{}:{}".format(*store.client.primary)
        own = HubStore(connect_member(uri, primary, timeout=10, retryWrites=False))
        settings = CollectorSettings(ifelapsed=0)
        collector = Collector(own, settings, "bench", hub_key, keystore.get, lambda: True)
        _, before_rss = await _settle()
        rounds = [await collector.run_round()]
        produce(fleet)
        rounds.append(await collector.run_round())
        kept_files, kept_rss = await _settle()
        await collector.close()
        closed_files, closed_rss = await _settle()
    finally:
        for proc in fleet:
            proc.kill()
        standin.kill()
    pulled = rounds[-1].pulled
    files = kept_files - closed_files
    held = kept_rss - before_rss
    print(f"kept collector connections, {count} clients, 2 rounds ({pulled} pulled)")
    print(f"  open files: {kept_files} kept, {closed_files} once closed (the baseline):")
    print(f"    {files} more, {files / pulled:.2f} a client")
    print(f"  resident memory: {before_rss / 1024:.1f} MiB before the rounds (the baseline),")
    print(f"    {kept_rss / 1024:.1f} MiB kept, {closed_rss / 1024:.1f} MiB once closed:")
    print(f"    {held / 1024:.1f} MiB more, {held / pulled:.1f} KiB a client at most")
    if any(r.failed for r in rounds):
        print(f"  FAILED pulls: {[len(r.failed) for r in rounds]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000)
    asyncio.run(measure(parser.parse_args().clients))


if __name__ == "__main__":
    main()
