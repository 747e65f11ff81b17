"""Reporting reads and the event timeline, including while the set has no primary."""

from __future__ import annotations

import datetime as dt
import hashlib
import time

import pymongo
import pytest
from typer.testing import CliRunner

from hub.events import list_events, record_event
from hub.mongo import connect
from hub.queries import Queries, QueryError, read_preference
from hub.store import HubStore, Pull
from hubctl.app import app
from tests.conftest import wait_until

runner = CliRunner()


def sha_of(name):
    return hashlib.sha256(name.encode()).hexdigest()


def outcome(name, status):
    return {"name": name, "status": status, "reason": "", "seconds": 0.0}


@pytest.fixture
def filled(standin_set):
    client = connect(standin_set.uri, timeout=10)
    store = HubStore(client)
    store.ensure_indexes()
    now = time.time()
    for i, name in enumerate(["web1", "web2", "db1"]):
        sha = sha_of(name)
        store.record_host(sha, name, "127.0.0.1", 5309 + i, hub="hub1")
        records = [
            {
                "seq": 1,
                "kind": "compliance",
                "time": now,
                "payload": {"outcomes": [outcome("motd", "not_kept"), outcome("ntp", "kept")]},
            },
            {"seq": 2, "kind": "inventory", "time": now, "payload": {"os": "linux"}},
            {
                "seq": 3,
                "kind": "compliance",
                "time": now,
                "payload": {
                    "outcomes": [
                        outcome("motd", "repaired" if i else "kept"),
                        outcome("ntp", "kept"),
                    ]
                },
            },
        ]
        pull = Pull(sha, records, [], 3, dt.datetime.now(dt.UTC))
        assert store.store_pulls([pull], "hub1") == [3]
        assert store.store_pulls([pull], "hub1") == [0]  # idempotent
    store.record_last_seen("hub1", {sha_of("web1"): dt.datetime.now(dt.UTC)})
    store.record_last_seen(
        "hub2", {sha_of("web2"): dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)}
    )
    record_event(client, "freeze", "hub2 frozen for 60s")
    yield standin_set, client
    client.close()


def test_hosts_compliance_and_reports(filled):
    cluster, client = filled
    q = Queries(client, read_preference("secondaryPreferred", 90))
    rows = {r["host"]: r for r in q.hosts()}
    assert set(rows) == {"web1", "web2", "db1"}
    assert rows["web1"]["seen_by"] == ["hub1"] and rows["web1"]["reports"] == 3
    stale = [r["host"] for r in q.hosts(stale_after=3600)]
    assert sorted(stale) == ["db1", "web2"]
    compliance = {r["promise"]: r for r in q.compliance()}
    assert compliance["motd"] == {
        "promise": "motd",
        "hosts": 3,
        "kept": 1,
        "repaired": 2,
        "not_kept": 0,
        "skipped": 0,
    }
    assert compliance["ntp"]["kept"] == 3
    reports = q.reports("web2", kind="compliance", last=1)
    assert [r["seq"] for r in reports] == [3]
    assert [r["seq"] for r in q.reports(sha_of("web2")[:20])] == [1, 2, 3]
    with pytest.raises(QueryError, match="no host 'nosuch'"):
        q.reports("nosuch")


def test_reads_keep_answering_without_a_primary(filled):
    cluster, client = filled
    primary = cluster.primary()
    for host in cluster.hosts:
        if host != primary:
            continue
        cluster.kill(host)
    others = [h for h in cluster.hosts if h != primary]
    cluster.isolate(others[0])  # the last secondary alone cannot elect itself
    wait_until(lambda: cluster.primary() is None, 10, what="no primary")
    fresh = pymongo.MongoClient(
        cluster.uri, serverSelectionTimeoutMS=5000, heartbeatFrequencyMS=500
    )
    q = Queries(fresh, read_preference("secondaryPreferred", 90))
    assert len(q.hosts()) == 3
    assert q.compliance()
    assert [e["kind"] for e in list_events(fresh)][-1] == "freeze"
    result = runner.invoke(app, ["query", "hosts", "--json", "--mongo", cluster.uri])
    assert result.exit_code == 0 and "web1" in result.stdout
    fresh.close()


def test_cli_query_and_history(filled):
    cluster, _ = filled
    result = runner.invoke(app, ["query", "compliance", "--mongo", cluster.uri])
    assert result.exit_code == 0 and "motd" in result.stdout
    result = runner.invoke(app, ["query", "reports", "web1", "--last", "2", "--mongo", cluster.uri])
    assert result.exit_code == 0 and "inventory" in result.stdout
    result = runner.invoke(app, ["query", "reports", "nosuch", "--mongo", cluster.uri])
    assert result.exit_code == 1 and "no host 'nosuch'" in result.stderr
    result = runner.invoke(app, ["query", "hosts", "--max-staleness", "10", "--mongo", cluster.uri])
    assert result.exit_code == 2 and "at least 90 seconds" in result.stderr
    result = runner.invoke(app, ["history", "--since", "1h", "--mongo", cluster.uri])
    assert result.exit_code == 0 and "hub2 frozen for 60s" in result.stdout
    result = runner.invoke(app, ["history", "--since", "soon", "--mongo", cluster.uri])
    assert result.exit_code == 2
