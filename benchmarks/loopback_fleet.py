"""A fleet of N client report services on loopback, a stand-in set, and a hub key that
the fleet trusts: what the collection benchmarks pull from, set up one way.

The stand-in set (access control and TLS on, as in production) runs in its own process
(`hubctl lab mongo --initiate`), the report services in `processes` processes
(`benchmarks/fleet_server.py`); every client is registered in the set as the collector
finds hosts, and its key added to the hub's ppkeys/.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from hub.keystore import KeyStore
from hub.mongo import connect, connect_member, use_access
from hub.mongo_access import ENV_PASSWORD_FILE, ENV_TLS_CA_FILE, MongoAccess, read_password_file
from hub.store import HubStore
from hubcluster.keys import ensure_key_pair, import_public_key

HERE = Path(__file__).resolve().parent


def start_standin() -> tuple[subprocess.Popen, str, MongoAccess]:
    """The stand-in set, initiated with its users; returns hubd's access to it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "from hubctl.app import main; main()", "lab", "mongo", "--initiate"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    uri = proc.stdout.readline().strip()
    proc.stdout.readline()  # the control URL; this benchmark kills nothing
    env: dict[str, str] = {}
    for line in Path(proc.stdout.readline().strip()).read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value.strip("'")
    # The operator's password file sits beside hubd's: the benchmark collects as hubd.
    password = read_password_file(Path(env[ENV_PASSWORD_FILE]).with_name("hubd"))
    ca = env.get(ENV_TLS_CA_FILE)
    return proc, uri, MongoAccess("hubd", password, tls_ca_file=Path(ca) if ca else None)


def start_fleet(count: int, root: Path, reports: int, processes: int) -> tuple[list, list]:
    procs, clients = [], []
    share = -(-count // processes)
    for first in range(0, count, share):
        n = min(share, count - first)
        args = [str(HERE / "fleet_server.py"), str(n), str(root), str(reports), str(first)]
        procs.append(
            subprocess.Popen(
                [sys.executable, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
        )
    for proc in procs:
        clients.extend(json.loads(proc.stdout.readline()))
    return procs, clients


def produce(fleet: list[subprocess.Popen]) -> None:
    for proc in fleet:
        proc.stdin.write("produce\n")
        proc.stdin.flush()
    for proc in fleet:
        assert proc.stdout.readline().strip() == "ok"


@dataclass
class LoopbackFleet:
    tmp: Path
    keystore: KeyStore
    hub_key: asyncssh.SSHKey
    standin: subprocess.Popen
    uri: str
    access: MongoAccess  # hubd's, which the collector uses
    fleet: list[subprocess.Popen]
    clients: list  # (host key sha, report service port), in client order
    primary: str = ""  # set by register()

    def register(self) -> HubStore:
        """Record every client as a host and trust its key; returns the collector's store,
        on the primary member only (as hubd's collector writes)."""
        client = connect(self.uri, timeout=30)
        store = HubStore(client)
        store.ensure_indexes()
        for i, (sha, port) in enumerate(self.clients):
            pub = (self.tmp / "clients" / f"c{i:05d}" / "ppkeys" / "localhost.pub").read_bytes()
            self.keystore.add(import_public_key(pub))
            store.record_host(sha, f"c{i:05d}", "127.0.0.1", port, hub="bench")
        self.primary = "{}:{}".format(*client.primary)
        client.close()
        return HubStore(connect_member(self.uri, self.primary, timeout=10, retryWrites=False))

    def stop(self) -> None:
        for proc in self.fleet:
            proc.stdin.close()  # type: ignore[union-attr]
        for proc in self.fleet:
            proc.wait(timeout=30)
        self.standin.terminate()
        self.standin.wait(timeout=30)


def start_loopback(clients: int, reports: int, processes: int, prefix: str) -> LoopbackFleet:
    """The stand-in, `clients` report services with `reports` reports each, a hub key; the
    benchmark's process then talks to the set as hubd (its access is in use)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    keystore = KeyStore(tmp / "hub" / "ppkeys")
    hub_key, _ = ensure_key_pair(keystore.hub_private_key_path)
    (tmp / "hub.pub").write_bytes(hub_key.export_public_key())
    standin, uri, access = start_standin()
    use_access(access)
    fleet, made = start_fleet(clients, tmp, reports, processes)
    return LoopbackFleet(tmp, keystore, hub_key, standin, uri, access, fleet, made)
