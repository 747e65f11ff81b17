"""`hubctl check` in every Nagios state, against the stand-in."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from typer.testing import CliRunner

from hub.mongo import connect
from hub.replset import ReplicaSet
from hub.store import HubStore
from hubctl.app import app
from tests.conftest import wait_until

runner = CliRunner()


def check(uri, *extra):
    result = runner.invoke(app, ["check", "--mongo", uri, *extra])
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    return result.exit_code, lines[0]


@pytest.fixture
def healthy(standin_set):
    client = connect(standin_set.uri, timeout=10)
    store = HubStore(client)
    store.record_round({"hub": "hub1", "finished": dt.datetime.now(dt.UTC), "seconds": 0.42})
    for hub in ("hub1", "hub2", "hub3"):
        store.set_hub_state(
            hub,
            role="master" if hub == "hub1" else "standby",
            release="r1",
            release_since=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
        )
    for i in range(10):
        sha = f"{i:02d}" * 32
        store.record_host(sha, f"web{i}", "127.0.0.1", 5309, hub="hub1")
        store.record_last_seen("hub1", {sha: dt.datetime.now(dt.UTC)})
    yield standin_set, store
    client.close()


def test_ok_with_perfdata(healthy):
    cluster, _ = healthy
    code, line = check(cluster.uri)
    assert code == 0
    assert line.startswith("HUBCLUSTER OK - primary 127.0.0.1:")
    perf = dict(re.findall(r"(\w+)=([^ ]+)", line.split("|", 1)[1]))
    assert perf["members_up"] == "3;;;0;3"
    assert perf["clients_fresh"] == "10" and perf["clients_stale"] == "0"
    assert perf["last_round_duration"] == "0.42s"
    assert perf["replication_lag"].startswith("0.0s")


def test_warning_member_down(healthy):
    cluster, _ = healthy
    secondary = next(h for h in cluster.hosts if h != cluster.primary())
    cluster.kill(secondary)
    wait_until(lambda: check(cluster.uri)[0] == 1, 10, what="warning")
    assert f"member down: {secondary}" in check(cluster.uri)[1]


def test_warning_maintenance_and_stale_clients(healthy):
    cluster, store = healthy
    rs = ReplicaSet(cluster.uri)
    rs.maintenance_start(cluster.primary(), 600)
    rs.close()
    code, line = check(cluster.uri)
    assert code == 1 and "maintenance window open" in line
    store.record_host("ff" * 32, "old1", "127.0.0.1", 5309, hub="hub1")
    store.record_host("ee" * 32, "old2", "127.0.0.1", 5309, hub="hub1")
    code, line = check(cluster.uri, "--stale-warn", "0.1")
    assert code == 1 and "2/12 clients stale" in line


def test_critical_no_round_within_three_intervals(healthy):
    cluster, store = healthy
    store.db["rounds"].delete_many({})
    code, line = check(cluster.uri)
    assert code == 2 and "no collection round has finished yet" in line
    store.record_round(
        {
            "hub": "hub1",
            "finished": dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20),
            "seconds": 1,
        }
    )
    assert check(cluster.uri, "--collect-interval", "10m")[0] == 0
    code, line = check(cluster.uri, "--collect-interval", "5m")
    assert code == 2 and re.search(r"last collection round finished 12\d\ds ago", line)


def test_critical_masterfiles_diverged_longer_than_sync_interval(healthy):
    cluster, store = healthy
    store.set_hub_state("hub1", release="r2", release_since=dt.datetime.now(dt.UTC))
    assert check(cluster.uri, "--sync-interval", "1m")[0] == 0
    store.set_hub_state(
        "hub1", release="r2", release_since=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    )
    code, line = check(cluster.uri, "--sync-interval", "1m")
    assert code == 2 and "masterfiles diverged" in line and "hub2, hub3 not on r2" in line


def test_critical_no_primary(healthy):
    cluster, _ = healthy
    primary = cluster.primary()
    cluster.kill(primary)
    for host in cluster.hosts:
        if host != primary:
            cluster.isolate(host)
            break
    wait_until(lambda: check(cluster.uri)[0] == 2, 15, what="critical")
    assert "no primary" in check(cluster.uri)[1]


def test_unknown_when_unreachable_or_misused():
    code, line = check("mongodb://127.0.0.1:9/?replicaSet=x", "--timeout", "1")
    assert code == 3 and line.startswith("HUBCLUSTER UNKNOWN - cannot reach any member")
    code, line = check("mongodb://127.0.0.1:9/?replicaSet=x", "--max-lag", "soon")
    assert code == 3 and "--max-lag" in line
