"""End to end: three hubd processes, clients, a killed master, and nothing lost or doubled."""

from __future__ import annotations

import asyncio
import os
import subprocess

from hubctl.lab.child_commands import HUBCTL
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


def test_scenario_failover_command_checks_itself(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        HUBCTL + ["lab", "scenario", "failover", "--clients", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 8 and all(line.startswith("ok") for line in lines)
    assert "no report lost or duplicated" in result.stderr
    # Its lab directory (hub logs, keys) is gone once every step held.
    assert list(tmp_path.glob("hubcluster-scenario-*")) == []


def test_publish_held_by_a_majority_survives_killing_the_master_at_once(lab):
    """hubctl publish returns once 2 of 3 hubs hold the release; the master dies right then;
    the new master serves it, and no client ever runs an older generation."""
    from client_agent.policy_generation import running
    from client_agent.state import ClientState
    from hub.masterfiles import current_release_id

    def generations() -> dict[str, int | None]:
        found = {}
        for c in lab.fleet:
            mine = running(ClientState(c.workdir))
            found[c.name] = mine.generation if mine else None
        return found

    first = lab.master()
    assert asyncio.run(lab.agent_runs()) == [0] * 5
    assert set(generations().values()) == {1}  # the lab's sample policy
    source = lab.directory / "policy-two"
    source.mkdir()
    (source / "promises.toml").write_text('[[promise]]\nname = "two"\ncheck = "true"\n')
    out = hubctl("masterfiles", "publish", str(source), "--config", str(first.config))
    assert out.returncode == 0, out.stderr
    rid = out.stdout.strip().split()[-1]
    assert f"release {rid} (generation 2) held by" in out.stderr
    lab.kill(first.name)

    wait_until(lambda: lab.master() not in (None, first), 30, 0.1, "a new master")
    second = lab.master()
    wait_until(
        lambda: current_release_id(second.workdir / "masterfiles") == rid,
        15,
        0.2,
        "the published release on the new master",
    )
    seen = [generations()]
    for _ in range(2):
        asyncio.run(lab.agent_runs())
        seen.append(generations())
    for before, after in zip(seen, seen[1:], strict=False):
        assert all((after[c] or 0) >= (before[c] or 0) for c in before), (before, after)
    assert set(seen[-1].values()) == {2}
