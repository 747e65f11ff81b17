"""`hubctl check` in every Nagios state, on what real hubd, agents and collector wrote.

`real_fleet` is only read; the tests that stop hubs or members use `breakable_fleet` and
put it back as they found it.
"""

from __future__ import annotations

import re
import time

from typer.testing import CliRunner

from hubctl.app import app
from tests.conftest import wait_until

runner = CliRunner()


def check(uri, *extra):
    result = runner.invoke(app, ["check", "--mongo", uri, *extra])
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    return result.exit_code, lines[0]


def healthy(fleet):
    # the lab collects every second, so three missed intervals are 3 s
    return check(fleet.uri, "--collect-interval", "1s")[0] == 0


def test_ok_with_perfdata(real_fleet):
    code, line = check(real_fleet.uri, "--collect-interval", "1s")
    assert code == 0, line
    assert line.startswith("HUBCLUSTER OK - primary 127.0.0.1:")
    perf = dict(re.findall(r"(\w+)=([^ ]+)", line.split("|", 1)[1]))
    assert perf["members_up"] == "3;;;0;3"
    assert perf["clients_fresh"] == "4" and perf["clients_stale"] == "0"
    assert re.fullmatch(r"\d+\.\d\ds", perf["last_round_duration"])
    assert re.fullmatch(r"[0-2]s;;3", perf["last_round_age"])
    assert perf["replication_lag"].startswith("0.0s")


def test_warning_stale_clients(real_fleet):
    time.sleep(1.1)  # every client was last seen at its last agent run, over a second ago
    code, line = check(real_fleet.uri, "--stale-after", "1s")
    assert code == 1 and "4/4 clients stale" in line
    assert check(real_fleet.uri, "--stale-after", "1h")[0] == 0


def test_warning_member_down(breakable_fleet):
    standin = breakable_fleet.lab.standin
    secondary = next(h for h in standin.hosts if h != standin.primary())
    standin.kill(secondary)
    try:
        wait_until(lambda: check(breakable_fleet.uri)[0] == 1, 10, what="warning")
        assert f"member down: {secondary}" in check(breakable_fleet.uri)[1]
    finally:
        standin.revive(secondary)
    wait_until(lambda: healthy(breakable_fleet), 30, 0.2, "OK again")


def test_warning_maintenance(breakable_fleet):
    uri = breakable_fleet.uri
    primary = breakable_fleet.lab.standin.primary()
    result = runner.invoke(app, ["maintenance", "start", primary, "--for", "10m", "--mongo", uri])
    assert result.exit_code == 0, result.output
    try:
        code, line = check(uri)
        assert code == 1 and f"maintenance window open for {primary}" in line
    finally:
        result = runner.invoke(app, ["maintenance", "end", "--mongo", uri])
    assert result.exit_code == 0, result.output
    assert healthy(breakable_fleet)


def test_critical_before_any_round(standin_set):
    # a set no hubd has run on: nothing was ever collected
    code, line = check(standin_set.uri)
    assert code == 2 and "no collection round has finished yet" in line


def test_critical_when_no_round_within_three_intervals(breakable_fleet):
    fleet = breakable_fleet
    assert healthy(fleet)
    for hub in fleet.lab.hubs:
        fleet.lab.stop_hub(hub, kill=True)  # nobody collects
    try:
        wait_until(lambda: check(fleet.uri, "--collect-interval", "1s")[0] == 2, 15, 0.2)
        code, line = check(fleet.uri, "--collect-interval", "1s")
        age = re.search(r"last collection round finished (\d+)s ago", line)
        assert age and int(age[1]) >= 3, line  # not before three intervals passed
        assert check(fleet.uri, "--collect-interval", "10m")[0] == 0
    finally:
        fleet.restart_hubs()
    wait_until(lambda: healthy(fleet), 30, 0.2, "collection again")


def test_critical_masterfiles_diverged_longer_than_sync_interval(breakable_fleet):
    fleet = breakable_fleet
    master = fleet.master()
    others = [h for h in fleet.lab.hubs if h is not master]
    for hub in others:
        fleet.lab.stop_hub(hub, kill=True)  # they cannot mirror the new release
    try:
        release = fleet.publish(
            '[[promise]]\nname = "newer"\ncheck = "true"\n', f"newer-{time.time_ns()}", alone=True
        )
        time.sleep(1.1)
        assert check(fleet.uri, "--sync-interval", "1h")[0] == 0
        code, line = check(fleet.uri, "--sync-interval", "1s")
        behind = ", ".join(h.name for h in others)
        assert code == 2 and "masterfiles diverged" in line and f"{behind} not on {release}" in line
        result = runner.invoke(app, ["masterfiles", "verify", "--mongo", fleet.uri])
        assert result.exit_code == 1 and "hubs differ" in result.stderr
    finally:
        fleet.restart_hubs()
    fleet.wait_in_sync(release)
    assert check(fleet.uri, "--sync-interval", "1s")[0] == 0


def test_critical_no_primary(breakable_fleet):
    standin = breakable_fleet.lab.standin
    primary = standin.primary()
    other = next(h for h in standin.hosts if h != primary)
    standin.kill(primary)
    standin.isolate(other)
    try:
        wait_until(lambda: check(breakable_fleet.uri)[0] == 2, 15, what="critical")
        assert "no primary" in check(breakable_fleet.uri)[1]
    finally:
        standin.heal(other)
        standin.revive(primary)
    wait_until(lambda: healthy(breakable_fleet), 30, 0.2, "a primary and collection again")


def test_unknown_when_unreachable_or_misused():
    code, line = check("mongodb://127.0.0.1:9/?replicaSet=x", "--timeout", "1")
    assert code == 3 and line.startswith("HUBCLUSTER UNKNOWN - cannot reach any member")
    code, line = check("mongodb://127.0.0.1:9/?replicaSet=x", "--max-lag", "soon")
    assert code == 3 and "--max-lag" in line
