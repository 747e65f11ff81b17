"""A hub's /metrics scrape with a large fleet in the store: size, and time warm and cold.

Run: .venv/bin/python -m benchmarks.metrics_scrape [--hosts 10000] [--rounds 5]

Fills a stand-in set through the collector's own write paths (HubStore.record_host,
record_last_seen, store_pulls with outcome reports shaped by hubcluster.report_kinds; a
tenth of the hosts last seen an hour ago, so stale) and a ppkeys/ directory with one real
key per host, then times what the /metrics route does (MetricSources.refresh + the
library's exposition) on a hub object holding what hubd holds:
  warm     - a scrape within the fleet cache's minute (what nearly every scrape costs);
  cold     - a scrape that waits for the fleet figures and ppkeys/ to be read: the first
             scrape only; later reads run once a minute in the background;
  baseline - Queries.hosts(), the per-host scan a scrape would do without the cache.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import asyncssh

from benchmarks.compliance_read import _pull
from hub.master_watch import MasterState
from hub.metrics import HubMetrics
from hub.metrics_sources import MetricSources
from hub.mongo import connect
from hub.queries import Queries, read_preference
from hub.replset import ReplicaSet
from hub.store import HubStore
from hubcluster.keys import key_sha, ppkey_filename
from hubctl.lab.standin import StandinCluster


def _median(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _fill(store: HubStore, ppkeys: Path, count: int) -> None:
    now = dt.datetime.now(dt.UTC)
    seen = {}
    hosts = []
    for i in range(count):
        key = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
        sha = key_sha(key)
        (ppkeys / ppkey_filename(sha)).write_bytes(key.export_public_key())
        store.record_host(sha, f"host{i:05d}", "127.0.0.1", 5309, hub="hub1")
        seen[sha] = now - dt.timedelta(hours=1) if i % 10 == 0 else now
        hosts.append(sha)
    for start in range(0, count, 1000):
        part = dict(list(seen.items())[start : start + 1000])
        store.record_last_seen("hub1", part)
    pulls = [_pull(h, i, 0, 10) for i, h in enumerate(hosts)]
    for start in range(0, len(pulls), 200):  # the collector's group-commit size
        store.store_pulls(pulls[start : start + 200], "hub1")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with StandinCluster(election_timeout=1.0) as cluster, tempfile.TemporaryDirectory() as tmp:
        rs = ReplicaSet(cluster.uri)
        rs.initiate(cluster.hosts, cluster.set_name, election_timeout_ms=1000)
        rs.close()
        client = connect(cluster.uri, timeout=300)
        store = HubStore(client)
        store.ensure_indexes()
        ppkeys = Path(tmp) / "ppkeys"
        ppkeys.mkdir()
        filled = time.perf_counter()
        _fill(store, ppkeys, args.hosts)
        filled = time.perf_counter() - filled
        # What MetricSources reads of hubd: its config, clients, master watch and keystore.
        from hub.keystore import KeyStore

        me = SimpleNamespace(mongo=cluster.hosts[0])
        config = SimpleNamespace(
            mongo_uri=cluster.uri,
            me=me,
            max_staleness=90.0,
            collector=SimpleNamespace(interval=60.0),
            masterfiles=Path(tmp) / "masterfiles",
        )
        watch = SimpleNamespace(
            state=MasterState(True, cluster.hosts[0], True), last_answer=time.monotonic()
        )
        node = SimpleNamespace(
            config=config,
            client=client,
            watch=watch,
            keystore=KeyStore(ppkeys),
            hub_of=lambda member: member,
        )
        metrics = HubMetrics("hub1")
        sources = MetricSources(node, metrics)  # type: ignore[arg-type]
        loop = asyncio.new_event_loop()

        def scrape() -> bytes:
            loop.run_until_complete(sources.refresh())
            return metrics.exposition()

        def cold() -> bytes:
            sources.fleet = None  # the scrape waits for the read, as only the first does
            return scrape()

        body = cold()
        fresh = metrics.clients.labels("fresh")._value.get()
        stale = metrics.clients.labels("stale")._value.get()
        assert (fresh, stale) == (args.hosts - args.hosts // 10, args.hosts // 10), (fresh, stale)
        warm_s = _median(scrape, args.rounds)
        cold_s = _median(cold, args.rounds)
        keys_s = _median(lambda: len(node.keystore.keys()), args.rounds)
        queries = Queries(client, read_preference("primaryPreferred", 90))
        baseline_s = _median(queries.hosts, args.rounds)
        loop.close()
        sources.close()
        client.close()
    series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
    print(f"hosts {args.hosts} (filled in {filled:.0f} s), rounds {args.rounds} (medians)")
    print(f"scrape size: {len(body)} bytes, {series} series")
    print(f"warm scrape (fleet figures cached): {warm_s * 1000:.1f} ms")
    print(f"cold scrape (waits for fleet figures + ppkeys/): {cold_s * 1000:.1f} ms")
    print(
        f"  of which counting ppkeys/ (KeyStore.keys(), as hub state does): {keys_s * 1000:.1f} ms"
    )
    print(f"baseline, Queries.hosts() scan: {baseline_s * 1000:.1f} ms")
    print(f"ratio baseline/warm: {baseline_s / warm_s:.1f}x; cold/warm: {cold_s / warm_s:.1f}x")


if __name__ == "__main__":
    main()
