"""Issue 20: /metrics on every hub, scraped over HTTP from real hubd after real collection.

Every figure is checked against what the product itself says elsewhere: `hubctl status
--json`, `hubctl query compliance|hosts --json` and the hub state hubd published.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import httpx

from hub.mongo import connect
from hub.release_generations import latest, publish_seconds
from hub.store import HubStore
from tests.conftest import wait_until
from tests.metrics.conftest import parse, scrape, scrape_text, status, value
from tests.readpath.real_fleet import hubctl

# Election (1 s in this lab) plus the master watch's look and a little slack.
MASTER_MOVES_WITHIN = 15.0


def _round_figures(summary: str) -> tuple[int, int, int]:
    """(pulled, hosts, failed) from a round summary such as hubctl status shows."""
    found = re.search(r"(\d+)/(\d+) hosts pulled, \d+ reports stored, (\d+) failed", summary)
    assert found, summary
    pulled, hosts, failed = (int(g) for g in found.groups())
    return pulled, hosts, failed


def test_role_and_members_match_hubctl_status(metrics_fleet):
    master = metrics_fleet.master()
    said = status(metrics_fleet)
    roles = {h["name"]: h["role"] for h in said["hubs"]}
    assert roles[master.name] == "master"
    for hub in metrics_fleet.lab.hubs:
        samples = scrape(hub)
        assert value(samples, "hubcluster_is_master") == (1 if roles[hub.name] == "master" else 0)
        assert value(samples, "hubcluster_election_term") >= 1
        assert value(samples, "hubcluster_master_watch_probe_age_seconds") < 5
        for other in metrics_fleet.lab.hubs:
            assert value(samples, "hubcluster_member_up", member=other.name) == 1
            state = value(samples, "hubcluster_member_state", member=other.name)
            assert state == (1 if other is master else 2)
            assert (
                value(samples, "hubcluster_member_replication_lag_seconds", member=other.name) < 5
            )


def test_collection_figures_match_the_rounds_hubd_published(metrics_fleet):
    master = metrics_fleet.master()
    samples = scrape(master)
    summary = next(h for h in status(metrics_fleet)["hubs"] if h["name"] == master.name)
    pulled, hosts, failed = _round_figures(summary["last_round"])
    assert value(samples, "hubcluster_collection_rounds_total") >= 1
    assert value(samples, "hubcluster_collection_round_hosts", result="known") == hosts == 3
    assert value(samples, "hubcluster_collection_round_hosts", result="collected") == pulled
    got_failed = value(samples, "hubcluster_collection_round_hosts", result="failed")
    got_unreachable = value(samples, "hubcluster_collection_round_hosts", result="unreachable")
    assert got_failed + got_unreachable == failed
    assert value(samples, "hubcluster_collection_round_duration_seconds_count") >= 1
    assert value(samples, "hubcluster_collection_pull_duration_seconds_count") >= pulled
    assert value(samples, "hubcluster_collection_read_bytes_total") > 0
    assert value(samples, "hubcluster_collection_interval_seconds") == 1.0
    # Every report stored was stored once, by whichever hub was master then.
    hosts_out = hubctl("query", "hosts", "--mongo", metrics_fleet.uri, "--json")
    assert hosts_out.returncode == 0, hosts_out.stderr
    in_store = sum(row["reports"] for row in json.loads(hosts_out.stdout))
    stored = sum(
        value(scrape(h), "hubcluster_reports_stored_total") for h in metrics_fleet.lab.hubs
    )
    assert in_store > 0 and stored == in_store
    for reason in ("too_large", "not_json", "bad_shape", "unstorable", "other"):
        assert value(samples, "hubcluster_reports_quarantined_total", reason=reason) == 0


def test_fleet_figures_match_status_and_compliance(metrics_fleet):
    said = status(metrics_fleet)
    out = hubctl("query", "compliance", "--mongo", metrics_fleet.uri, "--json")
    assert out.returncode == 0, out.stderr
    compliance = json.loads(out.stdout)
    with_outcomes = {"kept": 0, "repaired": 0, "not_kept": 0}
    for row in compliance["promises"]:
        for status_name in with_outcomes:
            with_outcomes[status_name] += row[status_name]
    assert with_outcomes["not_kept"] == 1 and with_outcomes["repaired"] == 3
    for hub in metrics_fleet.lab.hubs:
        samples = scrape(hub)
        fresh = value(samples, "hubcluster_fleet_clients", freshness="fresh")
        assert fresh == said["clients"]["fresh"] == 3
        assert value(samples, "hubcluster_fleet_clients", freshness="stale") == 0
        assert value(samples, "hubcluster_fleet_clients", freshness="never_seen") == 0
        share = value(samples, "hubcluster_fleet_compliance_ratio")
        assert share == compliance["fleet"]["share"]
        for status_name, count in with_outcomes.items():
            assert value(samples, "hubcluster_fleet_promise_outcomes", status=status_name) == count
        keys = next(h["keys"] for h in said["hubs"] if h["name"] == hub.name)
        assert value(samples, "hubcluster_keys", state="held") == keys == 3
        assert value(samples, "hubcluster_keys", state="revoked") == 0


def test_sync_figures_match_the_hub_state(metrics_fleet):
    client = connect(metrics_fleet.uri, timeout=10)
    try:
        states = {s["_id"]: s for s in HubStore(client).db["hub_state"].find()}
    finally:
        client.close()
    for hub in metrics_fleet.lab.hubs:
        samples = scrape(hub)
        generation = states[hub.name]["generation"]
        assert generation is not None
        assert value(samples, "hubcluster_masterfiles_generation") == generation
        assert value(samples, "hubcluster_peer_syncs_total", result="ok") >= 1
        synced = value(samples, "hubcluster_peer_sync_last_success_timestamp_seconds")
        assert time.time() - synced < 30


def test_every_hub_shows_how_long_the_publish_it_serves_took(metrics_fleet):
    """The lab published its sample policy with `hubctl masterfiles publish`, which notes on
    the generation's record how long it took until a majority held it."""
    client = connect(metrics_fleet.uri, timeout=10)
    try:
        store = HubStore(client)
        newest = latest(store)
        assert newest is not None
        took = publish_seconds(store, newest.number)
    finally:
        client.close()
    assert took is not None and 0 < took < 60
    for hub in metrics_fleet.lab.hubs:
        samples = scrape(hub)
        assert value(samples, "hubcluster_masterfiles_generation") == newest.number
        assert value(samples, "hubcluster_masterfiles_publish_duration_seconds") == took


