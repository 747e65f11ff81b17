"""`hubctl member add|remove|replace` against a stand-in set with a spare fourth mongod."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from hub.replset import ReplicaSet
from hubctl.app import app
from hubctl.lab.standin import StandinCluster
from tests.conftest import ELECTION_TIMEOUT, wait_until

runner = CliRunner()


def hubctl(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def spare():
    """hub1..hub3 initiated on three members; a fourth mongod running, not in the set."""
    with StandinCluster(4, election_timeout=ELECTION_TIMEOUT) as cluster:
        rs = ReplicaSet(cluster.uri)
        try:
            rs.initiate(
                cluster.hosts[:3],
                cluster.set_name,
                election_timeout_ms=int(ELECTION_TIMEOUT * 1000),
                hub_names={h: f"hub{i}" for i, h in enumerate(cluster.hosts[:3], 1)},
            )
        finally:
            rs.close()
        yield cluster


def members(uri: str) -> dict[str, dict]:
    doc = json.loads(hubctl("status", "--json", "--mongo", uri).stdout)
    return {m["hub"]: m for m in doc["members"]}


def test_add_then_remove_a_member(spare):
    new = spare.hosts[3]
    result = hubctl("member", "add", f"hub4={new}", "--wait", "30", "--mongo", spare.uri)
    assert result.exit_code == 0, result.output
    assert f"added hub4 ({new}) with priority 0 until it has caught up" in result.stdout
    assert f"hub4 ({new}) may now be elected (priority 1)" in result.stdout
    now = members(spare.uri)
    assert now["hub4"]["name"] == new and now["hub4"]["priority"] == 1
    again = hubctl("member", "add", f"hub5={new}", "--mongo", spare.uri)
    assert again.exit_code == 1 and f"{new} is already a member" in again.stderr
    gone = hubctl("member", "remove", "hub4", "--mongo", spare.uri)
    assert gone.exit_code == 0 and f"removed hub4 ({new})" in gone.stdout
    assert "hub4" not in members(spare.uri)


def test_removing_the_primary_or_the_majority_is_refused(spare):
    now = members(spare.uri)
    primary = next(hub for hub, m in now.items() if m["state"] == "PRIMARY")
    result = hubctl("member", "remove", primary, "--mongo", spare.uri)
    assert result.exit_code == 1
    assert (
        f"refusing to remove {primary} (" in result.stderr and "it is the primary" in result.stderr
    )
    down, keep = [hub for hub in now if hub != primary]
    spare.kill(now[down]["name"])
    wait_until(lambda: not members(spare.uri)[down]["health"], 15, 0.2, "the member down")
    result = hubctl("member", "remove", keep, "--mongo", spare.uri)
    assert result.exit_code == 1
    assert "1 healthy voting member(s) of 2, fewer than the 2 a majority needs" in result.stderr
    assert set(members(spare.uri)) == {"hub1", "hub2", "hub3"}


def test_replace_a_dead_member(spare):
    now = members(spare.uri)
    dead = next(hub for hub, m in now.items() if m["state"] == "SECONDARY")
    spare.kill(now[dead]["name"])
    wait_until(lambda: not members(spare.uri)[dead]["health"], 15, 0.2, "the member down")
    new = spare.hosts[3]
    result = hubctl("member", "replace", dead, f"hub4={new}", "--wait", "30", "--mongo", spare.uri)
    assert result.exit_code == 0, result.output
    after = members(spare.uri)
    assert dead not in after and after["hub4"]["name"] == new
    assert after["hub4"]["priority"] == now[dead]["priority"]
    assert after["hub4"]["state"] == "SECONDARY" and after["hub4"]["health"]


@pytest.mark.parametrize("new", ["hub4", "=127.0.0.1:1", "a:1=127.0.0.1:1"])
def test_bad_member_forms_are_one_line(new):
    result = hubctl("member", "add", new, "--mongo", "mongodb://127.0.0.1:1/")
    assert result.exit_code == 2 and "expected HUB=HOST:PORT" in result.stderr
