"""`hubctl query compliance`: reading the collector's per-host summaries vs scanning reports.

Run: .venv/bin/python benchmarks/compliance_read.py [--hosts 1000] [--runs 5] [--promises 10]

Fills a stand-in set through the collector's own write path (HubStore.store_pulls, one pull
per host per run, each run an outcome and an inventory shaped by hubcluster.report_kinds),
then times, from a secondary:
  summary  - Queries.compliance(): one document per host from `latest_outcomes`;
  baseline - the same answer from `reports`: each host's newest outcome by aggregation
             ($match kind, $sort seq, $group $first), then counted in Python, which is what
             the query did before the collector kept summaries.
It also times the summaries' share of the write path: the whole store_pulls (which writes
them) against the same summary upserts done alone into a scratch database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from collections import Counter

from hub.mongo import connect
from hub.outcome_summary import write_latest_outcomes
from hub.queries import Queries, read_preference
from hub.replset import ReplicaSet
from hub.store import REPORTS, HubStore, Pull
from hubcluster import report_kinds as rk
from hubctl.lab.standin import StandinCluster

STATUS_CYCLE = (rk.KEPT, rk.KEPT, rk.REPAIRED, rk.NOT_KEPT, rk.SKIPPED)


def _pull(host: str, index: int, run: int, promises: int) -> Pull:
    results = [
        rk.promise_result(f"promise_{p:02d}", STATUS_CYCLE[(index + p + run) % 5], "r", 0.01)
        for p in range(promises)
    ]
    outcome = rk.outcome_payload(
        release="0123456789abcdef",
        server="127.0.0.1:5308",
        exit_code=0,
        error=None,
        promises=results,
    )
    inventory = rk.inventory_payload(
        hostname=host,
        os="Debian 12",
        kernel="6.1",
        uptime=1.0,
        addresses=["127.0.0.1"],
        agent_version="0.1.0",
        policy_release="0123456789abcdef",
        policy_server=None,
    )
    now = time.time()
    records = [
        {"seq": 2 * run + 1, "time": now, "kind": rk.OUTCOME, "payload": outcome},
        {"seq": 2 * run + 2, "time": now, "kind": rk.INVENTORY, "payload": inventory},
    ]
    return Pull(host, records, [], 2 * run + 2, dt.datetime.now(dt.UTC))


def _scan_reports(db) -> dict[str, Counter]:
    latest = db[REPORTS].aggregate(
        [
            {"$match": {"kind": rk.OUTCOME}},
            {"$sort": {"seq": -1}},
            {"$group": {"_id": "$host", "payload": {"$first": "$payload"}}},
        ]
    )
    counts: dict[str, Counter] = {}
    for doc in latest:
        for name, status in rk.promise_statuses(doc["payload"]):
            counts.setdefault(name, Counter())[status] += 1
    return counts


def _median(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--promises", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with StandinCluster(election_timeout=1.0) as cluster:
        rs = ReplicaSet(cluster.uri)
        rs.initiate(cluster.hosts, cluster.set_name, election_timeout_ms=1000)
        rs.close()
        client = connect(cluster.uri, timeout=300)  # the baseline scan is slow at scale
        store = HubStore(client)
        store.ensure_indexes()
        hosts = [f"{i:064x}" for i in range(args.hosts)]
        for i, host in enumerate(hosts):
            store.record_host(host, f"host{i:05d}", "127.0.0.1", 5309, hub="hub1")
        write_total = write_summary = 0.0
        scratch = client.get_database("bench_summary", write_concern=store.db.write_concern)
        for run in range(args.runs):
            pulls = [_pull(h, i, run, args.promises) for i, h in enumerate(hosts)]
            for start in range(0, len(pulls), 200):  # the collector's group-commit size
                group = pulls[start : start + 200]
                t0 = time.perf_counter()
                store.store_pulls(group, "hub1")
                write_total += time.perf_counter() - t0
                # The same summary upserts alone, into a scratch database: their share.
                t0 = time.perf_counter()
                write_latest_outcomes(scratch, [(p.host, p.records) for p in group], _now())
                write_summary += time.perf_counter() - t0
        q = Queries(client, read_preference("secondaryPreferred", 90))
        view = q.compliance()
        db = client.get_database("cfreport", read_preference=q.db.read_preference)
        scanned = _scan_reports(db)
        for row in view["promises"]:  # both ways give the same answer
            assert all(row[s] == scanned[row["promise"]][s] for s in rk.STATUSES), row
        summary = _median(q.compliance, args.rounds)
        baseline = _median(lambda: _scan_reports(db), args.rounds)
        client.close()
    reports = args.hosts * args.runs * 2
    print(f"hosts {args.hosts}, runs {args.runs}, reports {reports}, promises {args.promises}")
    print(f"compliance from summaries (median of {args.rounds}): {summary:.3f} s")
    print(f"baseline, aggregation over reports:  {baseline:.3f} s")
    print(f"ratio baseline/summary: {baseline / summary:.1f}x")
    print(f"write path: store_pulls {write_total:.2f} s in all (groups of 200 hosts);")
    print(f"  the summary upserts alone: {write_summary:.2f} s ({write_summary / write_total:.0%})")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


if __name__ == "__main__":
    main()
