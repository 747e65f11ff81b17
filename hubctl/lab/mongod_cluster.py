"""Real `mongod --replSet` processes on loopback, with the stand-in's control surface.

The lab uses them instead of the stand-in when `mongod` is on PATH; the real-mongod test
tier too. They run as production does: members authenticate each other with a keyFile,
clients log in (--auth, SCRAM users made through the localhost exception by the
init-replset code path) and every connection is TLS (requireTLS, a private CA: clients
check the members' certificate, members check each other's). A network cut of one member
needs more than processes, so isolate/heal say so.
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

from pymongo.errors import PyMongoError

from hubctl.lab.ports import free_port, wait_port
from hubctl.lab.standin.credentials import ClusterCredentials, CredentialedCluster

# replSetGetStatus' myState names the tests and the dashboard use.
_STATES = {1: "PRIMARY", 2: "SECONDARY", 0: "STARTUP", 5: "STARTUP2", 3: "RECOVERING"}


class MongodCluster(CredentialedCluster):
    """Same attributes as StandinCluster that tests use: hosts, uri, set_name, kill, revive,
    initiate, access, client, env."""

    def __init__(
        self,
        workdir: Path,
        size: int = 3,
        set_name: str = "CFEngineNova",
        credentials: ClusterCredentials | None = None,
    ) -> None:
        self.workdir = workdir
        self.set_name = set_name
        self.ports = [free_port() for _ in range(size)]
        self.procs: dict[int, subprocess.Popen] = {}
        self.credentials = credentials or ClusterCredentials.shared()

    @property
    def hosts(self) -> list[str]:
        return [f"127.0.0.1:{p}" for p in self.ports]

    @property
    def uri(self) -> str:
        return f"mongodb://{','.join(self.hosts)}/?replicaSet={self.set_name}"

    def _index(self, member: str | int) -> int:
        return self.hosts.index(member) if isinstance(member, str) else member

    def _key_file(self) -> Path:
        """The members' shared secret: base64 characters only (6 to 1024), owner-only."""
        path = self.workdir / "keyfile"
        if not path.exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(base64.b64encode(os.urandom(512)).decode() + "\n")
        return path

    def _certificate_key_file(self) -> Path:
        """--tlsCertificateKeyFile: the member's certificate (and chain) and key in one PEM."""
        files = self.credentials.tls_files
        assert files is not None
        path = self.workdir / "member-with-key.pem"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_bytes(files.cert_file.read_bytes() + files.key_file.read_bytes())
        return path

    def _security_options(self) -> list[str]:
        options: list[str] = []
        if self.credentials.auth:
            options += ["--auth", "--keyFile", str(self._key_file())]
        if self.credentials.tls_files is not None:
            options += [
                "--tlsMode",
                "requireTLS",
                "--tlsCertificateKeyFile",
                str(self._certificate_key_file()),
                "--tlsCAFile",
                str(self.credentials.tls_files.ca_file),
                # Clients prove who they are with SCRAM, not a certificate; a certificate
                # that is presented (the members') is still checked against the CA.
                "--tlsAllowConnectionsWithoutCertificates",
            ]
        return options

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
                *self._security_options(),
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

    def _member_states(self) -> dict[str, str]:
        """Each member's state as the set says, read as the operator; {} without an answer."""
        try:
            with self.client("operator", serverSelectionTimeoutMS=2000) as client:
                status = client.admin.command("replSetGetStatus")
        except PyMongoError:
            return {}
        return {
            m["name"]: m.get("stateStr", _STATES.get(m["state"], "?")) for m in status["members"]
        }

    def primary(self) -> str | None:
        return next((n for n, s in self._member_states().items() if s == "PRIMARY"), None)

    def status(self) -> dict:
        states = self._member_states()
        return {
            "set": self.set_name,
            "members": [
                {
                    "name": host,
                    "alive": index in self.procs,
                    "isolated": False,
                    "state": states.get(host, "DOWN") if index in self.procs else "DOWN",
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
