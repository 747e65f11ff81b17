"""hubctl's replica-set commands end to end: output, JSON shape, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from hubctl.app import app
from tests.conftest import wait_until

runner = CliRunner()


def hubctl(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


def status_json(uri: str) -> tuple[int, dict]:
    result = hubctl("status", "--json", "--mongo", uri)
    return result.exit_code, json.loads(result.stdout)


def test_init_replset_then_status_json(standin):
    named = [f"hub{i}={h}" for i, h in enumerate(standin.hosts, 1)]
    members = [arg for m in named for arg in ("--member", m)]
    direct = f"mongodb://{standin.hosts[0]}/?directConnection=true"
    users = ("--create-users", str(standin.passwords_dir))
    result = hubctl(
        "init-replset", *members, "--election-timeout", "500ms", "--mongo", direct, *users
    )
    assert result.exit_code == 0, result.output
    assert "CFEngineNova: initiated" in result.stdout
    again = hubctl("init-replset", *members)
    assert again.exit_code == 0 and "already initiated" in again.stdout
    other = hubctl("init-replset", *members[:4])
    assert other.exit_code == 1
    assert f"it also has {standin.hosts[2]}" in other.stderr
    renamed = hubctl("init-replset", "--member", f"hub9={standin.hosts[0]}", *members[2:])
    assert renamed.exit_code == 1
    assert f"{standin.hosts[0]} is hub1, not hub9" in renamed.stderr
    code, doc = status_json(standin.uri)
    assert code == 0
    assert doc["set"] == "CFEngineNova" and doc["primary"] in standin.hosts
    assert [set(m) for m in doc["members"]] == [
        {"name", "hub", "hidden", "state", "health", "priority", "lag_seconds", "frozen_until"}
    ] * 3
    assert {m["name"]: m["hub"] for m in doc["members"]} == {
        h: f"hub{i}" for i, h in enumerate(standin.hosts, 1)
    }


def test_status_exit_codes_follow_health(replset):
    assert status_json(replset.uri)[0] == 0
    code, doc = status_json(replset.uri)
    assert doc["health"] == "healthy"
    secondary = next(m["name"] for m in doc["members"] if m["state"] == "SECONDARY")
    replset.kill(secondary)
    wait_until(lambda: status_json(replset.uri)[0] == 1, 20, what="degraded status")
    table = hubctl("status", "--mongo", replset.uri)
    assert "DOWN" in table.stdout and secondary in table.stdout
    assert "health: degraded" in table.stdout
    assert status_json(replset.uri)[1]["health"] == "degraded"
    replset.kill(doc["primary"])

    # No primary is 1 too (2 is a usage error in every command); the JSON says which.
    def no_primary() -> bool:
        code, now = status_json(replset.uri)
        return code == 1 and now["health"] == "no primary"

    wait_until(no_primary, 20, what="no-primary status")
    table = hubctl("status", "--mongo", replset.uri)
    assert table.exit_code == 1 and "health: no primary" in table.stdout


def test_env_var_gives_the_cluster(replset):
    result = hubctl("status", env={"HUBCTL_MONGO_URI": replset.uri})
    assert result.exit_code == 0 and "PRIMARY" in result.stdout


def test_config_file_gives_the_cluster(replset, tmp_path):
    cfg = tmp_path / "hub.toml"
    cfg.write_text(
        f'[hub]\nname = "hub1"\n[replset]\nuri = "{replset.uri}"\n'
        f'[[hubs]]\nname = "hub1"\nmongo = "{replset.hosts[0]}"\nservice = "127.0.0.1:5308"\n'
    )
    result = hubctl("status", "--config", str(cfg))
    assert result.exit_code == 0, result.output
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[hub]\nname = "hub1"\n[replset]\nuri = "http://x"\n[[hubs]]\nname="hub1"\nmongo="a:1"\nservice="a:2"\n'
    )
    result = hubctl("status", "--config", str(bad))
    assert result.exit_code == 2 and "replset.uri: must start with mongodb://" in result.stderr


def test_stepdown_to_and_freeze_unfreeze(replset):
    """Members are named by hub name or by address, and shown with both."""
    code, doc = status_json(replset.uri)
    target = next(m for m in doc["members"] if m["state"] == "SECONDARY")
    label = f"{target['hub']} ({target['name']})"
    result = hubctl("stepdown", "--to", target["hub"], "--seconds", "30", "--mongo", replset.uri)
    assert result.exit_code == 0, result.output
    assert f"{label} is primary" in result.stdout
    assert status_json(replset.uri)[1]["primary"] == target["name"]
    other = next(
        m for m in doc["members"] if m["name"] != target["name"] and m["state"] == "SECONDARY"
    )
    frozen = hubctl("freeze", other["hub"], "5m", "--mongo", replset.uri)
    assert frozen.exit_code == 0 and f"{other['hub']} ({other['name']}) frozen" in frozen.stdout
    frozen = {m["name"]: m["frozen_until"] for m in status_json(replset.uri)[1]["members"]}
    assert frozen[other["name"]] is not None
    assert hubctl("unfreeze", other["name"], "--mongo", replset.uri).exit_code == 0
    assert all(m["frozen_until"] is None for m in status_json(replset.uri)[1]["members"])
    plain = hubctl("stepdown", "--seconds", "30", "--mongo", replset.uri)
    assert plain.exit_code == 0 and f"{label} stepped down" in plain.stdout


def test_status_table_shows_hub_name_and_address_together(replset):
    table = hubctl("status", "--mongo", replset.uri).stdout
    for i, host in enumerate(replset.hosts, 1):
        row = next(line for line in table.splitlines() if host in line)
        assert f"hub{i}" in row
    assert "primary: hub" in table


def test_maintenance_window_shows_in_status(replset):
    doc = status_json(replset.uri)[1]
    primary = doc["primary"]
    hub = next(m["hub"] for m in doc["members"] if m["name"] == primary)
    result = hubctl("maintenance", "start", hub, "--for", "4h", "--mongo", replset.uri)
    assert result.exit_code == 0, result.output
    code, doc = status_json(replset.uri)
    assert doc["maintenance"]["member"] == primary
    assert "maintenance window open for" in hubctl("status", "--mongo", replset.uri).stdout
    assert hubctl("maintenance", "end", "--mongo", replset.uri).exit_code == 0
    assert "maintenance" not in status_json(replset.uri)[1]


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["freeze", "{primary}", "60"], 1, "cannot freeze node when primary"),
        (["freeze", "127.0.0.1:1", "60"], 1, "127.0.0.1:1 is not a member of the set"),
        (["freeze", "{primary}", "soon"], 2, "not a duration: 'soon'"),
        (["freeze", "nohost", "60"], 1, "nohost is not a member of the set (members: hub1 ("),
        (["freeze", "no host", "60"], 2, "expected a hub name (hub1) or HOST:PORT"),
        (["freeze", "nohost:", "60"], 2, "member"),
        (["maintenance", "start", "{primary}", "--for", "0"], 2, "'--for': '0' is out of range"),
        (["stepdown", "--seconds", "5", "--catch-up", "10"], 2, "--catch-up must be shorter"),
    ],
)
def test_failures_are_one_clear_line(replset, args, code, message):
    primary = status_json(replset.uri)[1]["primary"]
    args = [a.format(primary=primary) for a in args]
    result = hubctl(*args, "--mongo", replset.uri)
    assert result.exit_code == code
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_stepdown_with_everyone_frozen_fails_clearly(replset):
    doc = status_json(replset.uri)[1]
    for m in doc["members"]:
        if m["state"] == "SECONDARY":
            assert hubctl("freeze", m["name"], "60", "--mongo", replset.uri).exit_code == 0
    result = hubctl("stepdown", "--seconds", "10", "--catch-up", "1", "--mongo", replset.uri)
    assert result.exit_code == 1
    assert "No electable secondaries caught up" in result.stderr


def test_unreachable_cluster_and_bad_uri_from_a_real_shell():
    env = dict(os.environ)
    env.pop("HUBCTL_MONGO_URI", None)
    cmd = [sys.executable, "-c", "from hubctl.app import main; main()"]
    bad = subprocess.run(
        cmd + ["status", "--mongo", "mongodb://x:1,,/"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 2 and "bad MongoDB URI" in bad.stderr and "Traceback" not in bad.stderr
    down = subprocess.run(
        cmd + ["status", "--mongo", "mongodb://127.0.0.1:9/?replicaSet=x", "--timeout", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert down.returncode == 3 and "cannot reach any member" in down.stderr
    assert "Traceback" not in down.stderr
    nothing = subprocess.run(cmd + ["status"], capture_output=True, text=True, env=env, timeout=60)
    assert nothing.returncode == 2 and "no cluster given" in nothing.stderr


def test_wrong_set_name_is_one_line_exit_3_within_the_timeout(standin_set):
    """A URI naming another set fails at once, naming both sets, instead of showing the
    members under the real name and exiting 0."""
    hosts = ",".join(standin_set.hosts)
    cmd = [sys.executable, "-c", "from hubctl.app import main; main()"]
    started = time.monotonic()
    result = subprocess.run(
        cmd + ["status", "--mongo", f"mongodb://{hosts}/?replicaSet=Wrong", "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "replicaSet=Wrong" in lines[0] and "set CFEngineNova" in lines[0]
    # Bounded, not a speed claim: the whole run must stay within the selection timeout.
    assert took < 5.0
    check = subprocess.run(
        cmd + ["check", "--mongo", f"mongodb://{hosts}/?replicaSet=Wrong", "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 3 and "HUBCLUSTER UNKNOWN - wrong replica-set name" in check.stdout
