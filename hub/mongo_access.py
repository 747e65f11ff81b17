"""Who a process is to the database: a user, its password, the CA that vouches for mongod.

A password comes from a file only its owner can read, or from the environment; never from a
command line (others see it in `ps`) and never inside a URI (URIs get printed and logged).
The client gets it as pymongo keyword arguments.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_USER = "HUBCLUSTER_MONGO_USER"
ENV_PASSWORD = "HUBCLUSTER_MONGO_PASSWORD"
ENV_PASSWORD_FILE = "HUBCLUSTER_MONGO_PASSWORD_FILE"
ENV_TLS_CA_FILE = "HUBCLUSTER_MONGO_TLS_CA_FILE"
MECHANISM = "SCRAM-SHA-256"
AUTH_SOURCE = "admin"

# scheme://user:password@ -- the password part is what must never reach a log or an error.
# Any scheme: a mistyped one (http://, mongo://) carries the same password.
_USERINFO = re.compile(r"([a-z][a-z0-9+.-]*://)([^\s'\"]*)@", re.IGNORECASE)


class AccessError(ValueError):
    """Credentials that cannot be used; the message names the file or variable."""


@dataclass(frozen=True)
class MongoAccess:
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    source: str = AUTH_SOURCE
    tls_ca_file: Path | None = None

    def client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.username:
            kwargs.update(
                username=self.username,
                password=self.password,
                authSource=self.source,
                authMechanism=MECHANISM,
            )
        if self.tls_ca_file is not None:
            kwargs.update(tls=True, tlsCAFile=str(self.tls_ca_file))
        return kwargs


def redact(text: str) -> str:
    """`text` with the password of every MongoDB URI in it replaced by ****."""

    def hide(match: re.Match[str]) -> str:
        user, sep, _password = match.group(2).partition(":")
        return f"{match.group(1)}{user}{':****' if sep else ''}@"

    return _USERINFO.sub(hide, text)


class RedactUris(logging.Filter):
    """A log filter that redacts URIs in every record it passes, whoever logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def redact_logs(logger: logging.Logger | None = None) -> None:
    """Redact URIs in everything `logger`'s handlers (default: the root's) write."""
    for handler in (logger or logging.getLogger()).handlers:
        handler.addFilter(RedactUris())


def read_password_file(path: str | Path) -> str:
    """The password in `path`, refused when group or others may read or write the file."""
    path = Path(path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise AccessError(
                f"password file {path} has mode {mode:04o}; it must be 0600 or stricter"
            )
        password = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise AccessError(f"cannot read password file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise AccessError(f"password file {path} is not UTF-8 text") from None
    if not password:
        raise AccessError(f"password file {path} is empty")
    return password


def access_from(
    username: str | None,
    password_file: str | Path | None,
    tls_ca_file: str | Path | None,
    environ: Mapping[str, str] = os.environ,
    where: str = "",
) -> MongoAccess | None:
    """The access a config or the environment gives; None when it gives none.

    A password file wins over $HUBCLUSTER_MONGO_PASSWORD; a user without either is refused.
    """
    ca = Path(tls_ca_file) if tls_ca_file else None
    if ca is not None and not ca.is_file():
        raise AccessError(f"{where}TLS CA file {ca} does not exist")
    if not username:
        if password_file:
            raise AccessError(f"{where}a password file is given but no user")
        return MongoAccess(tls_ca_file=ca) if ca else None
    if password_file:
        try:
            password = read_password_file(password_file)
        except AccessError as exc:
            raise AccessError(f"{where}{exc}") from None
    elif environ.get(ENV_PASSWORD):
        password = environ[ENV_PASSWORD]
    else:
        raise AccessError(
            f"{where}user {username} has no password: give a password file or set {ENV_PASSWORD}"
        )
    return MongoAccess(username, password, tls_ca_file=ca)


def access_from_environment(environ: Mapping[str, str] = os.environ) -> MongoAccess | None:
    """$HUBCLUSTER_MONGO_USER with $HUBCLUSTER_MONGO_PASSWORD_FILE or _PASSWORD, and
    $HUBCLUSTER_MONGO_TLS_CA_FILE; None when none of them is set."""
    return access_from(
        environ.get(ENV_USER),
        environ.get(ENV_PASSWORD_FILE),
        environ.get(ENV_TLS_CA_FILE),
        environ,
        where="environment: ",
    )
