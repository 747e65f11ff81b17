"""Issue 14, the data behind the charts: the fleet's compliance after each round (written by
the master, hub.compliance_history) and one host's promise outcomes per run.

Real data only: the portal_fleet's agent runs, collected by the real collector; the records
come from hubd's own round hook. Over real HTTP to a hub's portal.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from hub import compliance_history as ch
from hub.mongo import DB_NAME, connect
from tests.conftest import wait_until
from tests.portal.conftest import browser, log_in
from tests.readpath.real_fleet import NOT_KEPT_ON


@pytest.fixture
def viewer(portal_fleet):
    with browser(portal_fleet.lab.hubs[2]) as client:
        assert log_in(client, "viewer", portal_fleet.lab.portal.password).status_code == 303
        yield client


def test_the_master_records_the_fleets_compliance_after_rounds(viewer, portal_fleet):
    # One more round with reports, after whatever ran before (a revoked client's run fails).
    asyncio.run(portal_fleet.lab.agent_runs())

    def agreeing():
        history = viewer.get("/api/compliance/history").json()
        now = viewer.get("/api/compliance").json()
        last = history[-1] if history else {}
        fleet = now["fleet"]
        same = (last.get("reporting"), last.get("compliant")) == (
            fleet["reporting"],
            fleet["compliant"],
        )
        return same and (history, now)

    history, now = wait_until(agreeing, 20, 0.3, "a record agreeing with the summaries")
    last = history[-1]
    assert len(history) >= 2  # the fixture's run and this one, each in its own round
    times = [dt.datetime.fromisoformat(r["time"]) for r in history]
    assert times == sorted(times)
    assert last["share"] == pytest.approx(now["fleet"]["share"])
    # Promise counts are the per-promise table's columns summed.
    for status in ("kept", "repaired", "not_kept"):
        assert last[status] == sum(p[status] for p in now["promises"]), status
    assert last["not_kept"] >= 1  # NOT_KEPT_ON's broken promise
    assert last["hosts"] >= last["reporting"] >= 1


def test_host_runs_count_outcomes_per_run(viewer, portal_fleet):
    asyncio.run(portal_fleet.lab.agent_runs())  # at least two runs, whatever ran before
    runs = wait_until(
        lambda: (r := viewer.get(f"/api/hosts/{NOT_KEPT_ON}/runs").json()) and len(r) >= 2 and r,
        20,
        0.3,
        f"two runs of {NOT_KEPT_ON}",
    )
    detail = viewer.get(f"/api/hosts/{NOT_KEPT_ON}").json()
    outcomes = [r for r in detail["reports"] if r["kind"] == "outcome"]
    assert len(runs) >= len(outcomes)
    ran = [dt.datetime.fromisoformat(r["ran"]) for r in runs]
    assert ran == sorted(ran)
    for run in runs:
        assert run["not_kept"] == 1 and run["kept"] >= 1 and run["error"] is None
    others = viewer.get("/api/hosts/client002/runs").json()
    assert others and all(r["not_kept"] == 0 for r in others)
    missing = viewer.get("/api/hosts/no-such-host/runs")
    assert missing.status_code == 404 and "no host" in missing.json()["error"]


def test_unauthenticated_chart_data_is_refused(portal_fleet):
    with browser(portal_fleet.lab.hubs[2]) as anonymous:
        assert anonymous.get("/api/compliance/history").status_code == 401
        assert anonymous.get(f"/api/hosts/{NOT_KEPT_ON}/runs").status_code == 401


def test_compliance_records_are_bounded(portal_fleet):
    """Each record drops what lies beyond the newest `keep` (on the fleet's real summaries)."""
    client = connect(portal_fleet.uri, timeout=10)
    db = client.get_database(DB_NAME)
    # In the future, so they are the newest; BSON keeps milliseconds.
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3650)).replace(microsecond=0)
    ours = [future + dt.timedelta(seconds=i) for i in range(5)]
    try:
        for when in ours:
            ch.record(db, when, keep=3)
        kept = [r[ch.TIME].replace(tzinfo=dt.UTC) for r in ch.recent(db[ch.COMPLIANCE_HISTORY], 10)]
        # The newest three are ours; the two before them (and every older record) are gone,
        # except one the master may have written since our last insert.
        assert kept[-3:] == ours[2:]
        assert len(kept) <= 4 and not set(kept) & set(ours[:2])
    finally:
        db[ch.COMPLIANCE_HISTORY].delete_many({ch.TIME: {"$gte": future}})
        client.close()
