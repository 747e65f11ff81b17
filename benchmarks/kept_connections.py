"""What the collector's kept connections hold: open files and memory per client.

Run: .venv/bin/python -m benchmarks.kept_connections [--clients 2000]

The collector keeps one SSH connection (and its `reports --stream` channel) per client
across rounds, so a worker holds as many as it has clients. Against the stand-in set and
N report services in other processes (`benchmarks/loopback_fleet.py`), the real
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

from benchmarks.loopback_fleet import produce, start_loopback
from hub.collector import Collector
from hub.config import CollectorSettings


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
    lab = start_loopback(count, 3, 2, "hubcluster-kept-")
    try:
        own = lab.register()
        settings = CollectorSettings(ifelapsed=0)
        collector = Collector(own, settings, "bench", lab.hub_key, lab.keystore.get, lambda: True)
        _, before_rss = await _settle()
        rounds = [await collector.run_round()]
        produce(lab.fleet)
        rounds.append(await collector.run_round())
        kept_files, kept_rss = await _settle()
        await collector.close()
        closed_files, closed_rss = await _settle()
    finally:
        lab.stop()
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
