"""Reporting reads on what real agents reported and the real collector stored.

The data comes from `real_fleet` (tests/readpath/real_fleet.py): hubd processes, client-agent
runs with kept, repaired and not-kept promises, and the master's collector. If the agent,
the collector's checks and these reads ever disagree on a report's shape, the counts here
come out empty or wrong.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from typer.testing import CliRunner

from hub.events import list_events
from hub.mongo import connect
from hub.queries import Queries, QueryError, read_preference
from hubctl.app import app
from tests.conftest import wait_until
from tests.readpath.real_fleet import LONG_PROMISE, NOT_KEPT_ON

runner = CliRunner()
BROKEN = f"broken_on_{NOT_KEPT_ON}"


@pytest.fixture(scope="module")
def q(real_fleet):
    client = connect(real_fleet.uri, timeout=10)
    yield Queries(client, read_preference("secondaryPreferred", 90))
    client.close()


def hubctl(fleet, *args, columns=80):
    return runner.invoke(app, [*args, "--mongo", fleet.uri], env={"COLUMNS": str(columns)})


def test_hosts_as_the_collector_and_hubs_recorded_them(real_fleet, q):
    rows = {r["host"]: r for r in q.hosts()}
    assert sorted(rows) == real_fleet.clients
    master = real_fleet.master().name
    for row in rows.values():
        assert master in row["seen_by"] and not row["revoked"] and not row["stale"]
        assert row["reports"] == 4  # two runs of outcome + inventory, all pulled
        assert row["last_error"] is None  # pulls failed before `serve` started, none since
    assert q.hosts(stale_after=3600) == []


def test_reports_are_what_the_agent_ran(real_fleet, q):
    outcome = q.reports(NOT_KEPT_ON, kind="outcome", last=1)
    assert [r["seq"] for r in outcome] == [3]
    payload = outcome[0]["payload"]
    assert payload["release"] == real_fleet.release and payload["exit_code"] == 1
    statuses = {p["name"]: p["status"] for p in payload["promises"]}
    assert statuses == {
        "always_true": "kept",
        "flag_consumed": "repaired",
        BROKEN: "not_kept",
        LONG_PROMISE: "kept",
    }
    key = next(r["key"] for r in q.hosts() if r["host"] == "client002")
    assert [r["kind"] for r in q.reports(key[:20])] == ["outcome", "inventory"] * 2
    with pytest.raises(QueryError, match="no host 'nosuch'"):
        q.reports("nosuch")
    with pytest.raises(QueryError, match="no report kind 'compliance'"):
        q.reports(NOT_KEPT_ON, kind="compliance")


def test_compliance_per_promise_per_host_and_fleet(real_fleet, q):
    view = q.compliance()
    promises = {r["promise"]: r for r in view["promises"]}
    assert promises["always_true"] | {"share": 1.0} == {
        "promise": "always_true",
        "hosts": 4,
        "kept": 4,
        "repaired": 0,
        "not_kept": 0,
        "skipped": 0,
        "share": 1.0,
    }
    assert promises["flag_consumed"]["repaired"] == 4
    assert (promises[BROKEN]["not_kept"], promises[BROKEN]["skipped"]) == (1, 3)
    assert promises[BROKEN]["share"] == 0.0
    hosts = {r["host"]: r for r in view["hosts"]}
    assert sorted(hosts) == real_fleet.clients
    bad = hosts[NOT_KEPT_ON]
    assert not bad["compliant"] and bad["not_kept_promises"] == [BROKEN]
    assert (bad["kept"], bad["repaired"], bad["not_kept"], bad["skipped"]) == (2, 1, 1, 0)
    good = hosts["client002"]
    assert good["compliant"] and (good["not_kept"], good["skipped"]) == (0, 1)
    now = dt.datetime.now(dt.UTC)
    for row in view["hosts"]:
        assert row["release"] == real_fleet.release and row["error"] is None
        assert dt.timedelta(0) <= now - row["ran"] < dt.timedelta(minutes=5)
    fleet = view["fleet"]
    assert (fleet["hosts"], fleet["reporting"], fleet["compliant"]) == (4, 4, 3)
    assert fleet["share"] == 0.75 and fleet["no_outcome"] == []
    assert fleet["oldest"] <= fleet["newest"] <= now


def test_cli_compliance_views_fit_80_columns(real_fleet):
    result = hubctl(real_fleet, "query", "compliance")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("fleet: 3/4 hosts compliant (75%); latest runs from ")
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.stdout  # long names wrap, they are not cut
    first_column = "".join(line.split("│")[1].strip() for line in lines if line.startswith("│"))
    assert LONG_PROMISE in first_column
    row = next(line for line in lines if "always_true" in line)
    assert [cell.strip() for cell in row.split("│")[2:8]] == ["4", "4", "0", "0", "0", "100%"]

    result = hubctl(real_fleet, "query", "compliance", "--by", "host")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    row = next(line for line in lines if NOT_KEPT_ON in line)
    assert BROKEN[:10] in row and " ago " in row

    result = hubctl(real_fleet, "query", "compliance", "--by", "hosts")
    assert result.exit_code == 2 and "--by must be promise or host" in result.stderr


def test_cli_compliance_json(real_fleet):
    result = hubctl(real_fleet, "query", "compliance", "--json")
    doc = json.loads(result.stdout)
    assert set(doc) == {"fleet", "promises"}
    assert doc["fleet"]["share"] == 0.75 and doc["fleet"]["reporting"] == 4
    assert {r["promise"] for r in doc["promises"]} == {
        "always_true",
        "flag_consumed",
        BROKEN,
        LONG_PROMISE,
    }
    doc = json.loads(hubctl(real_fleet, "query", "compliance", "--by", "host", "--json").stdout)
    assert set(doc) == {"fleet", "hosts"} and len(doc["hosts"]) == 4
    assert [h["host"] for h in doc["hosts"] if not h["compliant"]] == [NOT_KEPT_ON]


def test_compliance_before_any_host_reported(standin_set):
    result = runner.invoke(app, ["query", "compliance", "--mongo", standin_set.uri])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("fleet: none of 0 hosts has reported an outcome yet")
    result = runner.invoke(app, ["query", "compliance", "--json", "--mongo", standin_set.uri])
    doc = json.loads(result.stdout)
    assert doc["promises"] == [] and doc["fleet"]["reporting"] == 0
    assert doc["fleet"]["share"] is None


def test_cli_hosts_reports_and_history(real_fleet):
    result = hubctl(real_fleet, "query", "hosts")
    assert result.exit_code == 0 and "4 hosts" in result.stdout
    assert all(name in result.stdout for name in real_fleet.clients)
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert "…" not in result.stdout
    result = hubctl(real_fleet, "query", "reports", "client002", "--last", "2")
    assert result.exit_code == 0 and "inventory" in result.stdout and "outcome" in result.stdout
    result = hubctl(real_fleet, "query", "reports", "nosuch")
    assert result.exit_code == 1 and "no host 'nosuch'" in result.stderr
    result = hubctl(real_fleet, "query", "reports", "client002", "--kind", "compliance")
    assert result.exit_code == 2 and "--kind: no report kind 'compliance'" in result.stderr
    result = hubctl(real_fleet, "query", "hosts", "--max-staleness", "10")
    assert result.exit_code == 2 and "at least 90 seconds" in result.stderr
    result = hubctl(real_fleet, "history", "--since", "1h", "--json")
    assert result.exit_code == 0
    messages = [e["message"] for e in json.loads(result.stdout)]
    master = real_fleet.master().name
    assert any(m.startswith(f"{master} became master") for m in messages)
    assert any(f"published masterfiles release {real_fleet.release}" in m for m in messages)
    result = hubctl(real_fleet, "history", "--since", "soon")
    assert result.exit_code == 2


def test_status_hub_side_and_masterfiles_verify(real_fleet):
    result = hubctl(real_fleet, "status", "--json")
    doc = json.loads(result.stdout)
    master = real_fleet.master().name
    roles = {h["name"]: h["role"] for h in doc["hubs"]}
    assert roles == {
        h.name: "master" if h.name == master else "standby" for h in real_fleet.lab.hubs
    }
    assert {h["release"] for h in doc["hubs"]} == {real_fleet.release}
    assert doc["clients"] == {"fresh": 4, "stale": 0}
    result = hubctl(real_fleet, "masterfiles", "verify")
    assert result.exit_code == 0, result.output
    assert f"all 3 hubs serve release {real_fleet.release}" in result.stdout


def test_reads_keep_answering_without_a_primary(breakable_fleet):
    fleet = breakable_fleet
    standin = fleet.lab.standin
    primary = standin.primary()
    other = next(h for h in standin.hosts if h != primary)
    standin.kill(primary)
    standin.isolate(other)  # the last secondary alone cannot elect itself
    try:
        wait_until(lambda: standin.primary() is None, 10, what="no primary")
        client = fleet.lab.client("reader", serverSelectionTimeoutMS=5000, heartbeatFrequencyMS=500)
        try:
            q = Queries(client, read_preference("secondaryPreferred", 90))
            assert len(q.hosts()) == 3
            assert q.compliance()["fleet"]["reporting"] == 3
            assert any("became master" in e["message"] for e in list_events(client))
        finally:
            client.close()
        result = hubctl(fleet, "query", "compliance", "--json")
        assert result.exit_code == 0 and json.loads(result.stdout)["fleet"]["reporting"] == 3
    finally:
        standin.heal(other)
        standin.revive(primary)
        wait_until(standin.primary, 30, what="a primary again")
