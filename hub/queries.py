"""Reporting reads for operators, served by secondaries so they never load the collector."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import pymongo
from pymongo.read_preferences import (
    Nearest,
    Primary,
    PrimaryPreferred,
    Secondary,
    SecondaryPreferred,
    _ServerMode,
)

from hub.mongo import DB_NAME
from hub.store import CURSORS, HOSTS, LAST_SEEN, REPORTS

MODES = {
    "primary": Primary,
    "primaryPreferred": PrimaryPreferred,
    "secondary": Secondary,
    "secondaryPreferred": SecondaryPreferred,
    "nearest": Nearest,
}


class QueryError(ValueError):
    """A query that cannot be answered as asked."""


def read_preference(mode: str, max_staleness: float) -> _ServerMode:
    if mode not in MODES:
        raise QueryError(f"unknown read preference {mode!r} (use {', '.join(MODES)})")
    if mode == "primary":
        return Primary()
    if max_staleness and max_staleness < 90:
        raise QueryError("--max-staleness must be at least 90 seconds (MongoDB's floor)")
    return MODES[mode](max_staleness=int(max_staleness) if max_staleness else -1)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


class Queries:
    def __init__(self, client: pymongo.MongoClient, pref: _ServerMode) -> None:
        self.db = client.get_database(DB_NAME, read_preference=pref)

    def hosts(self, stale_after: float | None = None) -> list[dict[str, Any]]:
        """Every registered host with when it was last seen (latest across hubs) and pulled."""
        seen = {d["_id"]: d for d in self.db[LAST_SEEN].find()}
        cursors = {d["_id"]: d for d in self.db[CURSORS].find()}
        now = dt.datetime.now(dt.UTC)
        rows = []
        for host in self.db[HOSTS].find().sort("hostname", pymongo.ASCENDING):
            sha = host["_id"]
            latest = _aware(seen.get(sha, {}).get("latest"))
            cursor = cursors.get(sha, {})
            age = (now - latest).total_seconds() if latest else None
            row = {
                "host": host.get("hostname"),
                "key": sha,
                "address": f"{host.get('address')}:{host.get('report_port')}",
                "revoked": bool(host.get("revoked")),
                "last_seen": latest,
                "seen_by": sorted((seen.get(sha, {}).get("hubs") or {}).keys()),
                "last_pull": _aware(cursor.get("last_pull")),
                "reports": int(cursor.get("seq", 0)),
                "last_error": cursor.get("last_error"),
                "stale": stale_after is not None and (age is None or age > stale_after),
            }
            rows.append(row)
        if stale_after is not None:
            rows = [r for r in rows if r["stale"]]
        return rows

    def resolve_host(self, name: str) -> str:
        """A hostname or a key (or a unique key prefix) -> the host key."""
        by_name = list(self.db[HOSTS].find({"hostname": name}, {"_id": 1}))
        if len(by_name) == 1:
            return by_name[0]["_id"]
        if len(name) >= 6:
            found = [
                d["_id"] for d in self.db[HOSTS].find({}, {"_id": 1}) if d["_id"].startswith(name)
            ]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise QueryError(f"{name!r} matches {len(found)} host keys; give more of it")
        if len(by_name) > 1:
            raise QueryError(f"{len(by_name)} hosts are called {name!r}; name one by its key")
        raise QueryError(f"no host {name!r} (neither a hostname nor a key prefix)")

    def reports(self, host: str, kind: str | None = None, last: int = 10) -> list[dict[str, Any]]:
        sha = self.resolve_host(host)
        query: dict[str, Any] = {"host": sha}
        if kind:
            query["kind"] = kind
        docs = self.db[REPORTS].find(query, {"_id": 0}).sort("seq", pymongo.DESCENDING).limit(last)
        return list(reversed(list(docs)))

    def compliance(self) -> list[dict[str, Any]]:
        """Per promise, over each host's latest compliance report: kept, repaired, not kept."""
        latest = list(
            self.db[REPORTS].aggregate(
                [
                    {"$match": {"kind": "compliance"}},
                    {"$sort": {"seq": -1}},
                    {"$group": {"_id": "$host", "payload": {"$first": "$payload"}}},
                ]
            )
        )
        counts: dict[str, dict[str, int]] = defaultdict(
            lambda: {"kept": 0, "repaired": 0, "not_kept": 0, "skipped": 0}
        )
        for doc in latest:
            for outcome in (doc.get("payload") or {}).get("outcomes", []):
                status = outcome.get("status")
                if status in counts[outcome.get("name", "?")]:
                    counts[outcome.get("name", "?")][status] += 1
        return [{"promise": name, "hosts": len(latest), **c} for name, c in sorted(counts.items())]
