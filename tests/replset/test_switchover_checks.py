"""`hubctl stepdown --to X` checks X before the primary steps down, shows the plan, and asks
a person at a terminal to confirm."""

from __future__ import annotations

import dataclasses
import json
import os
import pty
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from hub.events import list_events
from hub.mongo import access_as, connect, connect_member
from hub.replset import ReplicaSet
from hub.switchover import switchover_plan
from hub.topology import ReplsetError
from hubctl.app import app
from tests.conftest import wait_until

runner = CliRunner()
HUBCTL = [sys.executable, "-c", "from hubctl.app import main; main()"]


def hubctl(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def status(uri: str) -> dict:
    return json.loads(hubctl("status", "--json", "--mongo", uri).stdout)


def secondaries(doc: dict) -> list[dict]:
    return [m for m in doc["members"] if m["state"] == "SECONDARY"]


def stepdowns(uri: str) -> list[dict]:
    client = connect(uri, timeout=10)
    try:
        return [e for e in list_events(client) if e["kind"] in ("stepdown", "switchover")]
    finally:
        client.close()


def assert_refused(uri: str, target: str, reason: str, primary: str) -> None:
    result = hubctl("stepdown", "--to", target, "--seconds", "30", "--mongo", uri)
    assert result.exit_code == 1, result.output
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert f"refusing to switch over to {target} (" in line and reason in line, line
    assert "nothing was changed" in line
    assert status(uri)["primary"] == primary
    assert stepdowns(uri) == []


def test_frozen_target_is_refused_before_the_primary_steps_down(replset):
    doc = status(replset.uri)
    target = secondaries(doc)[0]
    assert hubctl("freeze", target["hub"], "5m", "--mongo", replset.uri).exit_code == 0
    assert_refused(replset.uri, target["hub"], "it is frozen until", doc["primary"])
    result = hubctl("stepdown", "--to", target["hub"], "--mongo", replset.uri)
    assert f"(hubctl unfreeze {target['hub']} first)" in result.stderr


def test_down_target_is_refused(standin_set):
    doc = status(standin_set.uri)
    target = secondaries(doc)[0]
    standin_set.kill(target["name"])
    wait_until(
        lambda: (
            not next(m for m in status(standin_set.uri)["members"] if m["hub"] == target["hub"])[
                "health"
            ]
        ),
        15,
        0.2,
        "the member seen down",
    )
    assert_refused(standin_set.uri, target["hub"], "it is down", doc["primary"])


def test_priority_0_and_hidden_targets_are_refused(standin):
    hosts = standin.hosts
    config = {
        "_id": standin.set_name,
        "members": [
            {"_id": 0, "host": hosts[0], "priority": 1, "tags": {"hub": "hub1"}},
            {"_id": 1, "host": hosts[1], "priority": 0, "tags": {"hub": "hub2"}},
            {"_id": 2, "host": hosts[2], "priority": 0, "hidden": True, "tags": {"hub": "hub3"}},
        ],
        "settings": {"electionTimeoutMillis": 500},
    }
    # by hand, through the localhost exception; then the users as init-replset makes them
    with access_as(standin.access(None)), connect_member(standin.uri, hosts[0]) as client:
        client.admin.command("replSetInitiate", config)
    standin.credentials.create_users(standin.uri)
    rs = ReplicaSet(standin.uri)
    try:
        assert rs.wait_for_primary(20) == hosts[0]
    finally:
        rs.close()
    assert_refused(standin.uri, "hub2", "it has priority 0", hosts[0])
    assert_refused(standin.uri, "hub3", "it is hidden", hosts[0])
    assert "(hidden)" in hubctl("status", "--mongo", standin.uri).stdout


def test_lagging_target_is_refused_past_catch_up(replset):
    """The stand-in replicates at once, so the set's real view is given one lagging member."""
    rs = ReplicaSet(replset.uri)
    try:
        topo = rs.topology()
    finally:
        rs.close()
    target = next(m for m in topo.members if m.state == "SECONDARY")
    topo.members = [
        dataclasses.replace(m, lag_seconds=25.0) if m is target else m for m in topo.members
    ]
    with pytest.raises(
        ReplsetError, match=r"it lags 25.0s behind the primary, more than --catch-up 10s"
    ):
        switchover_plan(topo, target.hub, 10)
    plan = switchover_plan(topo, target.hub, 30)
    assert plan.new is not target and plan.new.name == target.name
    assert plan.describe()[:2] == [
        f"switchover from {topo.primary_view().label} to {target.label}",
        f"{target.label} lags 25.0s behind the primary",
    ]


def _run_at_a_terminal(args: list[str], answer: bytes) -> subprocess.CompletedProcess:
    """hubctl with its stdin on a pseudo-terminal, answering `answer` to any question."""
    leader, follower = pty.openpty()
    try:
        os.write(leader, answer)
        proc = subprocess.run(
            HUBCTL + args,
            stdin=follower,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "80"},
        )
    finally:
        os.close(follower)
        os.close(leader)
    return proc


def test_terminal_is_asked_to_confirm_and_no_keeps_the_primary(standin_set):
    doc = status(standin_set.uri)
    target = secondaries(doc)[0]
    args = ["stepdown", "--to", target["hub"], "--seconds", "30", "--mongo", standin_set.uri]
    no = _run_at_a_terminal(args, b"n\n")
    assert no.returncode == 1, no.stdout + no.stderr
    assert "Go ahead?" in no.stdout
    assert (
        f"switchover from {next(m['hub'] for m in doc['members'] if m['name'] == doc['primary'])}"
        in no.stdout
    )
    assert "switchover cancelled; nothing was changed" in no.stderr
    assert status(standin_set.uri)["primary"] == doc["primary"]
    yes = _run_at_a_terminal(args, b"y\n")
    assert yes.returncode == 0, yes.stdout + yes.stderr
    assert status(standin_set.uri)["primary"] == target["name"]


def test_yes_and_a_non_terminal_are_not_asked(standin_set):
    doc = status(standin_set.uri)
    first, second = secondaries(doc)[:2]
    flagged = _run_at_a_terminal(
        ["stepdown", "--to", first["hub"], "--seconds", "30", "--yes", "--mongo", standin_set.uri],
        b"",
    )
    assert flagged.returncode == 0, flagged.stdout + flagged.stderr
    assert "Go ahead?" not in flagged.stdout
    assert status(standin_set.uri)["primary"] == first["name"]
    piped = subprocess.run(
        HUBCTL
        + ["stepdown", "--to", second["name"], "--seconds", "30", "--mongo", standin_set.uri],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert piped.returncode == 0, piped.stdout + piped.stderr
    assert "Go ahead?" not in piped.stdout
    assert f"{second['hub']} ({second['name']}) is primary" in piped.stdout
