"""A fleet of real client report services on loopback, registered with a hub, for the collector.

Each client has its own workdir (key pair, pinned hub key, spool) and runs the product's
report service (`client_agent.report_service`) in the caller's event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import asyncssh

from client_agent.report_service import start_report_service
from client_agent.spool import Spool
from client_agent.state import ClientState
from hub.collector import Collector
from hub.collector_pool import CollectorPool
from hub.collector_worker import WorkerSpec
from hub.config import CollectorSettings
from hub.keystore import KeyStore
from hub.mongo import access_as, connect_member
from hub.store import HubStore
from hubcluster.keys import ensure_key_pair, key_sha
from hubcluster.report_kinds import (
    INVENTORY,
    OUTCOME,
    inventory_payload,
    outcome_payload,
    promise_result,
)

SETTINGS = CollectorSettings(
    concurrency=8, connect_timeout=3, host_timeout=5, ifelapsed=0, expireafter=10, batch_size=4
)

OUTCOME_SAMPLE = outcome_payload(
    release=None,
    server=None,
    exit_code=0,
    error=None,
    promises=[promise_result("motd", "kept", "check passed", 0.01)],
)
INVENTORY_SAMPLE = inventory_payload(
    hostname="client",
    os="Debian",
    kernel="6.1",
    uptime=1.0,
    addresses=["127.0.0.1"],
    agent_version="0",
    policy_release=None,
    policy_server=None,
)


@dataclass
class Client:
    name: str
    state: ClientState
    spool: Spool
    sha: str
    acceptor: asyncssh.SSHAcceptor | None = None
    produced: list[int] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self.acceptor is not None
        return self.acceptor.get_port()

    def produce(self, n: int) -> None:
        """One agent run's worth of reports: an outcome and inventories, shaped as agents send."""
        items = [(OUTCOME, OUTCOME_SAMPLE)] + [(INVENTORY, INVENTORY_SAMPLE)] * (n - 1)
        self.produced.extend(self.spool.append_many(items))


class Fleet:
    def __init__(self, root: Path, hub_workdir: Path) -> None:
        self.root = root
        self.keystore = KeyStore(hub_workdir / "ppkeys")
        self.hub_key, _ = ensure_key_pair(self.keystore.hub_private_key_path)
        self.clients: list[Client] = []

    def make(self, count: int, reports_each: int = 3) -> list[Client]:
        made = []
        for i in range(len(self.clients), len(self.clients) + count):
            state = ClientState(self.root / f"client{i}")
            key, _ = state.ensure_key_pair()
            state.pin_hub_key(self.hub_key)
            client = Client(f"client{i}", state, Spool(state.spool_dir), key_sha(key))
            client.produce(reports_each)
            self.keystore.add(key)
            made.append(client)
        self.clients.extend(made)
        return made

    async def serve(self, clients: list[Client] | None = None) -> None:
        for client in clients or self.clients:
            client.acceptor = await start_report_service(
                client.state, ("127.0.0.1", 0), client.spool
            )

    def register(self, store: HubStore, clients: list[Client] | None = None) -> None:
        for client in clients or self.clients:
            store.record_host(client.sha, client.name, "127.0.0.1", client.port, hub="hub1")

    async def close(self) -> None:
        for client in self.clients:
            if client.acceptor is not None:
                client.acceptor.close()
                await client.acceptor.wait_closed()


def stored_seqs(store: HubStore, client: Client) -> list[int]:
    docs = store.db["reports"].find({"host": client.sha}, {"seq": 1}).sort("seq", 1)
    return [d["seq"] for d in docs]


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def collector(
    store: HubStore,
    fleet: Fleet,
    settings: CollectorSettings = SETTINGS,
    is_master: Callable[[], bool] = lambda: True,
) -> Collector:
    """The collector as hubd builds it, for `fleet`'s hub key and ppkeys."""
    return Collector(store, settings, "hub1", fleet.hub_key, fleet.keystore.get, is_master)


def pool(
    cluster,
    fleet: Fleet,
    member: str,
    settings: CollectorSettings = SETTINGS,
    workers: int = 2,
    is_master: Callable[[], bool] = lambda: True,
) -> CollectorPool:
    """The collector as hubd builds it (hub.node): `workers` processes writing through
    `member` only, as hubd with the hubd user's credentials, handed to them explicitly."""
    access = cluster.access("hubd")
    with access_as(access):
        own = connect_member(cluster.uri, member, timeout=5, retryWrites=False)
    settings = replace(settings, workers=workers)
    spec = WorkerSpec(
        hub="hub1",
        uri=cluster.uri,
        member=member,
        settings=settings,
        hub_key_path=fleet.keystore.hub_private_key_path,
        ppkeys=fleet.keystore.directory,
        access=access,
    )
    store = HubStore(own)
    return CollectorPool(
        store, settings, "hub1", fleet.hub_key, fleet.keystore.get, is_master, spec
    )
