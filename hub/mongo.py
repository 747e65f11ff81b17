"""Opening pymongo clients the same way everywhere: to the set, or straight to one member."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymongo
from pymongo import uri_parser
from pymongo.errors import ConfigurationError, InvalidURI, OperationFailure, PyMongoError
from pymongo.write_concern import WriteConcern

from hub.mongo_access import MongoAccess, redact

DB_NAME = "cfreport"
# pymongo's floor: at 500 ms it notices a new primary well within a second.
HEARTBEAT_MS = 500
# Every write the cluster must not lose in a failover (reports, events, freezes, hub state):
# acknowledged once a majority holds it. A slow majority makes the writer wait at most 10 s,
# then it is told (WriteConcernError) instead of blocked; callers run these off the loop.
SURVIVES_FAILOVER = WriteConcern("majority", wtimeout=10_000)


class MongoUriError(ValueError):
    """A replica-set URI that cannot be used."""


# The process's one identity to the database, set once at start (hubd from its config,
# hubctl per command): every client it opens must carry it, and threading it through each
# call site would let one be missed -- which access control would then refuse.
_access: MongoAccess | None = None


def use_access(access: MongoAccess | None) -> None:
    """Open every later client as `access` (None: no credentials, no TLS)."""
    global _access
    _access = access


def current_access() -> MongoAccess | None:
    return _access


@contextmanager
def access_as(access: MongoAccess | None) -> Iterator[MongoAccess | None]:
    """use_access(access) for the block, then the access before it again."""
    previous = _access
    use_access(access)
    try:
        yield access
    finally:
        use_access(previous)


def _with_access(options: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    if _access is not None:
        options.update(_access.client_kwargs())
    options.update(kwargs)
    return options


def parse(uri: str) -> dict[str, Any]:
    try:
        return uri_parser.parse_uri(uri, validate=True)
    except (InvalidURI, ConfigurationError, ValueError) as exc:
        raise MongoUriError(redact(f"bad MongoDB URI {uri!r}: {exc}")) from None


def seed_hosts(uri: str) -> list[str]:
    return [f"{host}:{port}" for host, port in parse(uri)["nodelist"]]


def _shared_options(parsed: dict[str, Any]) -> dict[str, Any]:
    # Credentials and TLS must follow a direct connection, the replica-set name must not.
    keep = {}
    if parsed.get("username"):
        keep["username"] = parsed["username"]
        keep["password"] = parsed.get("password")
    for key, value in parsed.get("options", {}).items():
        if key.lower() in (
            "authsource",
            "authmechanism",
            "tls",
            "ssl",
            "tlscafile",
            "tlscertificatekeyfile",
            "tlsallowinvalidcertificates",
        ):
            keep[key] = value
    return keep


def connect(uri: str, timeout: float = 5.0, **kwargs: Any) -> pymongo.MongoClient:
    """A client of the whole set, following the primary."""
    parse(uri)
    options: dict[str, Any] = dict(
        heartbeatFrequencyMS=HEARTBEAT_MS,
        serverSelectionTimeoutMS=int(timeout * 1000),
        connectTimeoutMS=int(min(timeout, 5.0) * 1000),
        socketTimeoutMS=int(max(timeout, 10.0) * 1000),
        appname="hubcluster",
    )
    return pymongo.MongoClient(uri, **_with_access(options, kwargs))


def connect_member(
    uri: str, member: str, timeout: float = 5.0, **kwargs: Any
) -> pymongo.MongoClient:
    """A client of one member only: for commands that act on that member (freeze, stepdown),
    and for writes that must fail rather than follow the primary elsewhere (the collector's).
    """
    options = _with_access(_shared_options(parse(uri)), kwargs)
    return pymongo.MongoClient(
        f"mongodb://{member}/",
        directConnection=True,
        serverSelectionTimeoutMS=int(timeout * 1000),
        connectTimeoutMS=int(min(timeout, 5.0) * 1000),
        socketTimeoutMS=int(max(timeout, 10.0) * 1000) + 60_000,
        appname="hubcluster",
        **options,
    )


AUTHENTICATION_FAILED = 18


def login_refused(uri: str, timeout: float = 3.0) -> str | None:
    """mongod's word when it refuses the process's credentials; None when they are taken, or
    when no member answers now (a daemon then waits for its database as usual)."""
    try:
        with connect(uri, timeout) as client:
            client.admin.command("ping")
    except OperationFailure as exc:
        if exc.code == AUTHENTICATION_FAILED:
            return str(exc.details.get("errmsg") if exc.details else exc) or "refused"
        return None
    except PyMongoError:
        return None
    return None
