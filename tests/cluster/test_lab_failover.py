"""End to end: three hubd processes, clients, a killed master, and nothing lost or doubled."""

from __future__ import annotations

import asyncio
import subprocess

from hubctl.lab.cluster import HUBCTL
from tests.conftest import wait_until


def hubctl(*args):
    return subprocess.run(HUBCTL + list(args), capture_output=True, text=True, timeout=60)


def test_master_killed_clients_follow_and_nothing_is_lost(lab):
    first = lab.master()
    assert asyncio.run(lab.agent_runs()) == [0] * 5
    wait_until(lambda: lab.all_collected(), 30, 0.3, "first collection")
    assert set(lab.policy_servers().values()) == {first.service}

    lab.kill(first.name)
    wait_until(lambda: lab.master() not in (None, first), 30, 0.1, "a new master")
    second = lab.master()
    # every client fails over and, told the master moved, re-points to it
    asyncio.run(lab.agent_runs())
    assert set(lab.policy_servers().values()) == {second.service}
    wait_until(lambda: lab.all_collected(), 30, 0.3, "collection by the new master")
    assert all(len(seqs) == len(set(seqs)) for seqs in lab.stored().values())

    # the timeline tells the story, and every live hub serves the same policy
    became = f"{second.name} became master"
    wait_until(
        lambda: became in hubctl("history", "--json", "--mongo", lab.uri).stdout,
        15,
        0.5,
        "the master change in the history",
    )
    verify = lambda: hubctl("masterfiles", "verify", "--mongo", lab.uri).returncode == 0  # noqa: E731
    wait_until(verify, 40, 0.5, "masterfiles verify clean")
    lab.revive(first.name)
    wait_until(lambda: hubctl("status", "--mongo", lab.uri).returncode == 0, 30, 0.5, "healthy set")
    assert lab.master() is second  # the old master came back as a standby


def test_scenario_failover_command_checks_itself():
    result = hubctl("lab", "scenario", "failover", "--clients", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 8 and all(line.startswith("ok") for line in lines)
    assert "no report lost or duplicated" in result.stderr
