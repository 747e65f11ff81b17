"""Serve N client report services (the product's) from one process, for the benchmarks.

Usage: python benchmarks/fleet_server.py N DIR REPORTS [FIRST]
Reads the hub key from DIR/hub.pub, makes N clients under DIR/clients numbered from FIRST
(default 0; reusing existing ones), gives each REPORTS reports, prints one JSON line
[[sha, port], ...] when serving, then on each stdin line "produce" adds REPORTS more
reports per client and answers "ok"; stops at EOF. A large fleet runs as several of these
processes (benchmarks/collection.py --fleet-processes), so that it is not the bottleneck.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import asyncssh

from client_agent.report_service import start_report_service
from client_agent.spool import Spool
from client_agent.state import ClientState
from hubcluster.keys import key_sha
from hubcluster.report_kinds import (
    INVENTORY,
    OUTCOME,
    inventory_payload,
    outcome_payload,
    promise_result,
)

# Shaped as agents send them, so the collector stores them rather than refusing them.
OUTCOME_SAMPLE = outcome_payload(
    release=None,
    server=None,
    exit_code=0,
    error=None,
    promises=[promise_result("motd", "kept", "ok", 0.01)],
)
INVENTORY_SAMPLE = inventory_payload(
    hostname="client",
    os="linux",
    kernel="6.1",
    uptime=1.0,
    addresses=["127.0.0.1"],
    agent_version="0",
    policy_release=None,
    policy_server=None,
)


def produce(spools: list[Spool], n: int) -> None:
    for spool in spools:
        items = [(OUTCOME, OUTCOME_SAMPLE)] + [(INVENTORY, INVENTORY_SAMPLE)] * (n - 1)
        spool.append_many(items)


async def main() -> None:
    count, root, reports = int(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    first = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    hub_key = asyncssh.read_public_key(str(root / "hub.pub"))
    spools, out = [], []
    acceptors = []
    for i in range(first, first + count):
        state = ClientState(root / "clients" / f"c{i:05d}")
        key, _ = state.ensure_key_pair()
        state.pin_hub_key(hub_key)
        spool = Spool(state.spool_dir)
        spools.append(spool)
        acceptor = await start_report_service(state, ("127.0.0.1", 0), spool)
        acceptors.append(acceptor)
        out.append([key_sha(key), acceptor.get_port()])
    produce(spools, reports)
    print(json.dumps(out), flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        if line.strip() == "produce":
            await asyncio.to_thread(produce, spools, reports)
            print("ok", flush=True)
    for acceptor in acceptors:
        acceptor.close()


if __name__ == "__main__":
    asyncio.run(main())
