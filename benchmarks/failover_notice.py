"""How long pymongo takes to notice a new primary, after a stepdown and after a killed primary.

Run: .venv/bin/python benchmarks/failover_notice.py [--rounds 10] [--election-timeout 0.5]

Against the replica-set stand-in with pymongo's fastest heartbeat (500 ms, as hubd uses).
For each event it times, from the moment the operator's action returns:
  election  - until the stand-in has elected the new primary (its own event log),
  noticed   - until pymongo's topology names the new primary (what hubd's master watch sees),
  writable  - until a majority write through the set client succeeds on the new primary.
"""

from __future__ import annotations

import argparse
import statistics
import time

import pymongo
from pymongo.errors import PyMongoError

from hub.mongo import connect
from hub.replset import ReplicaSet
from hubctl.lab.standin import StandinCluster


def _name(address: tuple[str, int] | None) -> str | None:
    return f"{address[0]}:{address[1]}" if address else None


def _measure(cluster: StandinCluster, client: pymongo.MongoClient, old: str, t0: float) -> dict:
    noticed = writable = None
    coll = client.get_database("bench", write_concern=pymongo.WriteConcern("majority")).probe
    deadline = t0 + 30
    while time.time() < deadline and (noticed is None or writable is None):
        now_primary = _name(client.primary)
        if noticed is None and now_primary not in (None, old):
            noticed = time.time() - t0
        if writable is None:
            try:
                coll.insert_one({"t": time.time()})
                if _name(client.primary) != old:
                    writable = time.time() - t0
            except PyMongoError:
                pass
        time.sleep(0.005)
    elected = next(t for t, msg in reversed(cluster.events) if "elected primary" in msg) - t0
    return {"election": max(elected, 0.0), "noticed": noticed, "writable": writable}


def run(rounds: int, election_timeout: float) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {"stepdown": [], "kill": []}
    with StandinCluster(election_timeout=election_timeout) as cluster:
        rs = ReplicaSet(cluster.uri)
        rs.initiate(
            cluster.hosts, cluster.set_name, election_timeout_ms=int(election_timeout * 1000)
        )
        client = connect(cluster.uri, timeout=10)
        for _ in range(rounds):
            old = rs.wait_for_primary(20)
            client.admin.command("ping")
            t0 = time.time()
            rs.member_command(old, "replSetStepDown", 2, secondaryCatchUpPeriodSecs=1)
            results["stepdown"].append(_measure(cluster, client, old, time.time()))
            time.sleep(2.5)  # let the stepdown period lapse so every member is electable again
            old = rs.wait_for_primary(20)
            client.admin.command("ping")
            t0 = time.time()
            cluster.kill(old)
            results["kill"].append(_measure(cluster, client, old, t0))
            cluster.revive(old)
            time.sleep(1.0)
        client.close()
        rs.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--election-timeout", type=float, default=0.5)
    args = parser.parse_args()
    results = run(args.rounds, args.election_timeout)
    print(
        f"stand-in election timeout {args.election_timeout}s, pymongo heartbeat 500 ms, "
        f"{args.rounds} rounds; seconds from the action to each point (median / min / max)"
    )
    for event, rows in results.items():
        for key in ("election", "noticed", "writable"):
            values = [r[key] for r in rows if r[key] is not None]
            missing = len(rows) - len(values)
            print(
                f"  {event:8s} {key:9s} median {statistics.median(values):.3f}  "
                f"min {min(values):.3f}  max {max(values):.3f}"
                + (f"  ({missing} never)" if missing else "")
            )


if __name__ == "__main__":
    main()
