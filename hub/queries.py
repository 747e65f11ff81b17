"""Reporting reads for operators, served by secondaries so they never load the collector."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import pymongo
from pymongo.read_preferences import Primary

from hub import outcome_summary as summary
from hub.mongo import DB_NAME
from hub.read_modes import MODES, STALENESS_MODES, ReadMode
from hub.store import CURSORS, GAPS, HOSTS, LAST_SEEN, REPORTS, lost_by_host
from hubcluster import report_kinds as rk


class QueryError(ValueError):
    """A query that cannot be answered as asked."""


def read_preference(mode: str, max_staleness: float) -> ReadMode:
    if mode not in MODES:
        raise QueryError(f"unknown read preference {mode!r} (use {', '.join(MODES)})")
    if mode == "primary":
        return Primary()
    if max_staleness and max_staleness < 90:
        raise QueryError("--max-staleness must be at least 90 seconds (MongoDB's floor)")
    return STALENESS_MODES[mode](max_staleness=int(max_staleness) if max_staleness else -1)


def check_kind(kind: str | None) -> None:
    if kind is not None and kind not in rk.KINDS:
        raise QueryError(f"no report kind {kind!r} (kinds: {', '.join(rk.KINDS)})")


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


class Queries:
    def __init__(self, client: pymongo.MongoClient, pref: ReadMode) -> None:
        self.db = client.get_database(DB_NAME, read_preference=pref)

    def hosts(self, stale_after: float | None = None) -> list[dict[str, Any]]:
        """Every registered host with when it was last seen (latest across hubs) and pulled."""
        seen = {d["_id"]: d for d in self.db[LAST_SEEN].find()}
        cursors = {d["_id"]: d for d in self.db[CURSORS].find()}
        lost = lost_by_host(self.db[GAPS])
        now = dt.datetime.now(dt.UTC)
        rows = []
        for host in self.db[HOSTS].find().sort("hostname", pymongo.ASCENDING):
            sha = host["_id"]
            rows.append(
                host_row(host, seen.get(sha), cursors.get(sha), lost.get(sha, 0), now, stale_after)
            )
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
        check_kind(kind)
        sha = self.resolve_host(host)
        query: dict[str, Any] = {"host": sha}
        if kind:
            query["kind"] = kind
        docs = self.db[REPORTS].find(query, {"_id": 0}).sort("seq", pymongo.DESCENDING).limit(last)
        return list(reversed(list(docs)))

    def compliance(self) -> dict[str, Any]:
        """Compliance of each host's latest agent run: per host, per promise, and the fleet's.

        A host is compliant when its latest run could run the policy and kept or repaired
        every promise that applied; a promise's share counts the hosts where it applied
        (not skipped). Read from the summaries the collector keeps (hub.outcome_summary).
        """
        names = {
            d["_id"]: d.get("hostname")
            for d in self.db[HOSTS].find({"revoked": {"$ne": True}}, {"hostname": 1})
        }
        now = dt.datetime.now(dt.UTC)
        hosts, silent = [], []
        per_promise: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(rk.STATUSES, 0))
        latest = {d["_id"]: d for d in self.db[summary.LATEST_OUTCOMES].find()}
        for sha, name in names.items():
            doc = latest.get(sha)
            if doc is None:
                silent.append(name)
                continue
            for promise in doc[summary.PROMISES]:
                per_promise[promise[rk.PROMISE_NAME]][promise[rk.PROMISE_STATUS]] += 1
            hosts.append(outcome_row(sha, name, doc, now))
        hosts.sort(key=lambda r: (r["compliant"], r["host"] or ""))
        promises = [
            {"promise": name, "hosts": sum(c.values()), **c, "share": _share(c)}
            for name, c in sorted(per_promise.items())
        ]
        ran = [r["ran"] for r in hosts]
        compliant = sum(1 for r in hosts if r["compliant"])
        fleet = {
            "hosts": len(names),
            "reporting": len(hosts),
            "compliant": compliant,
            "share": compliant / len(hosts) if hosts else None,
            "oldest": min(ran, default=None),
            "newest": max(ran, default=None),
            "no_outcome": sorted(n or "?" for n in silent),
            "as_of": now,
        }
        return {"fleet": fleet, "hosts": hosts, "promises": promises}


def host_row(
    host: dict[str, Any],
    seen: dict[str, Any] | None,
    cursor: dict[str, Any] | None,
    lost: int,
    now: dt.datetime,
    stale_after: float | None,
) -> dict[str, Any]:
    """One registered host as `hosts` lists it, from its documents in hosts, last_seen,
    cursors, and the reports its spool dropped (gap records)."""
    seen, cursor = seen or {}, cursor or {}
    latest = _aware(seen.get("latest"))
    age = (now - latest).total_seconds() if latest else None
    return {
        "host": host.get("hostname"),
        "key": host["_id"],
        "address": f"{host.get('address')}:{host.get('report_port')}",
        "revoked": bool(host.get("revoked")),
        "last_seen": latest,
        "seen_by": sorted((seen.get("hubs") or {}).keys()),
        "last_pull": _aware(cursor.get("last_pull")),
        "reports": int(cursor.get("seq", 0)),
        "lost": lost,
        "last_error": _error_since_last_pull(cursor),
        "stale": stale_after is not None and (age is None or age > stale_after),
    }


def _error_since_last_pull(cursor: dict[str, Any]) -> str | None:
    """The last failed pull's error, unless a pull succeeded after it (then it is history)."""
    failed, pulled = _aware(cursor.get("last_attempt")), _aware(cursor.get("last_pull"))
    if failed is not None and pulled is not None and pulled > failed:
        return None
    return cursor.get("last_error")


def _share(counts: dict[str, int]) -> float | None:
    good = counts[rk.KEPT] + counts[rk.REPAIRED]
    applied = good + counts[rk.NOT_KEPT]
    return good / applied if applied else None


def outcome_row(
    sha: str, name: str | None, doc: dict[str, Any], now: dt.datetime
) -> dict[str, Any]:
    """A host's compliance row (`query compliance --by host`) from its latest-outcome summary."""
    counts = doc[summary.COUNTS]
    ran = _aware(doc[summary.RAN])
    error = doc.get(summary.ERROR)
    return {
        "host": name,
        "key": sha,
        "ran": ran,
        "age_seconds": (now - ran).total_seconds() if ran else None,
        "release": doc.get(summary.RELEASE),
        **{status: counts.get(status, 0) for status in rk.STATUSES},
        "error": error,
        "compliant": summary.compliant(doc),
        "not_kept_promises": [
            p[rk.PROMISE_NAME] for p in doc[summary.PROMISES] if p[rk.PROMISE_STATUS] == rk.NOT_KEPT
        ],
    }
