"""Who is on the other end of a hub SSH connection: a client, a peer hub, or a newcomer.

The decision is made once, at public-key authentication, from `ppkeys/`: the shared hub
key is a peer; a registered key is a client; a revoked key is refused outright; any other
key gets in as `unregistered`, whose sessions can do nothing but ask to `register`.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass

import asyncssh

from hub.keystore import KeyStore
from hubcluster.keys import key_fingerprint, key_sha
from hubcluster.ssh_admission import Admission, AdmittedServer

log = logging.getLogger("hubcluster.ssh")


class Role(enum.Enum):
    CLIENT = "client"
    PEER = "peer"
    UNREGISTERED = "unregistered"


@dataclass(frozen=True)
class Identity:
    role: Role
    key: asyncssh.SSHKey
    sha: str
    address: str

    @property
    def label(self) -> str:
        return f"{self.role.value} {key_fingerprint(self.key)} at {self.address}"


def peer_ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The connection's peer as an IP, with IPv4-mapped IPv6 seen as the IPv4 it carries."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def classify(key: asyncssh.SSHKey, hub_key: asyncssh.SSHKey, keystore: KeyStore) -> Role | None:
    """The role a key authenticates as, or None if it must be refused (revoked)."""
    if key.public_data == hub_key.public_data:
        return Role.PEER
    sha = key_sha(key)
    if keystore.is_revoked(sha):
        return None
    return Role.CLIENT if keystore.is_known(sha) else Role.UNREGISTERED


class HubSSHServer(AdmittedServer):
    """One connection's authentication; `on_identity(conn, identity)` hears who got in."""

    def __init__(
        self,
        hub_key: asyncssh.SSHKey,
        keystore: KeyStore,
        on_identity: Callable[[asyncssh.SSHServerConnection, Identity], None],
        admission: Admission,
    ) -> None:
        super().__init__(admission)
        self._hub_key = hub_key
        self._keystore = keystore
        self._on_identity = on_identity
        self._conn: asyncssh.SSHServerConnection | None = None
        self._address = "?"
        self._pending: Identity | None = None
        self.identity: Identity | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        super().connection_made(conn)
        self._conn = conn
        peer = conn.get_extra_info("peername")
        self._address = str(peer[0]) if peer else "?"

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        role = classify(key, self._hub_key, self._keystore)
        if role is None:
            log.warning("refused revoked key %s from %s", key_fingerprint(key), self._address)
            return False
        # asyncssh validates the key again right before checking the signature of the request
        # that succeeds, so the last key seen here is the one that authenticated.
        self._pending = Identity(role, key, key_sha(key), self._address)
        return True

    def auth_completed(self) -> None:
        super().auth_completed()
        self.identity = self._pending
        if self.identity is not None and self._conn is not None:
            self._on_identity(self._conn, self.identity)
