"""The hosts table read page by page from the database (blocking; run in a thread).

At 10,000 hosts, reading every host's documents from four collections to show fifty was
the page's whole cost. So a page is chosen in the database: sorted and cut there (skip and
limit, with a count for the total) when the sort and every filter live in one collection,
and otherwise from the few fields the filters and the sort need (ids and one value per
host, never whole documents). Only the page's hosts are then read in full, by `_id`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection
from pymongo.database import Database

from hub import outcome_summary as summary
from hub.portal.listing import PAGE_SIZE, HostQuery, PastLastPage
from hub.queries import host_row
from hub.store import CURSORS, GAPS, HOSTS, LAST_SEEN
from hubcluster import report_kinds as rk

# A host's sort value in the collection that holds it; hosts without a document there sort
# as None (first when ascending, as MongoDB sorts a missing field).
SORT_FIELDS: dict[str, tuple[str, list[str]]] = {
    "host": (HOSTS, ["hostname"]),
    "address": (HOSTS, ["address", "report_port"]),
    "last_seen": (LAST_SEEN, ["latest"]),
    "reports": (CURSORS, ["seq"]),
}
NOT_COMPLIANT = {
    "$or": [{summary.ERROR: {"$nin": [None, ""]}}, {f"{summary.COUNTS}.{rk.NOT_KEPT}": {"$gt": 0}}]
}


def count_matching(collection: Collection, query: dict[str, Any]) -> int:
    """How many documents match, by the `count` command: count_documents is an aggregation,
    which the stand-in answers by copying every document first."""
    db = collection.database
    answer = db.command("count", collection.name, query=query, read_preference=db.read_preference)
    return int(answer["n"])


def search_filter(needle: str) -> dict[str, Any]:
    """A name containing `needle` (any case) or a key starting with it."""
    if not needle:
        return {}
    return {
        "$or": [
            {"hostname": {"$regex": re.escape(needle), "$options": "i"}},
            {"_id": {"$regex": "^" + re.escape(needle)}},
        ]
    }


class HostListing:
    def __init__(self, db: Database, now: dt.datetime, stale_after: float) -> None:
        self.db = db
        self.now = now
        self.stale_after = stale_after
        self.cutoff = now - dt.timedelta(seconds=stale_after)

    # ----- which hosts, in which order ------------------------------------------------------
    def page(self, query: HostQuery) -> tuple[list[dict[str, Any]], int, int]:
        """(the page's rows, hosts matching, pages); PastLastPage beyond the last page."""
        start = (query.page - 1) * PAGE_SIZE
        if self._one_collection(query):
            total, ids = self._by_database(query, start)
        else:
            keys = self._ordered_keys(query)
            total, ids = len(keys), keys[start : start + PAGE_SIZE]
        pages = max(1, -(-total // PAGE_SIZE))
        if query.page > pages:
            raise PastLastPage(f"page: there {'is' if pages == 1 else 'are'} only {pages}")
        return self.rows(ids), total, pages

    def everything(self, query: HostQuery) -> list[dict[str, Any]]:
        """Every matching host's row, in the query's order (for the CSV export)."""
        return self.rows(self._ordered_keys(query))

    def _one_collection(self, query: HostQuery) -> bool:
        collection, _ = SORT_FIELDS.get(query.sort, ("", []))
        if query.filter != "all" or query.hub or not collection:
            return False
        if collection == HOSTS:
            return True
        # Sorting by another collection's field cannot search names there; and its hosts
        # must all be registered ones, or skip/limit would count strangers.
        hosts = self.db[HOSTS].estimated_document_count()
        return not query.search and self.db[collection].estimated_document_count() <= hosts

    def _by_database(self, query: HostQuery, start: int) -> tuple[int, list[str]]:
        collection, fields = SORT_FIELDS[query.sort]
        direction = DESCENDING if query.descending else ASCENDING
        order = [(f, direction) for f in fields] + [("_id", ASCENDING)]
        if collection == HOSTS:
            found = self.db[HOSTS].find(search_filter(query.search), {"_id": 1})
            if not query.search:
                return count_matching(self.db[HOSTS], {}), self._ids(found, order, start)
            # A search matches few hosts: one read of their keys gives the count and the page.
            matching = [d["_id"] for d in found.sort(order)]
            return len(matching), matching[start : start + PAGE_SIZE]
        # Hosts without a document in `collection` form a block first (ascending) or last.
        total = self.db[HOSTS].estimated_document_count()
        present = self.db[collection].estimated_document_count()
        missing = total - present
        absent: list[str] = []
        first, last = start, start + PAGE_SIZE
        if missing and (last > present if query.descending else first < missing):
            absent = self._absent(collection)
        listed = self.db[collection].find({}, {"_id": 1})
        if query.descending:
            tail = absent[max(0, first - present) : max(0, last - present)]
            return total, self._ids(listed, order, first) + tail
        block = absent[first:last]
        return total, block + self._ids(
            listed, order, max(0, first - missing), PAGE_SIZE - len(block)
        )

    @staticmethod
    def _ids(cursor: Any, order: list, skip: int, limit: int = PAGE_SIZE) -> list[str]:
        if limit <= 0:
            return []
        return [d["_id"] for d in cursor.sort(order).skip(skip).limit(limit)]

    def _absent(self, collection: str) -> list[str]:
        """Registered hosts with no document in `collection`, by key (as ties sort)."""
        present = {d["_id"] for d in self.db[collection].find({}, {"_id": 1})}
        keys = self.db[HOSTS].find({}, {"_id": 1}).sort("_id", ASCENDING)
        return [d["_id"] for d in keys if d["_id"] not in present]

    def _ordered_keys(self, query: HostQuery) -> list[str]:
        """Matching host keys in order, from ids and the one field each filter needs."""
        fields = {"hostname": 1, "address": 1, "report_port": 1, "revoked": 1}
        hosts = list(self.db[HOSTS].find(search_filter(query.search), fields))
        keep: list[Callable[[dict], bool]] = []
        if query.hub:
            on_hub = self._id_set(LAST_SEEN, {f"hubs.{query.hub}": {"$exists": True}})
            keep.append(lambda h: h["_id"] in on_hub)
        if query.filter == "stale":
            fresh = self._id_set(LAST_SEEN, {"latest": {"$gte": self.cutoff}})
            keep.append(lambda h: h["_id"] not in fresh)
        if query.filter == "noncompliant":
            failing = self._id_set(summary.LATEST_OUTCOMES, NOT_COMPLIANT)
            keep.append(lambda h: h["_id"] in failing and not h.get("revoked"))
        kept = sorted((h for h in hosts if all(test(h) for test in keep)), key=lambda h: h["_id"])
        # Stable: ties stay in key order either way, as the database's ("_id", 1) keeps them.
        kept.sort(key=self._sort_key(query), reverse=query.descending)
        return [h["_id"] for h in kept]

    def _id_set(self, collection: str, found: dict[str, Any]) -> set[str]:
        return {d["_id"] for d in self.db[collection].find(found, {"_id": 1})}

    def _sort_key(self, query: HostQuery) -> Callable[[dict], Any]:
        if query.sort == "compliant":
            failing = self._id_set(summary.LATEST_OUTCOMES, NOT_COMPLIANT)
            reporting = self._id_set(summary.LATEST_OUTCOMES, {})

            # not compliant, compliant, then no outcome (revoked hosts have none); by name
            def compliance(h: dict[str, Any]) -> tuple[bool, bool, str]:
                none = bool(h.get("revoked")) or h["_id"] not in reporting
                return none, not none and h["_id"] not in failing, h.get("hostname") or ""

            return compliance
        collection, fields = SORT_FIELDS[query.sort]
        if collection == HOSTS:
            return lambda h: tuple(_sortable(h.get(f)) for f in fields)
        values = {d["_id"]: d.get(fields[0]) for d in self.db[collection].find({}, {fields[0]: 1})}
        return lambda h: _sortable(values.get(h["_id"]))

    # ----- the rows themselves ------------------------------------------------------------
    def rows(self, ids: list[str]) -> list[dict[str, Any]]:
        """The hosts table's rows of these hosts, in this order."""
        if not ids:
            return []
        wanted = {"_id": {"$in": ids}}
        hosts = {d["_id"]: d for d in self.db[HOSTS].find(wanted)}
        seen = {d["_id"]: d for d in self.db[LAST_SEEN].find(wanted)}
        cursors = {d["_id"]: d for d in self.db[CURSORS].find(wanted)}
        fields = {summary.COUNTS: 1, summary.ERROR: 1, summary.PROMISES: 1, summary.RAN: 1}
        outcomes = {d["_id"]: d for d in self.db[summary.LATEST_OUTCOMES].find(wanted, fields)}
        lost: dict[str, int] = {}
        for gap in self.db[GAPS].find({"host": {"$in": ids}}, {"host": 1, "count": 1}):
            lost[gap["host"]] = lost.get(gap["host"], 0) + int(gap.get("count") or 0)
        rows = []
        for sha in ids:
            if sha not in hosts:
                continue  # deleted between the two reads
            row = host_row(
                hosts[sha],
                seen.get(sha),
                cursors.get(sha),
                lost.get(sha, 0),
                self.now,
                self.stale_after,
            )
            rows.append({**row, **_compliance(outcomes.get(sha), row["revoked"])})
        return rows


def _compliance(outcome: dict[str, Any] | None, revoked: bool) -> dict[str, Any]:
    if outcome is None or revoked:
        return {"compliant": None, "not_kept": [], "ran": None}
    ran = outcome.get(summary.RAN)
    return {
        "compliant": summary.compliant(outcome),
        "not_kept": [
            p[rk.PROMISE_NAME]
            for p in outcome[summary.PROMISES]
            if p[rk.PROMISE_STATUS] == rk.NOT_KEPT
        ],
        "ran": ran.replace(tzinfo=dt.UTC) if ran is not None and ran.tzinfo is None else ran,
    }


def _sortable(value: Any) -> tuple[bool, Any]:
    """None first, then values of one type (a host's field is always of one type)."""
    return (value is not None, value if value is not None else 0)
