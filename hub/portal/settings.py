"""The [portal] table of the hub config: where the web server listens and who may log in.

    [portal]                            # given: the portal runs (enabled = false stops it)
    bind = "127.0.0.1"                  # loopback unless an operator opens it up
    port = 5380
    tls_cert = "/etc/hubcluster/portal.crt"   # both or neither: HTTPS with them
    tls_key = "/etc/hubcluster/portal.key"
    secret_file = "/var/lib/hubcluster/portal-secret"  # signs sessions; same on every hub

    [[portal.users]]
    name = "alice"
    role = "admin"                      # or "viewer"
    password_hash = "$argon2id$..."     # from `hubd hash-password`

    [[portal.tokens]]                   # for scripts: Authorization: Bearer <token>
    name = "nightly-export"
    role = "viewer"
    token_hash = "$argon2id$..."

Kept free of web imports so that reading a config never loads the web stack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from hubcluster.config_check import ConfigError, Section

DEFAULT_PORT = 5380
VIEWER, ADMIN = "viewer", "admin"
ROLES = (VIEWER, ADMIN)
# Names appear in history events and pages; keep them plain.
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name))


@dataclass(frozen=True)
class Account:
    """A user (password) or an API token: a name, a role and a hash to check against."""

    name: str
    role: str
    secret_hash: str


@dataclass(frozen=True)
class PortalSettings:
    enabled: bool = False
    bind: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    tls_cert: Path | None = None
    tls_key: Path | None = None
    secret_file: Path | None = None  # None: <workdir>/portal-secret
    users: tuple[Account, ...] = field(default_factory=tuple)
    tokens: tuple[Account, ...] = field(default_factory=tuple)

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


def _accounts(sections: list[Section], hash_key: str) -> tuple[Account, ...]:
    accounts = []
    for entry in sections:
        name = entry.str("name", required=True)
        if not _NAME.match(name):
            raise ConfigError(f"{entry.where}.name: letters, digits and _.@- only, got {name!r}")
        role = entry.str("role", VIEWER)
        if role not in ROLES:
            raise ConfigError(f"{entry.where}.role: viewer or admin, got {role!r}")
        secret = entry.str(hash_key, required=True)
        if not secret.startswith("$argon2"):
            raise ConfigError(f"{entry.where}.{hash_key}: not an argon2 hash (hubd hash-password)")
        entry.reject_unknown()
        accounts.append(Account(name, role, secret))
    names = [a.name for a in accounts]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"duplicate portal name {', '.join(dupes)}")
    return tuple(accounts)


def parse_portal(section: Section, present: bool) -> PortalSettings:
    """Read [portal]; unknown keys, bad roles and non-hashes are errors naming their key.

    A config without a [portal] table runs no portal: hubs written before it existed, and
    several test hubs on one machine, must not all reach for the default port.
    """
    enabled = section._get("enabled", present, False)
    if not isinstance(enabled, bool):
        raise ConfigError("portal.enabled: must be true or false")
    cert, key = section.str("tls_cert"), section.str("tls_key")
    if (cert is None) != (key is None):
        raise ConfigError("portal.tls_cert and portal.tls_key: give both or neither")
    secret = section.str("secret_file")
    settings = PortalSettings(
        enabled=enabled,
        bind=section.str("bind", "127.0.0.1"),
        port=section.int("port", DEFAULT_PORT, minimum=0, maximum=65535),
        tls_cert=Path(cert) if cert else None,
        tls_key=Path(key) if key else None,
        secret_file=Path(secret) if secret else None,
        users=_accounts(section.tables("users"), "password_hash"),
        tokens=_accounts(section.tables("tokens"), "token_hash"),
    )
    section.reject_unknown()
    return settings
