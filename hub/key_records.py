"""Client keys in the database: revocations, and finding a host by name or key SHA.

`hubctl keys revoke` writes a revocation here with majority write concern; every hub turns
it into a tombstone in its own `ppkeys/` (hub.peer_sync.apply_db_revocations), and peer sync
spreads tombstones between hubs, so a revocation reaches a hub by either path.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING
from pymongo.read_preferences import PrimaryPreferred

from hub.events import record_event
from hub.store import HOSTS, HubStore
from hubcluster.keys import KeyFileError, fingerprint_from_sha, sha_from_fingerprint

REVOCATIONS = "revocations"
MIN_PREFIX = 6
_HEX = re.compile(r"^[0-9a-f]+$")


class KeyLookupError(LookupError):
    """No key, or more than one, matches what the operator typed; the message says which."""


def record_revocation(
    store: HubStore, sha: str, reason: str, by: str, hostname: str | None = None
) -> bool:
    """Store a revocation (majority); returns False if the key was already revoked."""
    result = store.db[REVOCATIONS].update_one(
        {"_id": sha},
        {
            "$setOnInsert": {
                "time": dt.datetime.now(dt.UTC),
                "reason": reason,
                "by": by,
                "hostname": hostname,
            }
        },
        upsert=True,
    )
    return result.upserted_id is not None


def revocations(store: HubStore) -> list[dict[str, Any]]:
    """Every revocation, oldest first, read from a secondary when one is there."""
    return list(store.reading(REVOCATIONS).find().sort("time", ASCENDING))


def all_hosts(store: HubStore) -> list[dict[str, Any]]:
    """Every registered host, revoked ones included, by host name."""
    return list(store.reading(HOSTS).find().sort("hostname", ASCENDING))


def resolve_key(store: HubStore, text: str) -> tuple[str, str | None]:
    """(sha, host name or None) for a host name, a SHA (or unique prefix), or a SHA256: print.

    Reads from the primary when there is one: a host registered a moment ago must resolve.
    """
    wanted = text.strip()
    if not wanted:
        raise KeyLookupError("give a host name, a key SHA (or its first digits) or SHA256:...")
    hosts = store.db.get_collection(HOSTS, read_preference=PrimaryPreferred())
    by_name = list(hosts.find({"hostname": wanted}))
    if len(by_name) == 1:
        return by_name[0]["_id"], wanted
    if len(by_name) > 1:
        shas = ", ".join(doc["_id"][:12] for doc in by_name)
        raise KeyLookupError(
            f"{len(by_name)} hosts are named {wanted!r} (keys {shas}); give the SHA"
        )
    if wanted.startswith("SHA256:"):
        try:
            prefix = sha_from_fingerprint(wanted)
        except KeyFileError as exc:
            raise KeyLookupError(str(exc)) from None
    else:
        prefix = wanted.lower()
    if not _HEX.match(prefix):
        raise KeyLookupError(f"no host named {wanted!r}, and it is not a key SHA")
    if len(prefix) == 64:
        doc = hosts.find_one({"_id": prefix})
        return prefix, doc["hostname"] if doc else None
    if len(prefix) < MIN_PREFIX:
        raise KeyLookupError(
            f"no host named {wanted!r}; a SHA prefix needs at least {MIN_PREFIX} digits"
        )
    found = list(hosts.find({"_id": {"$regex": f"^{prefix}"}}).limit(5))
    if not found:
        raise KeyLookupError(f"no host named {wanted!r} and no registered key starting {prefix}")
    if len(found) > 1:
        names = ", ".join(f"{d.get('hostname', '?')} ({d['_id'][:12]})" for d in found)
        raise KeyLookupError(f"SHA prefix {prefix} matches several keys: {names}; give more digits")
    return found[0]["_id"], found[0].get("hostname")


@dataclass(frozen=True)
class Revoked:
    sha: str
    hostname: str | None
    who: str  # "host (SHA256:...)" for sentences
    new: bool  # False: it was revoked already


def revoke_key(store: HubStore, target: str, reason: str, by: str, **details: Any) -> Revoked:
    """Revoke a client key for every hub: the revocation (majority), the host marked revoked,
    and a 'revoke' event in the timeline (with `details`, e.g. the portal user).

    The one implementation behind `hubctl keys revoke` and the portal's revoke button.
    """
    sha, hostname = resolve_key(store, target)
    new = record_revocation(store, sha, reason, by, hostname)
    store.forget_host(sha)
    print_ = fingerprint_from_sha(sha)
    who = f"{hostname} ({print_})" if hostname else print_
    if new:
        why = f": {reason}" if reason else ""
        record_event(
            store.client,
            "revoke",
            f"key of {who} revoked{why}",
            sha=sha,
            host=hostname,
            reason=reason,
            **details,
        )
    return Revoked(sha, hostname, who, new)
