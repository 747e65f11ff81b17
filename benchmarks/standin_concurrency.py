"""Stand-in throughput and responsiveness now that members serve connections concurrently.

Run: .venv/bin/python benchmarks/standin_concurrency.py [--seconds 3]

  writes  - majority inserts acknowledged per second from 1, 10 and 50 concurrent clients
            (threads on one pymongo client, a pool connection each), against the baseline
            of w:1 inserts from one client measured in the same run;
  hello   - latency of `hello` on a fresh connection to the primary, idle (the baseline) and
            while a majority write waits on that member (its peers cut off, elections slow).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import pymongo
from pymongo import WriteConcern

from hub.replset import ReplicaSet
from hubctl.lab.standin import StandinCluster

SLOW_ELECTIONS_MS = 60_000


def _writes_per_second(client: pymongo.MongoClient, clients: int, seconds: float, w) -> float:
    coll = client.get_database("bench", write_concern=WriteConcern(w)).writes
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def run(slot: int) -> None:
        while time.monotonic() < stop:
            coll.insert_one({"slot": slot})
            counts[slot] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - started)


def _hello_latencies(host: str, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        with pymongo.MongoClient(
            f"mongodb://{host}/?directConnection=true", serverSelectionTimeoutMS=5000
        ) as client:
            client.admin.command("hello")
        out.append((time.perf_counter() - started) * 1000)
    return out


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return f"median {statistics.median(values):6.2f} ms  p99 {p99:6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per throughput case")
    parser.add_argument("--hellos", type=int, default=50, help="hellos per latency case")
    args = parser.parse_args()
    with StandinCluster() as cluster:
        rs = ReplicaSet(cluster.uri)
        rs.initiate(cluster.hosts, cluster.set_name, election_timeout_ms=SLOW_ELECTIONS_MS)
        primary = rs.wait_for_primary(10)
        rs.close()
        client = pymongo.MongoClient(cluster.uri, maxPoolSize=60)
        client.admin.command("ping")
        base = _writes_per_second(client, 1, args.seconds, 1)
        print(f"baseline w:1, 1 client: {base:8.0f} writes/s")
        for clients in (1, 10, 50):
            rate = _writes_per_second(client, clients, args.seconds, "majority")
            print(
                f"w:majority, {clients:2d} clients: {rate:8.0f} writes/s "
                f"({rate / base:.2f}x the baseline)"
            )
        client.close()
        idle = _hello_latencies(primary, args.hellos)
        print(f"hello, idle primary:        {_ms(idle)}")
        cluster.isolate(primary)
        waiting = threading.Thread(target=_one_waiting_write, args=(primary,), daemon=True)
        waiting.start()
        time.sleep(0.3)
        busy = _hello_latencies(primary, args.hellos)
        still_waiting = waiting.is_alive()
        print(f"hello, a write waiting:     {_ms(busy)}")
        ratio = statistics.median(busy) / statistics.median(idle)
        print(
            f"ratio (median, waiting/idle): {ratio:.2f}x"
            f"; the write was still waiting at the end: {still_waiting}"
        )
        cluster.heal(primary)
        waiting.join(timeout=10)


def _one_waiting_write(host: str) -> None:
    with pymongo.MongoClient(f"mongodb://{host}/?directConnection=true") as client:
        client.get_database("bench", write_concern=WriteConcern("majority")).waits.insert_one(
            {"waits": True}
        )


if __name__ == "__main__":
    main()
