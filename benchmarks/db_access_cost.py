"""What access control and TLS cost a client of the stand-in, against the open mode measured
in the same run: a new client's first command (TLS handshake + SCRAM-SHA-256 login), and
commands on a client already connected (pooled, logged in once).

    .venv/bin/python -m benchmarks.db_access_cost [--clients 40] [--reads 400]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import pymongo

from hubctl.lab.standin import StandinCluster
from hubctl.lab.standin.credentials import ClusterCredentials


def _timed(action: Callable[[], object], times: int) -> list[float]:
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        action()
        spent.append(time.perf_counter() - started)
    return spent


def measure(secure: bool, clients: int, reads: int) -> tuple[float, float]:
    """(median ms of a new client's first find_one, median ms of a find_one when pooled)."""
    credentials = None if secure else ClusterCredentials(auth=False, tls=False)
    with StandinCluster(election_timeout=1.0, credentials=credentials) as cluster:
        cluster.initiate(election_timeout_ms=1000)
        with cluster.client("operator") as setup:
            setup.cfreport.probe.insert_one({"_id": 1})
        primary = cluster.primary()
        assert primary is not None

        def new_client() -> None:
            client: pymongo.MongoClient = cluster.client("operator", member=primary)
            try:
                client.cfreport.probe.find_one({"_id": 1})
            finally:
                client.close()

        fresh = _timed(new_client, clients)
        with cluster.client("operator", member=primary) as pooled:
            pooled.cfreport.probe.find_one({"_id": 1})
            warm = _timed(lambda: pooled.cfreport.probe.find_one({"_id": 1}), reads)
    if credentials is not None:
        credentials.close()
    return statistics.median(fresh) * 1000, statistics.median(warm) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--reads", type=int, default=400)
    args = parser.parse_args()
    open_fresh, open_warm = measure(False, args.clients, args.reads)
    safe_fresh, safe_warm = measure(True, args.clients, args.reads)
    print(f"{'':28}{'open (baseline)':>16}{'auth+TLS':>10}{'ratio':>8}")
    print(
        f"{'new client, first find_one':28}{open_fresh:>13.2f} ms{safe_fresh:>7.2f} ms"
        f"{safe_fresh / open_fresh:>7.1f}x"
    )
    print(
        f"{'pooled find_one':28}{open_warm:>13.2f} ms{safe_warm:>7.2f} ms"
        f"{safe_warm / open_warm:>7.1f}x"
    )


if __name__ == "__main__":
    main()
