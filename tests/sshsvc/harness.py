"""Hub SSH services on loopback for tests: real asyncssh, port 0, one event loop in a thread.

The hubs run in their own loop thread so test code stays synchronous and can drive the
client side with `asyncio.run`, the CLI, or reader threads, exactly as production does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from client_agent.config import AgentConfig
from hub.keystore import KeyStore
from hub.masterfiles import publish_release, release_dir
from hub.ssh_service import HostRecord, start_hub_service
from hubcluster.keys import ensure_key_pair, key_fingerprint
from hubcluster.messages import MasterInfo

TIMEOUT = 15.0
PROMISES = """
[[promise]]
name = "always"
check = "true"
"""


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = TIMEOUT) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close_acceptor(self, acceptor: asyncssh.SSHAcceptor) -> None:
        """Close a server from the test thread (asyncio servers belong to their loop)."""

        async def close() -> None:
            acceptor.close()
            await acceptor.wait_closed()

        self.run(close())

    def stop(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()


class Hubs:
    """`count` hubs sharing one hub key, each with its own workdir, ppkeys and masterfiles."""

    def __init__(
        self,
        loop: LoopThread,
        root: Path,
        count: int = 1,
        trust: tuple[str, ...] = ("127.0.0.0/8",),
        name: str = "hub",
    ) -> None:
        self.loop = loop
        self.root = root
        self.name = name
        self.trust = [ipaddress.ip_network(n) for n in trust]
        key_home = root / f"{name}-key"
        self.hub_key, _ = ensure_key_pair(key_home / "localhost.priv")
        self.workdirs = [root / f"{name}{i}" for i in range(count)]
        for workdir in self.workdirs:
            (workdir / "ppkeys").mkdir(parents=True)
            for file in ("localhost.priv", "localhost.pub"):
                shutil.copy2(key_home / file, workdir / "ppkeys" / file)
        self.acceptors: list[asyncssh.SSHAcceptor | None] = [None] * count
        self.addresses: list[str] = [""] * count
        self.master: int | None = 0
        self.reason: str | None = None
        self.registered: list[HostRecord] = []
        self.contacts: list[tuple[str, str]] = []
        for i in range(count):
            self.start(i)

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.hub_key)

    def keystore(self, i: int = 0) -> KeyStore:
        return KeyStore(self.workdirs[i] / "ppkeys")

    def masterfiles(self, i: int = 0) -> Path:
        return self.workdirs[i] / "masterfiles"

    async def _master_info(self) -> MasterInfo:
        master = self.addresses[self.master] if self.master is not None else None
        return MasterInfo(master, list(self.addresses), None, self.reason)

    async def _on_register(self, record: HostRecord) -> None:
        self.registered.append(record)

    async def _on_contact(self, sha: str, address: str) -> None:
        self.contacts.append((sha, address))

    def start(self, i: int) -> None:
        # A restarted hub keeps its address, as a real one would.
        port = int(self.addresses[i].rsplit(":", 1)[1]) if self.addresses[i] else 0
        acceptor = self.loop.run(
            start_hub_service(
                self.workdirs[i],
                ("127.0.0.1", port),
                self._master_info,
                self.trust,
                self._on_register,
                self._on_contact,
                f"{self.name}{i}",
            )
        )
        self.acceptors[i] = acceptor
        self.addresses[i] = f"127.0.0.1:{acceptor.get_port()}"

    def stop(self, i: int) -> None:
        acceptor = self.acceptors[i]
        if acceptor is not None:
            self.loop.close_acceptor(acceptor)
            self.acceptors[i] = None

    def close(self) -> None:
        for i in range(len(self.acceptors)):
            self.stop(i)

    def admit(self, key: asyncssh.SSHKey) -> None:
        """Register a client key on every hub (what peer sync will do)."""
        for i in range(len(self.workdirs)):
            self.keystore(i).add(key)

    def publish(self, files: dict[str, str | bytes], source: Path | None = None) -> str:
        """Publish the same tree on every hub (what masterfiles sync will do)."""
        source = source or self.root / f"{self.name}-source"
        if source.exists():
            shutil.rmtree(source)
        for rel, content in {"promises.toml": PROMISES, **files}.items():
            path = source / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            data = content.encode() if isinstance(content, str) else content
            path.write_bytes(data)
        rids = {publish_release(self.masterfiles(i), source) for i in range(len(self.workdirs))}
        assert len(rids) == 1
        return rids.pop()

    def release_file(self, rid: str, rel: str, i: int = 0) -> Path:
        return release_dir(self.masterfiles(i), rid) / rel


def client_config(root: Path, name: str = "client1", timeout: float = 2.0) -> AgentConfig:
    return AgentConfig(
        workdir=root / name, hostname=name, connect_timeout=timeout, listen="127.0.0.1:5309"
    )


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.stop()


@pytest.fixture
def make_hubs(tmp_path: Path, loop_thread: LoopThread) -> Iterator[Any]:
    made: list[Hubs] = []

    def make(count: int = 1, trust: tuple[str, ...] = ("127.0.0.0/8",), name: str = "hub") -> Hubs:
        hubs = Hubs(loop_thread, tmp_path, count, trust, name)
        made.append(hubs)
        return hubs

    yield make
    for hubs in made:
        hubs.close()
