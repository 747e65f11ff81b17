"""Three real `mongod --replSet` processes on loopback, with the stand-in's control surface.

The lab uses them instead of the stand-in when `mongod` is on PATH; the real-mongod test
tier too. A network cut of one member needs more than processes, so isolate/heal say so.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from hubctl.lab.ports import free_port, wait_port


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
        wait_port(port, 30, f"mongod {index}")

    def start(self) -> MongodCluster:
        for index in range(len(self.ports)):
            self._spawn(index)
        return self

    def add_member(self) -> str:
        """Start one more mongod, in no set's config yet: a new machine for a dead one's place."""
        self.ports.append(free_port())
        self._spawn(len(self.ports) - 1)
        return self.hosts[-1]

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

    def isolate(self, member: str | int) -> str:
        raise KeyError("isolating a real mongod needs network namespaces; use the stand-in lab")

    heal = isolate

    def primary(self) -> str | None:
        from hub.replset import ReplicaSet

        rs = ReplicaSet(self.uri, timeout=2.0)
        try:
            return rs.topology().primary
        except Exception:  # noqa: BLE001 - no answer means no primary to report
            return None
        finally:
            rs.close()

    def status(self) -> dict:
        from hub.replset import ReplicaSet

        rs = ReplicaSet(self.uri, timeout=2.0)
        try:
            topo = rs.topology()
        finally:
            rs.close()
        views = {m.name: m for m in topo.members}
        return {
            "set": self.set_name,
            "members": [
                {
                    "name": host,
                    "alive": index in self.procs,
                    "isolated": False,
                    "state": views[host].state if host in views else "DOWN",
                }
                for index, host in enumerate(self.hosts)
            ],
        }

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()
