"""How soon the Node.js driver uses a new primary after the old one fails (stand-in).

Run: .venv/bin/python benchmarks/standin_real_clients.py [--rounds 3]

Installs the pinned driver as the real-client tier does (tests/standin/package.json, cached
in ~/.cache/hubcluster/npm). Each round: a fresh three-member stand-in, tests/standin/js/
driver_failover.js, and the primary killed, cut off from its peers (it stays up and steps
down), or stepped down. From that moment it prints the stand-in's election (its event log:
the baseline measured in the same run) and the driver's time:
  writing - a client writing w:majority with retryable writes: its first write
            acknowledged by the new primary;
  idle    - a client that stopped writing: its topology names the new primary, which only
            its monitors can learn (10 s polling without an awaitable hello).
Issue 13 measured 9.8-10.0 s for a 2 s election before the stand-in had one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import pymongo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.replset import ReplicaSet  # noqa: E402
from hubctl.lab.standin import StandinCluster  # noqa: E402
from tests.standin.node_clients import install  # noqa: E402
from tests.standin.test_real_clients import run_failover  # noqa: E402


def step_down(primary: str) -> None:
    with pymongo.MongoClient(f"mongodb://{primary}/?directConnection=true") as client:
        client.admin.command("replSetStepDown", 60, secondaryCatchUpPeriodSecs=10)


# how the primary is broken: (a cluster method or a function, the stand-in event it logs)
BROKE = {
    "killed": ("kill", " killed"),
    "isolated": ("isolate", " isolated from its peers"),
    "stepdown": (step_down, "stepped down (replSetStepDown"),
}


def one_round(clients, election_timeout: float, action: str, idle: bool) -> tuple[float, float]:
    with StandinCluster(election_timeout=election_timeout) as cluster:
        rs = ReplicaSet(cluster.uri)
        rs.initiate(
            cluster.hosts, cluster.set_name, election_timeout_ms=int(election_timeout * 1000)
        )
        rs.wait_for_primary(20)
        rs.close()
        with tempfile.TemporaryDirectory() as tmp:
            seen = run_failover(clients, cluster, Path(tmp), BROKE[action][0], idle=idle)
        killed = next(t for t, msg in cluster.events if BROKE[action][1] in msg)
        elected = next(t for t, msg in cluster.events if t > killed and "elected primary" in msg)
        if seen["errors"]:
            raise SystemExit(f"writes failed during failover: {seen['errors']}")
        after = seen["noticedAfterBreakMs" if idle else "firstWriteAfterBreakMs"]
        # From the stand-in's own record of the failure, as the election is measured.
        return elected - killed, (seen["brokeAt"] + after) / 1000.0 - killed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    clients = install()
    print(
        "client  | primary  | election timeout | election (baseline) | driver | driver adds (worst)"
    )
    cases = [(idle, a, t) for idle in (False, True) for a in BROKE for t in (1.0, 2.0)]
    for idle, action, election_timeout in cases:
        rounds = [one_round(clients, election_timeout, action, idle) for _ in range(args.rounds)]
        election = statistics.median(r[0] for r in rounds)
        driver = statistics.median(r[1] for r in rounds)
        worst = max(r[1] for r in rounds)
        print(
            f"{'idle' if idle else 'writing':7} | {action:8} | {election_timeout:15.1f}s | "
            f"{election:18.2f}s | {driver:5.2f}s | {driver - election:+.2f}s ({worst:.2f}s)"
        )


if __name__ == "__main__":
    main()
