"""How many SSH connections may be unauthenticated at once: per source address and in total.

A connection holds a slot from the moment TCP accepts it until it authenticates or closes,
and the login grace time (`ssh_options.LOGIN_GRACE_SECONDS`, asyncssh's `login_timeout`)
drops one that has not authenticated by then. A connection past either cap is dropped at
once, before the version exchange, so it costs the server no key exchange. A flood of
half-open handshakes from one address fills that address's slots only: the hub master's
collector, other clients and peers keep getting in. Both SSH servers (the hub service and
the client's report service) use these caps.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import Counter
from typing import Any

import asyncssh

log = logging.getLogger("hubcluster.ssh")

# Like sshd's MaxStartups/PerSourceMaxStartups. A handshake takes milliseconds: a fleet of
# 10,000 clients on a 5-minute timer has a few mid-handshake at a time, a NAT gateway in
# front of a site a handful more; 100 in total leaves room for ten such sites at once.
MAX_UNAUTHENTICATED_PER_SOURCE = 10
MAX_UNAUTHENTICATED = 100
# One holder of an IPv6 address usually holds its whole /64: that is one source.
IPV6_SOURCE_PREFIX = 64


def source_of(address: str) -> str:
    """The source a peer address counts against: the IPv4 address, or the IPv6 /64.

    IPv4-mapped IPv6 counts as the IPv4 address it carries; a name that is not an IP (a
    Unix socket) is its own source.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/{IPV6_SOURCE_PREFIX}", strict=False))
    return str(ip)


class Admission:
    """The unauthenticated connections of one listener, counted per source and in total."""

    def __init__(
        self,
        name: str,
        per_source: int = MAX_UNAUTHENTICATED_PER_SOURCE,
        total: int = MAX_UNAUTHENTICATED,
    ) -> None:
        self.name = name
        self.per_source = per_source
        self.total = total
        self._by_source: Counter[str] = Counter()
        self._held: dict[int, str] = {}  # id(connection) -> its source, while unauthenticated
        self._full: set[str] = set()  # sources (or "*" for the total) already logged as full
        self.refused = 0

    @property
    def pending(self) -> int:
        return len(self._held)

    def pending_from(self, address: str) -> int:
        return self._by_source[source_of(address)]

    def admit(self, conn: Any) -> bool:
        """Take a slot for a new connection, or drop the connection now (False)."""
        peer = conn.get_extra_info("peername")
        source = source_of(str(peer[0]) if peer else "?")
        if len(self._held) >= self.total:
            self._refuse(conn, "*", f"{self.total} unauthenticated connections in all")
            return False
        if self._by_source[source] >= self.per_source:
            self._refuse(conn, source, f"{self.per_source} unauthenticated from {source}")
            return False
        self._held[id(conn)] = source
        self._by_source[source] += 1
        return True

    def release(self, conn: Any) -> None:
        """Give the slot back: the connection authenticated or closed (either, or both)."""
        source = self._held.pop(id(conn), None)
        if source is None:
            return
        self._by_source[source] -= 1
        if self._by_source[source] <= 0:
            del self._by_source[source]
            self._full.discard(source)
        if len(self._held) < self.total:
            self._full.discard("*")

    def _refuse(self, conn: Any, key: str, why: str) -> None:
        self.refused += 1
        if key not in self._full:  # one line per flood, not one per connection
            self._full.add(key)
            log.warning("%s: dropping new connections while %s are pending", self.name, why)
        conn.abort()


class AdmittedServer(asyncssh.SSHServer):
    """An SSH server whose connections must be admitted first, and give their slot back.

    Subclasses that override connection_made, auth_completed or connection_lost call these.
    """

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._admitted_conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._admitted_conn = conn
        self._admission.admit(conn)

    def auth_completed(self) -> None:
        self._admission.release(self._admitted_conn)

    def connection_lost(self, exc: Exception | None) -> None:
        self._admission.release(self._admitted_conn)
