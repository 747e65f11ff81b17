"""Blocking reads behind the hosts, host and history pages (each run in a thread)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pymongo import DESCENDING

from hub.events import list_events
from hub.health_check import Thresholds
from hub.outcome_summary import LATEST_OUTCOMES
from hub.portal.host_listing import HostListing
from hub.portal.listing import HostQuery
from hub.portal.overview import Reader
from hub.queries import outcome_row
from hub.release_generations import GENERATIONS
from hub.store import LAST_SEEN
from hubcluster.keys import fingerprint_from_sha

HISTORY_LIMIT = 500
RELEASES_SHOWN = 50
TIMELINE = 30


def listing(reader: Reader) -> HostListing:
    return HostListing(reader.queries.db, dt.datetime.now(dt.UTC), Thresholds().stale_after)


def hosts_page(reader: Reader, query: HostQuery) -> tuple[list[dict[str, Any]], int, int]:
    """(the page's rows, hosts matching, pages) of the hosts table."""
    return listing(reader).page(query)


def host_rows(reader: Reader, query: HostQuery) -> list[dict[str, Any]]:
    """Every row the query selects, in its order (the CSV export)."""
    return listing(reader).everything(query)


def host_detail(reader: Reader, name: str) -> dict[str, Any]:
    """One host; raises hub.queries.QueryError when no host (or several) match `name`."""
    queries = reader.queries
    sha = queries.resolve_host(name)
    (row,) = listing(reader).rows([sha])
    latest = queries.db[LATEST_OUTCOMES].find_one({"_id": sha})
    now = dt.datetime.now(dt.UTC)
    reports = queries.reports(name, last=TIMELINE)
    return {
        "host": row,
        "fingerprint": fingerprint_from_sha(sha),
        "outcome": None if latest is None else outcome_row(sha, row["host"], latest, now),
        "reports": list(reversed(reports)),  # newest first
        "seen_by_hub": reader.store.reading(LAST_SEEN).find_one({"_id": sha}, {"_id": 0}),
    }


def history(reader: Reader) -> list[dict[str, Any]]:
    events = list_events(reader.client, None, reader.max_staleness, HISTORY_LIMIT)
    return list(reversed(events))  # newest first


def compliance(reader: Reader) -> dict[str, Any]:
    """Per promise and per host, from the collector's latest-outcome summaries."""
    return reader.queries.compliance()


def masterfiles(reader: Reader) -> list[dict[str, Any]]:
    """Release generations, newest first, each with the hubs that serve it now."""
    store = reader.store
    states = store.hub_states()
    found = store.reading(GENERATIONS).find().sort("_id", DESCENDING).limit(RELEASES_SHOWN)
    return [
        {
            "generation": doc["_id"],
            "release": doc.get("release"),
            "published_by": doc.get("hub"),
            "time": doc.get("time"),
            "held_by": sorted(s["_id"] for s in states if s.get("release") == doc.get("release")),
        }
        for doc in found
    ]
