"""Start, stop and break the three stand-in members; the in-process control API."""

from __future__ import annotations

import logging
import ssl
import time

from hubctl.lab.standin.access import AccessControl
from hubctl.lab.standin.credentials import ClusterCredentials, CredentialedCluster
from hubctl.lab.standin.model import Member, ReplicaSetModel
from hubctl.lab.standin.server import MemberServer
from hubctl.lab.standin.tls import server_context

STATE_NAMES = {0: "STARTUP", 1: "PRIMARY", 2: "SECONDARY", 8: "DOWN", 10: "REMOVED"}

log = logging.getLogger("hubcluster.standin")


class StandinCluster(CredentialedCluster):
    """Three (or `size`) MongoDB-protocol servers on 127.0.0.1 sharing one replica-set model.

    `ports` fixes the ports (the lab uses a base port); by default free ones are chosen.
    Use as a context manager, or call start() and stop().

    By default it is mongod as production runs it: access control on (users are made by
    initiate(), through the localhost exception) and requireTLS with a private CA of its own;
    access()/client()/env() connect as one of hub.db_roles' users. auth=False, tls=False is
    the open mode, for a test about that mode only.
    """

    def __init__(
        self,
        size: int = 3,
        ports: list[int] | None = None,
        set_name: str = "CFEngineNova",
        election_timeout: float = 10.0,
        auth: bool = True,
        tls: bool | ssl.SSLContext = True,
        credentials: ClusterCredentials | None = None,
    ) -> None:
        if ports is not None and len(ports) != size:
            raise ValueError(f"{size} members need {size} ports, got {len(ports)}")
        self.set_name = set_name
        self._ports: list[int | None] = list(ports) if ports else [None] * size
        self._election_timeout = election_timeout
        self.servers: list[MemberServer] = []
        self.model: ReplicaSetModel | None = None
        self.events: list[tuple[float, str]] = []
        # auth: mongod with access control (security.authorization: enabled).
        # tls: requireTLS, with the credentials' private CA (or a server context given).
        # The lab passes credentials kept in its directory; else a temporary set.
        if credentials is None:
            secure = auth and tls is True
            credentials = (
                ClusterCredentials.shared()
                if secure
                else ClusterCredentials(auth=auth, tls=tls is True)
            )
        self.credentials = credentials
        self.access_control = AccessControl() if self.credentials.auth else None
        files = self.credentials.tls_files
        self.tls: ssl.SSLContext | None = (
            server_context(files) if files else tls if isinstance(tls, ssl.SSLContext) else None
        )

    def start(self) -> StandinCluster:
        # The model needs member names, and names need ports, so bind first and wire after.
        placeholder = ReplicaSetModel([], self.set_name, self._election_timeout)
        for port in self._ports:
            server = MemberServer(placeholder, "", port)
            server.tls = self.tls
            server.start()
            self.servers.append(server)
        placeholder.stop()
        self.model = ReplicaSetModel(
            self.hosts, self.set_name, self._election_timeout, on_event=self._record
        )
        for server in self.servers:
            server.model = self.model
            server.name = f"127.0.0.1:{server.port}"
            server.access = self.access_control
        return self

    def _record(self, message: str) -> None:
        self.events.append((time.time(), message))
        log.info("stand-in: %s", message)

    def stop(self) -> None:
        # The model first: it wakes requests waiting on it, so no connection thread lingers.
        if self.model is not None:
            self.model.stop()
        for server in self.servers:
            server.stop()
        self.credentials.close()

    def __enter__(self) -> StandinCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- addresses ---------------------------------------------------------------------
    @property
    def hosts(self) -> list[str]:
        return [f"127.0.0.1:{s.port}" for s in self.servers]

    @property
    def uri(self) -> str:
        return f"mongodb://{','.join(self.hosts)}/?replicaSet={self.set_name}"

    def direct_uri(self, member: str | int) -> str:
        return f"mongodb://{self._server(member).name}/?directConnection=true"

    def member_name(self, member: str | int) -> str:
        return self._server(member).name

    def _server(self, member: str | int) -> MemberServer:
        assert self.model is not None
        name = self.model.member(member).name
        return next(s for s in self.servers if s.name == name)

    # ----- control -----------------------------------------------------------------------
    def add_member(self) -> str:
        """Start one more mongod, in no set's config yet: a new machine for a dead one's place."""
        assert self.model is not None
        server = MemberServer(self.model, "", None)
        server.access = self.access_control
        server.tls = self.tls
        server.start()
        server.name = f"127.0.0.1:{server.port}"
        with self.model.lock:
            self.model.members.append(Member(len(self.model.members), server.name))
        self.servers.append(server)
        return server.name

    def kill(self, member: str | int) -> str:
        """Crash a member: it stops answering and refuses connections."""
        assert self.model is not None
        m = self.model.kill(member)
        self._server(member).stop()
        return m.name

    def revive(self, member: str | int) -> str:
        """Restart a killed member on its port, with its data, as a secondary."""
        assert self.model is not None
        server = self._server(member)
        if not server.running:
            server.start()
        return self.model.revive(member).name

    def isolate(self, member: str | int) -> str:
        """Cut a member off from its peers; clients on loopback still reach it."""
        assert self.model is not None
        return self.model.isolate(member).name

    def heal(self, member: str | int) -> str:
        assert self.model is not None
        return self.model.heal(member).name

    def primary(self) -> str | None:
        """The primary as the majority side sees it (test convenience, not a client view)."""
        assert self.model is not None
        with self.model.lock:
            for m in self.model.members:
                if m.alive and m.state == 1 and self.model.has_majority(self.model.component(m)):
                    return m.name
        return None

    def status(self) -> dict:
        assert self.model is not None
        with self.model.lock:
            return {
                "set": self.set_name,
                "initiated": self.model.config is not None,
                "term": self.model.term,
                "election_timeout": self.model.election_timeout,
                "members": [
                    {
                        "name": m.name,
                        "alive": m.alive,
                        "isolated": m.isolated,
                        "state": STATE_NAMES[m.state],
                        "oplog": len(m.oplog),
                    }
                    for m in self.model.members
                ],
            }
