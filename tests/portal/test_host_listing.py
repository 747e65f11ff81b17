"""The hosts table chosen in the database (hub.portal.host_listing) gives the same pages as
sorting and filtering every host's row, for every sort, order, filter and page.

120 hosts written by the hub's own writer (HubStore.record_host, store_pulls, the contacts'
record_last_seen, as the collector and SSH service call them): some never seen or never
pulled, some stale, some not compliant, one revoked. Read as the portal's reader user.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from benchmarks.compliance_read import _pull
from hub.mongo import DB_NAME, access_as
from hub.portal.host_listing import HostListing
from hub.portal.listing import PAGE_SIZE, HostQuery, PastLastPage
from hub.queries import Queries, read_preference
from hub.store import HubStore
from hubctl.lab.standin import StandinCluster

HOSTS = 120
STALE_AFTER = 600.0


@pytest.fixture(scope="module")
def fleet_db():
    with StandinCluster(election_timeout=1.0) as cluster:
        cluster.initiate(election_timeout_ms=1000)
        now = dt.datetime.now(dt.UTC)
        with access_as(cluster.access("hubd")), cluster.client("hubd") as writer:
            store = HubStore(writer)
            store.ensure_indexes()
            keys = [f"{(i * 7919) % 1000:03d}{i:061x}" for i in range(HOSTS)]
            for i, key in enumerate(keys):
                name = f"node{(i * 37) % HOSTS:03d}" + ("-web" if i % 3 == 0 else "")
                store.record_host(key, name, f"10.0.{i % 7}.{i}", 5309 + i % 2, hub="hub1")
            pulled = keys[: HOSTS - 15]  # the last 15 were never pulled
            store.store_pulls([_pull(k, i, 0, 4) for i, k in enumerate(pulled)], "hub1")
            for hub, seen in (("hub1", keys[:90]), ("hub2", keys[60:100])):
                store.record_last_seen(
                    hub, {k: now - dt.timedelta(seconds=13 * i) for i, k in enumerate(seen)}
                )
            store.forget_host(keys[5])  # revoked
        with cluster.client("reader") as reader:
            db = reader.get_database(DB_NAME)
            yield db, now, _every_row(Queries(reader, read_preference("primary", 0)), now)


def _every_row(queries: Queries, now: dt.datetime) -> list[dict]:
    """The old way: every host's row (Queries.hosts with its latest run's compliance)."""
    compliant = {r["key"]: r["compliant"] for r in queries.compliance()["hosts"]}
    rows = []
    for row in queries.hosts():
        seen = row["last_seen"]
        stale = seen is None or (now - seen).total_seconds() > STALE_AFTER
        rows.append({**row, "stale": stale, "compliant": compliant.get(row["key"])})
    return rows


def _address(row: dict) -> tuple[str, int]:
    address, port = row["address"].rsplit(":", 1)
    return address, int(port)


SORT_KEYS = {
    "host": lambda r: r["host"] or "",
    "address": _address,
    "last_seen": lambda r: (r["last_seen"] is not None, r["last_seen"] or 0),
    "reports": lambda r: r["reports"],
    "compliant": lambda r: (r["compliant"] is None, r["compliant"] is True, r["host"] or ""),
}


def _reference(rows: list[dict], query: HostQuery) -> list[str]:
    """The hosts a query selects, in its order, from every row (ties in key order)."""
    needle = query.search.lower()
    kept = [
        r
        for r in rows
        if (not needle or needle in (r["host"] or "").lower() or r["key"].startswith(needle))
        and (query.filter != "stale" or r["stale"])
        and (query.filter != "noncompliant" or r["compliant"] is False)
        and (not query.hub or query.hub in r["seen_by"])
    ]
    kept.sort(key=lambda r: r["key"])
    kept.sort(key=SORT_KEYS[query.sort], reverse=query.descending)
    return [r["key"] for r in kept]


QUERIES = [
    HostQuery(search=s, filter=f, hub=h, sort=o, descending=d)
    for s, f, h, o, d in itertools.product(
        ("", "web", "00"),
        ("all", "stale", "noncompliant"),
        ("", "hub2"),
        ("host", "address", "last_seen", "reports", "compliant"),
        (False, True),
    )
]


def test_every_page_matches_the_rows_sorted_and_filtered(fleet_db):
    db, now, every_row = fleet_db
    listing = HostListing(db, now, STALE_AFTER)
    by_database = 0
    for query in QUERIES:
        expected = _reference(every_row, query)
        assert [r["key"] for r in listing.everything(query)] == expected, query
        pages = max(1, -(-len(expected) // PAGE_SIZE))
        for number in range(1, pages + 1):
            shown = HostQuery(**{**query.__dict__, "page": number})
            rows, total, count = listing.page(shown)
            start = (number - 1) * PAGE_SIZE
            assert [r["key"] for r in rows] == expected[start : start + PAGE_SIZE], shown
            assert (total, count) == (len(expected), pages)
        by_database += listing._one_collection(query)
        with pytest.raises(PastLastPage):
            listing.page(HostQuery(**{**query.__dict__, "page": pages + 1}))
    assert by_database == 3 * 2 * 2 + 2 * 2  # host/address (any search), last_seen/reports


def test_rows_carry_what_the_table_shows(fleet_db):
    db, now, _ = fleet_db
    listing = HostListing(db, now, STALE_AFTER)
    rows, total, _ = listing.page(HostQuery(filter="noncompliant"))
    assert total > len(rows) == PAGE_SIZE
    assert all(r["compliant"] is False and r["not_kept"] and r["ran"] for r in rows)
    never = listing.page(HostQuery(sort="last_seen"))[0][:20]
    assert [r["last_seen"] for r in never] == [None] * 20 and all(r["stale"] for r in never)
    revoked = [r for r in listing.everything(HostQuery()) if r["revoked"]]
    assert len(revoked) == 1 and revoked[0]["compliant"] is None