def test_scrape_is_the_library_format_with_no_label_per_host(metrics_fleet, promtool):
    hub = metrics_fleet.master()
    got = httpx.get(f"{hub.portal_url}metrics", timeout=5.0)
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("text/plain; version=")
    assert value(parse(got.text), "process_resident_memory_bytes") > 0
    checked = subprocess.run(
        [str(promtool), "check", "metrics"], input=got.text, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    clients = [c.name for c in metrics_fleet.lab.fleet]
    keys = [
        k
        for k in json.loads(hubctl("query", "hosts", "--mongo", metrics_fleet.uri, "--json").stdout)
    ]
    assert clients and all(c not in got.text for c in clients)
    assert all(row["key"][:16] not in got.text for row in keys)


def test_master_metric_moves_when_the_master_is_killed(metrics_fleet):
    old = metrics_fleet.master()
    assert value(scrape(old), "hubcluster_is_master") == 1
    metrics_fleet.lab.kill(old.name)
    killed = time.monotonic()
    try:
        assert scrape_text(old) is None
        others = [h for h in metrics_fleet.lab.hubs if h is not old]

        def new_master():
            for hub in others:
                text = scrape_text(hub)
                if text is not None and value(parse(text), "hubcluster_is_master") == 1:
                    return hub
            return None

        new = wait_until(new_master, MASTER_MOVES_WITHIN, 0.2, "is_master 1 on another hub")
        assert time.monotonic() - killed < MASTER_MOVES_WITHIN
        standby = next(h for h in others if h is not new)
        samples = scrape(standby)
        assert value(samples, "hubcluster_is_master") == 0
        assert value(samples, "hubcluster_member_up", member=old.name) == 0
        assert value(samples, "hubcluster_member_state", member=new.name) == 1
    finally:
        metrics_fleet.lab.revive(old.name)
