"""Status tells the truth after a failover: real hubd processes, a killed master.

The dead hub's last state document still says "master"; status, masterfiles verify, check
and the lab dashboard must show it unreachable and name the hub on the new primary.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import time

from rich.console import Console

from hubctl.lab.child_commands import HUBCTL
from hubctl.lab.dashboard import Timeline, render, snapshot
from tests.conftest import wait_until


def hubctl(*args: str, columns: int = 80) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run(HUBCTL + list(args), capture_output=True, text=True, timeout=60, env=env)


def hub_roles(lab) -> dict[str, str]:
    doc = json.loads(hubctl("status", "--json", "--mongo", lab.uri).stdout)
    return {h["name"]: h["role"] for h in doc.get("hubs", [])}


def test_killed_master_is_unreachable_and_the_primarys_hub_is_master(lab):
    first = lab.master()
    wait_until(lambda: hub_roles(lab).get(first.name) == "master", 20, 0.3, "first master")
    doc = json.loads(hubctl("status", "--json", "--mongo", lab.uri).stdout)
    assert {m["name"]: m["hub"] for m in doc["members"]} == {h.member: h.name for h in lab.hubs}

    lab.kill(first.name)
    wait_until(lambda: lab.master() not in (None, first), 30, 0.1, "a new primary")
    second = lab.master()
    shown: list[dict[str, str]] = []

    def settled() -> bool:
        roles = hub_roles(lab)
        shown.append(roles)
        return roles.get(first.name) == "unreachable" and roles.get(second.name) == "master"

    wait_until(settled, 30, 0.3, "the dead hub shown unreachable, the new one master")
    # From the new primary on, the dead hub is never shown as master, nor are two masters.
    assert all(roles.get(first.name) != "master" for roles in shown)
    assert all(list(roles.values()).count("master") <= 1 for roles in shown)

    table = hubctl("status", "--mongo", lab.uri, columns=200).stdout
    hubs_row = f"{first.name} ({first.member})"  # the hubs table names hub and member together
    row = next(line for line in table.splitlines() if hubs_row in line)
    assert "unreachable (no word for" in row and "master" not in row
    verify = json.loads(hubctl("masterfiles", "verify", "--json", "--mongo", lab.uri).stdout)
    roles = {h["hub"]: h["role"] for h in verify["hubs"]}
    assert roles[first.name] == "unreachable" and roles[second.name] == "master"
    check = hubctl("check", "--mongo", lab.uri, "--collect-interval", "1m").stdout
    assert f"hub unreachable: {first.name} (no word for" in check


def test_each_failover_is_timed_from_its_own_cause(lab):
    timeline = Timeline()
    snapshot(lab, timeline)
    first = lab.master()
    assert timeline.master == first.name
    lab.kill(first.member)  # a member address names a hub as well as its name does
    wait_until(
        lambda: snapshot(lab, timeline) and timeline.failovers, 30, 0.2, "the first failover"
    )
    assert (timeline.failovers[0].old, timeline.failovers[0].cause) == (first.name, "kill")
    second = lab.master()
    lab.revive(first.name)
    time.sleep(1.0)  # an isolate timed from the kill would then show at least this much more
    isolated_at = time.time()
    lab.isolate(second.name)
    wait_until(
        lambda: snapshot(lab, timeline) and len(timeline.failovers) == 2,
        30,
        0.2,
        "the failover after the isolate",
    )
    failover = timeline.failovers[1]
    assert (failover.old, failover.cause) == (second.name, "isolate")
    assert failover.took <= time.time() - isolated_at
    assert "after the isolate" in failover.describe()
    lab.heal(second.name)
    screen = Console(width=80, file=io.StringIO(), record=True)
    screen.print(render(snapshot(lab, timeline)))
    shown = screen.export_text()
    assert re.search(rf"last failover +{second.name} -> \w+ \(\d+\.\ds after the isolate\)", shown)
