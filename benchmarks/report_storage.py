"""Bytes per report, as agents write them and as the collector stores them in MongoDB.

Command: .venv/bin/python -m benchmarks.report_storage [--promises 3,30,300] [--runs 2]

For each policy size N: a hub service on loopback publishes a policy of N promises (the
lab's sample promises, repeated under new names), a client bootstraps and makes real agent
runs (client_agent.agent_run.run_agent, what `client-agent run` does), the real collector
pulls them from the client's report service into the stand-in replica set, and the stored
documents are read back. Printed: the report lines' bytes (what crosses SSH), the BSON
bytes of each stored document by kind, and an ESTIMATE of index bytes per report (the
stand-in keeps no B-trees: the indexed fields' BSON size plus a record id and per-entry
overhead per index, before WiredTiger's prefix compression). The baseline row is the
smallest policy.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path
from typing import Any

import bson

from client_agent.agent_run import run_agent
from client_agent.bootstrap import bootstrap
from client_agent.report_service import start_report_service
from client_agent.spool import Spool
from client_agent.state import ClientState
from hub.collector import Collector
from hub.config import CollectorSettings
from hub.mongo import connect
from hub.replset import ReplicaSet
from hub.store import REPORTS, HubStore
from hubcluster.keys import key_sha
from hubcluster.messages import report_line
from hubctl.lab.standin import StandinCluster
from tests.sshsvc.harness import Hubs, LoopThread, client_config

# The stored reports' indexes (hub.store.HubStore.ensure_indexes) and the fields each holds.
INDEXES = {
    "_id_": ("_id",),
    "host_epoch_seq": ("host", "epoch", "seq"),
    "kind_time": ("kind", "time"),
    "host_kind_time": ("host", "kind", "time"),
}
# Per index entry beyond the key: the record id and WiredTiger's cell headers (an estimate).
ENTRY_OVERHEAD = 12


def policy(count: int) -> str:
    blocks = []
    for i in range(count):
        if i % 3 == 0:
            blocks.append(f'name = "marker_{i:04d}"\ncheck = "test -f m{i}"\nrepair = "touch m{i}"')
        elif i % 3 == 1:
            blocks.append(f'name = "always_{i:04d}"\ncheck = "true"')
        else:
            blocks.append(f'name = "sunday_{i:04d}"\ncheck = "true"\nif = "Sunday"')
    return "".join(f"[[promise]]\n{block}\n\n" for block in blocks)


def index_bytes(doc: dict[str, Any]) -> int:
    total = 0
    for fields in INDEXES.values():
        key = {name: doc[name] for name in fields if name in doc}
        total += len(bson.encode(key)) + ENTRY_OVERHEAD
    return total


def measure(count: int, runs: int, root: Path, uri: str) -> dict[str, Any]:
    loop = LoopThread()
    hubs = Hubs(loop, root, name=f"hub{count}_")
    try:
        hubs.publish({"promises.toml": policy(count)})
        config = client_config(root, f"client{count}")
        asyncio.run(bootstrap(config, hubs.addresses[0], hub_fingerprint=hubs.fingerprint))
        for _ in range(runs):
            asyncio.run(run_agent(config))
        state = ClientState(config.workdir)
        spool = Spool(state.spool_dir)
        line_bytes = [len(line.encode()) + 1 for line in spool_lines(spool)]
        acceptor = loop.run(start_report_service(state, ("127.0.0.1", 0), spool))
        client_key = state.client_key().convert_to_public()
        sha = key_sha(client_key)
        client = connect(uri, timeout=10)
        store = HubStore(client)
        store.ensure_indexes()
        store.record_host(sha, config.hostname, "127.0.0.1", acceptor.get_port(), hub="bench")
        collector = Collector(
            store,
            CollectorSettings(ifelapsed=0),
            "bench",
            hubs.hub_key,
            lambda _: client_key,
            lambda: True,
        )

        async def pull() -> Any:
            try:
                return await collector.run_round()
            finally:
                await collector.close()

        figures = asyncio.run(pull())
        assert not figures.failed, figures.failed
        docs = list(store.db[REPORTS].find({"host": sha}))
        store.forget_host(sha)  # the next policy's round must not pull this closed service
        client.close()
        loop.close_acceptor(acceptor)
        spool.close()
    finally:
        hubs.close()
        loop.stop()
    by_kind: dict[str, list[int]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(len(bson.encode(doc)))
    return {
        "promises": count,
        "reports": len(docs),
        "line_bytes": statistics.mean(line_bytes),
        "bson": {kind: statistics.mean(sizes) for kind, sizes in by_kind.items()},
        "index": statistics.mean(index_bytes(doc) for doc in docs),
    }


def spool_lines(spool: Spool) -> list[str]:
    """The lines the report service answers with (hubcluster.messages.report_line)."""
    return [report_line(record, spool.epoch) for record in spool.read_since(0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--promises", default="3,30,300")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    counts = [int(n) for n in args.promises.split(",")]
    root = Path(tempfile.mkdtemp(prefix="hubcluster-storage-"))
    # Sizes do not depend on access control or TLS, so the stand-in runs open here.
    with StandinCluster(3, election_timeout=2.0, auth=False, tls=False) as cluster:
        rs = ReplicaSet(cluster.uri)
        rs.initiate(rs.seeds, "CFEngineNova")
        rs.close()
        rows = [measure(n, args.runs, root / f"p{n}", cluster.uri) for n in counts]
    base = rows[0]
    base_total = sum(base["bson"].values())
    print(f"{args.runs} agent runs per policy; mean bytes per report (ratio: to {counts[0]})")
    print(
        f"{'promises':>8} {'line':>7} {'outcome BSON':>12} {'inventory BSON':>14} "
        f"{'index est.':>10} {'ratio':>6}"
    )
    for row in rows:
        total = sum(row["bson"].values())
        print(
            f"{row['promises']:8d} {row['line_bytes']:7.0f} "
            f"{row['bson'].get('outcome', 0):12.0f} {row['bson'].get('inventory', 0):14.0f} "
            f"{row['index']:10.0f} {total / base_total:6.2f}"
        )


if __name__ == "__main__":
    main()
