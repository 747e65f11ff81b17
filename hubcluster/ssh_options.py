"""The one SSH setup of hubcluster: algorithms, timeouts, keepalive, banner, no user config.

Every SSH endpoint and every connection (hub service, report service, collector, peer sync,
clients) takes its options from here, so one vetted algorithm list is offered everywhere and
an audit of one endpoint speaks for all of them.

The list passes ssh-audit with no fail line: no SHA-1 key exchange or MAC, no group
exchange (its 1,024-bit moduli), no NIST-curve exchange; key exchange is post-quantum hybrid
first, then curve25519; host and client keys are ed25519 (all hubcluster keys are); ciphers
are AEAD only (so the MACs are never used, but must still be named: only encrypt-then-MAC).

Each choice was measured for the collector's CPU (benchmarks/ssh_ciphers.py, figures in
benchmarks/RESULTS.md, "SSH choices and the collector's CPU"). Building any of these options
also makes asyncssh's logging free when it is off (hubcluster/ssh_logging.py).
"""

from __future__ import annotations

from typing import Any

import asyncssh

from hubcluster.ssh_logging import guard_ssh_logging

# Vetted, in order of preference; the post-quantum hybrid is offered only where this build of
# asyncssh and its crypto library can do it (it needs ML-KEM), curve25519 everywhere.
# ML-KEM costs the collector about 0.2-0.3 ms more per NEW connection than curve25519 alone
# (benchmarks/ssh_ciphers.py); the collector keeps its connections across rounds, so that is
# paid once per host per master, and it buys reports that stay secret from someone who
# records the traffic today and has a quantum computer later. Kept first on purpose.
VETTED_KEX_ALGS: tuple[str, ...] = (
    "mlkem768x25519-sha256",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
)
HOST_KEY_ALGS: tuple[str, ...] = ("ssh-ed25519",)
SIGNATURE_ALGS: tuple[str, ...] = ("ssh-ed25519",)
# AES-GCM first: with AES instructions it costs about half the CPU per byte of chacha20
# (benchmarks/ssh_ciphers.py, RESULTS.md), and the collector moves every report through it;
# 256-bit keys cost no more than 128 here (the per-packet work is asyncssh's Python).
CIPHERS: tuple[str, ...] = (
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
)
MACS: tuple[str, ...] = ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com")
COMPRESSION: tuple[str, ...] = ("none",)

# The product's name only: the exact library version in a banner helps nobody but an attacker.
SOFTWARE_VERSION = "hubcluster"
# Time an unauthenticated connection may hold a slot before it is dropped.
LOGIN_GRACE_SECONDS = 30.0
# Clients and peers see a dead hub within a minute. Servers probe an idle client every
# 5 minutes and drop a dead one within 20: the collector's kept connections idle between
# rounds, and each probe costs the master's collector about as much as one it sends itself
# (see COLLECTOR_KEEPALIVE_SECONDS), so a 60 s probe would cost it five a round, not one.
CLIENT_KEEPALIVE_SECONDS = 15.0
SERVER_KEEPALIVE_SECONDS = 300.0
KEEPALIVE_COUNT_MAX = 3
# The collector's connections idle between rounds (300 s by default). A keepalive exchange
# costs it about 0.1 ms of CPU, so 15 s keepalives would cost more per round (20 exchanges)
# than the pull itself, and keepalive also re-arms a timer on every packet received. Off:
# the report service's own keepalive reaps a dead hub's connection, and a pull on a dead
# connection fails like any other and is made anew.
COLLECTOR_KEEPALIVE_SECONDS = 0.0


def _usable_kex(names: tuple[str, ...]) -> tuple[str, ...]:
    usable = []
    for name in names:
        # asyncssh validates names when options are built, and knows what it can run; the
        # options are never used to connect (known_hosts=(): they would trust no host key).
        try:
            asyncssh.SSHClientConnectionOptions(kex_algs=[name], config=None, known_hosts=())
        except ValueError:
            continue
        usable.append(name)
    return tuple(usable)


KEX_ALGS = _usable_kex(VETTED_KEX_ALGS)

_ALGORITHMS: dict[str, Any] = {
    "kex_algs": list(KEX_ALGS),
    "encryption_algs": list(CIPHERS),
    "mac_algs": list(MACS),
    "compression_algs": list(COMPRESSION),
    "signature_algs": list(SIGNATURE_ALGS),
}


def client_options(
    *,
    client_keys: list[Any],
    known_hosts: Any,
    connect_timeout: float,
    username: str = "hubcluster",
    keepalive_interval: float = CLIENT_KEEPALIVE_SECONDS,
) -> dict[str, Any]:
    """Keyword arguments for `asyncssh.connect`: our keys only, the pinned host key only.

    `config=None` keeps the running user's ~/.ssh/config out (it could change the host,
    port, algorithms or keys), and `agent_path=None` keeps an ssh-agent's keys out.
    """
    guard_ssh_logging()
    return {
        **_ALGORITHMS,
        "server_host_key_algs": list(HOST_KEY_ALGS),
        "client_version": SOFTWARE_VERSION,
        "username": username,
        "client_keys": client_keys,
        "known_hosts": known_hosts,
        "preferred_auth": "publickey",
        "agent_path": None,
        "config": None,
        "connect_timeout": connect_timeout,
        "login_timeout": connect_timeout,
        "keepalive_interval": keepalive_interval,
        "keepalive_count_max": KEEPALIVE_COUNT_MAX,
    }


def host_key_probe_options() -> dict[str, Any]:
    """Keyword arguments for `asyncssh.get_server_host_key`, offering the same list."""
    guard_ssh_logging()
    return {
        "kex_algs": list(KEX_ALGS),
        "server_host_key_algs": list(HOST_KEY_ALGS),
        "client_version": SOFTWARE_VERSION,
        "config": None,
    }


def server_options(
    *,
    host_keys: list[Any],
    login_timeout: float = LOGIN_GRACE_SECONDS,
    keepalive_interval: float = SERVER_KEEPALIVE_SECONDS,
) -> dict[str, Any]:
    """Keyword arguments for `asyncssh.listen`: public keys only, no forwarding, no PTY."""
    guard_ssh_logging()
    return {
        **_ALGORITHMS,
        "server_host_keys": host_keys,
        "server_version": SOFTWARE_VERSION,
        "password_auth": False,
        "kbdint_auth": False,
        "gss_host": None,
        "allow_pty": False,
        "agent_forwarding": False,
        "x11_forwarding": False,
        "login_timeout": login_timeout,
        "keepalive_interval": keepalive_interval,
        "keepalive_count_max": KEEPALIVE_COUNT_MAX,
        "config": None,
    }
