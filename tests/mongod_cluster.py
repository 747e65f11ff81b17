"""Three real `mongod --replSet` processes on loopback, with the stand-in's control surface."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MongodCluster:
    """Same attributes as StandinCluster that tests use: hosts, uri, set_name, kill, revive."""

    def __init__(self, workdir: Path, size: int = 3, set_name: str = "CFEngineNova") -> None:
        self.workdir = workdir
        self.set_name = set_name
        self.ports = [free_port() for _ in range(size)]
        self.procs: dict[int, subprocess.Popen] = {}

    @property
    def hosts(self) -> list[str]:
        return [f"127.0.0.1:{p}" for p in self.ports]

    @property
    def uri(self) -> str:
        return f"mongodb://{','.join(self.hosts)}/?replicaSet={self.set_name}"

    def _index(self, member: str | int) -> int:
        return self.hosts.index(member) if isinstance(member, str) else member

    def _spawn(self, index: int) -> None:
        port = self.ports[index]
        dbpath = self.workdir / f"m{index}"
        dbpath.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / f"m{index}.log", "ab")  # noqa: SIM115 - owned by the process
        self.procs[index] = subprocess.Popen(
            [
                "mongod",
                "--replSet",
                self.set_name,
                "--port",
                str(port),
                "--bind_ip",
                "127.0.0.1",
                "--dbpath",
                str(dbpath),
                "--oplogSize",
                "64",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"mongod on port {port} did not start")

    def start(self) -> MongodCluster:
        for index in range(len(self.ports)):
            self._spawn(index)
        return self

    def kill(self, member: str | int) -> str:
        index = self._index(member)
        proc = self.procs.pop(index)
        proc.kill()
        proc.wait(timeout=10)
        return self.hosts[index]

    def revive(self, member: str | int) -> str:
        index = self._index(member)
        self._spawn(index)
        return self.hosts[index]

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()
