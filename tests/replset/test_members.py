"""`hubctl member add|remove|replace` against a stand-in set with a spare fourth mongod.

No hubd runs here, so no new hub ever reports that it has caught up: these tests check the
plans, the refusals, the reconfigs and that a new member stays unelectable. Promotion with
real hubd processes: tests/hubd/test_member_promotion.py, tests/cluster/test_lab_replace.py.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from hub.member_promotion import PROMOTIONS, Promotions
from hub.mongo import DB_NAME, connect, use_access
from hub.replset import ReplicaSet
from hubctl.app import app
from hubctl.lab.standin import StandinCluster
from tests.conftest import ELECTION_TIMEOUT, as_operator, wait_until

runner = CliRunner()


def hubctl(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def spare(monkeypatch):
    """hub1..hub3 initiated on three members; a fourth mongod running, not in the set."""
    with StandinCluster(4, election_timeout=ELECTION_TIMEOUT) as cluster:
        cluster.initiate(cluster.hosts[:3], election_timeout_ms=int(ELECTION_TIMEOUT * 1000))
        as_operator(cluster, monkeypatch)
        yield cluster
    use_access(None)


def members(uri: str) -> dict[str, dict]:
    doc = json.loads(hubctl("status", "--json", "--mongo", uri).stdout)
    return {m["hub"]: m for m in doc["members"]}


def config_version(cluster: StandinCluster) -> int:
    rs = ReplicaSet(cluster.uri)
    try:
        return rs.member_command(rs.topology().primary, "replSetGetConfig")["config"]["version"]
    finally:
        rs.close()


def promotions(uri: str) -> dict[str, dict]:
    client = connect(uri, timeout=5)
    try:
        return {d["_id"]: d for d in client[DB_NAME][PROMOTIONS].find()}
    finally:
        client.close()


def events(uri: str) -> list[dict]:
    return json.loads(hubctl("history", "--json", "--mongo", uri).stdout)


def kill_secondary(cluster: StandinCluster, skip: tuple[str, ...] = ()) -> str:
    now = members(cluster.uri)
    dead = next(h for h, m in now.items() if m["state"] == "SECONDARY" and h not in skip)
    cluster.kill(now[dead]["name"])
    wait_until(lambda: not members(cluster.uri)[dead]["health"], 15, 0.2, "the member down")
    return dead


def test_add_waits_for_the_master_hub_then_remove(spare):
    new = spare.hosts[3]
    before = config_version(spare)
    result = hubctl("member", "add", f"hub4={new}", "--no-wait", "--mongo", spare.uri)
    assert result.exit_code == 0, result.output
    assert f"1. add hub4 ({new}) with priority 0" in result.stdout
    assert "then hub4's priority is raised to 1 once it has caught up:" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert config_version(spare) == before + 1
    now = members(spare.uri)
    assert now["hub4"]["name"] == new and now["hub4"]["priority"] == 0
    assert promotions(spare.uri)[new]["priority"] == 1
    # No hubd reports here, so the check keeps hub4 unelectable, saying why.
    rs = ReplicaSet(spare.uri)
    try:
        assert Promotions(rs).promote_ready() == []
    finally:
        rs.close()
    assert "has not reported its keys" in promotions(spare.uri)[new]["waiting"]
    again = hubctl("member", "add", f"hub5={spare.hosts[0]}", "--mongo", spare.uri)
    assert again.exit_code == 1 and f"{spare.hosts[0]} is already a member" in again.stderr
    gone = hubctl("member", "remove", "hub4", "--mongo", spare.uri)
    assert gone.exit_code == 0 and f"remove hub4 ({new}): done" in gone.stdout
    assert "hub4" not in members(spare.uri)
    kinds = [e["kind"] for e in events(spare.uri)]
    assert kinds[-2:] == ["member-add", "member-remove"]


def test_wait_names_what_the_new_member_lacks(spare):
    new = spare.hosts[3]
    result = hubctl("member", "add", f"hub4={new}", "--wait", "1s", "--mongo", spare.uri)
    assert result.exit_code == 1
    assert f"hub4 ({new}) has not caught up within 1s (the master hub (on " in result.stderr
    assert "hubctl member promote hub4" in result.stderr
    assert members(spare.uri)["hub4"]["priority"] == 0


def test_removing_the_primary_or_the_majority_is_refused(spare):
    now = members(spare.uri)
    primary = next(hub for hub, m in now.items() if m["state"] == "PRIMARY")
    before = config_version(spare)
    result = hubctl("member", "remove", primary, "--mongo", spare.uri)
    assert result.exit_code == 1
    assert f"refusing to remove {primary} (" in result.stderr
    assert "it is the primary" in result.stderr
    down = kill_secondary(spare)
    keep = next(hub for hub in now if hub not in (primary, down))
    result = hubctl("member", "remove", keep, "--mongo", spare.uri)
    assert result.exit_code == 1
    assert "1 healthy voting member(s) of 2, fewer than the 2 a majority needs" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert set(members(spare.uri)) == {"hub1", "hub2", "hub3"}
    assert config_version(spare) == before


def test_replace_a_dead_member_removes_it_first(spare):
    dead = kill_secondary(spare)
    old = members(spare.uri)[dead]
    new = spare.hosts[3]
    before = config_version(spare)
    result = hubctl("member", "replace", dead, f"hub4={new}", "--no-wait", "--mongo", spare.uri)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines.index(f"remove {dead} ({old['name']}): done") < lines.index(
        f"add hub4 ({new}) with priority 0: done"
    )
    assert config_version(spare) == before + 2
    after = members(spare.uri)
    assert dead not in after and after["hub4"]["name"] == new and after["hub4"]["priority"] == 0
    assert after["hub4"]["state"] == "SECONDARY" and after["hub4"]["health"]
    assert promotions(spare.uri)[new]["priority"] == old["priority"]
    assert [e["kind"] for e in events(spare.uri)][-3:] == [
        "member-remove",
        "member-add",
        "member-replace",
    ]


def test_replace_adds_first_when_removing_first_loses_the_majority(spare):
    dead = kill_secondary(spare)
    live = next(h for h, m in members(spare.uri).items() if m["state"] == "SECONDARY")
    new = spare.hosts[3]
    # Under the name it replaces, no order keeps both a majority and the names apart.
    same = hubctl("member", "replace", live, f"{live}={new}", "--no-wait", "--mongo", spare.uri)
    assert same.exit_code == 1
    assert f"refusing to replace {live} (" in same.stderr and "a majority needs" in same.stderr
    result = hubctl("member", "replace", live, f"hub4={new}", "--no-wait", "--mongo", spare.uri)
    assert result.exit_code == 0, result.output
    assert f"1. add hub4 ({new})" in result.stdout and f"2. remove {live} (" in result.stdout
    assert set(members(spare.uri)) == {"hub1", "hub2", "hub3", "hub4"} - {live}
    assert dead in members(spare.uri)


def test_an_unreachable_new_member_is_refused(spare):
    spare.kill(spare.hosts[3])
    result = hubctl("member", "add", f"hub4={spare.hosts[3]}", "--mongo", spare.uri)
    assert result.exit_code == 1
    assert "refusing to add hub4" in result.stderr and "does not answer" in result.stderr
    assert "hub4" not in members(spare.uri)


def test_a_terminal_is_asked_and_no_cancels(spare):
    """On a terminal the plan is shown and "no" changes nothing; --yes would not ask."""
    primary_side, terminal = pty.openpty()
    command = [sys.executable, "-c", "from hubctl.app import main; main()"]
    proc = subprocess.Popen(
        [*command, "member", "add", f"hub4={spare.hosts[3]}", "--mongo", spare.uri],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env={**os.environ, "COLUMNS": "200"},
    )
    os.close(terminal)
    seen = b""
    try:
        while b"Go ahead?" not in seen:
            chunk = os.read(primary_side, 4096)
            assert chunk, f"hubctl ended without asking: {seen!r}"
            seen += chunk
        os.write(primary_side, b"n\n")
        assert proc.wait(timeout=30) == 1
        while True:
            try:
                chunk = os.read(primary_side, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        proc.kill()
        os.close(primary_side)
    assert b"add hub4" in seen and b"cancelled; nothing was changed" in seen
    assert "hub4" not in members(spare.uri)


@pytest.mark.parametrize("new", ["hub4", "=127.0.0.1:1", "a:1=127.0.0.1:1"])
def test_bad_member_forms_are_one_line(new):
    result = hubctl("member", "add", new, "--mongo", "mongodb://127.0.0.1:1/")
    assert result.exit_code == 2 and "expected HUB=HOST:PORT" in result.stderr
