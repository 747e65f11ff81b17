"""End to end, the other stories: a planned switchover, an isolated master, a maintenance window."""

from __future__ import annotations

import asyncio
import subprocess

from hubctl.lab.child_commands import HUBCTL
from tests.conftest import wait_until


def hubctl(*args):
    return subprocess.run(HUBCTL + list(args), capture_output=True, text=True, timeout=60)


def one_collector_at_a_time(lab) -> bool:
    """No two hubs' collection rounds overlap in time."""
    from hub.mongo import connect

    client = connect(lab.uri, timeout=10)
    rounds = sorted(
        client.cfreport.rounds.find({}, {"hub": 1, "started": 1, "finished": 1}),
        key=lambda r: r["started"],
    )
    client.close()
    for a, b in zip(rounds, rounds[1:], strict=False):
        if a["hub"] != b["hub"] and b["started"] < a["finished"]:
            return False
    return True


def follow(lab, master) -> None:
    """Agent runs until every client names `master`; the first may still meet a hub that has
    not yet seen the election (its watch looks every 0.25 s), so it may take a second run."""

    def followed() -> bool:
        asyncio.run(lab.agent_runs())
        return set(lab.policy_servers().values()) == {master.service}

    wait_until(followed, 30, 0.5, f"every client following {master.name}")


def test_planned_switchover(lab):
    first = lab.master()
    asyncio.run(lab.agent_runs())
    wait_until(lab.all_collected, 30, 0.3, "first collection")
    target = lab.hubs[2] if first is not lab.hubs[2] else lab.hubs[1]
    result = hubctl("stepdown", "--to", target.member, "--seconds", "30", "--mongo", lab.uri)
    assert result.returncode == 0, result.stderr
    assert lab.master() is target
    follow(lab, target)
    wait_until(lab.all_collected, 30, 0.3, "collection by the new master")
    assert one_collector_at_a_time(lab)
    story = lambda: hubctl("history", "--json", "--mongo", lab.uri).stdout  # noqa: E731
    wait_until(lambda: f"{target.name} became master" in story(), 15, 0.5, "history")
    assert "switchover" in story()


def test_isolated_master(lab):
    first = lab.master()
    asyncio.run(lab.agent_runs())
    wait_until(lab.all_collected, 30, 0.3, "first collection")
    lab.isolate(first.name)
    wait_until(lambda: lab.master() not in (None, first), 30, 0.1, "a master on the majority side")
    second = lab.master()
    # clients still reach the isolated hub, which sees no master; they ask on and follow
    follow(lab, second)
    wait_until(lab.all_collected, 30, 0.3, "collection by the new master")
    assert one_collector_at_a_time(lab)
    lab.heal(first.name)
    assert lab.master() is second


def test_maintenance_window_causes_no_failover(lab):
    first = lab.master()
    asyncio.run(lab.agent_runs())
    wait_until(lab.all_collected, 30, 0.3, "first collection")
    result = hubctl("maintenance", "start", first.member, "--for", "10m", "--mongo", lab.uri)
    assert result.returncode == 0, result.stderr
    lab.kill(first.name)  # the brief stop of the primary's host
    asyncio.run(asyncio.sleep(lab.election_timeout * 3))
    assert lab.master() is None  # frozen secondaries: no election, so nobody re-points
    lab.revive(first.name)
    wait_until(lambda: lab.master() is first, 30, 0.2, "the same master back")
    asyncio.run(lab.agent_runs())
    assert set(lab.policy_servers().values()) == {first.service}
    assert hubctl("maintenance", "end", "--mongo", lab.uri).returncode == 0
    wait_until(lab.all_collected, 30, 0.3, "collection after the window")
    assert one_collector_at_a_time(lab)
    wait_until(
        lambda: "maintenance-end" in hubctl("history", "--json", "--mongo", lab.uri).stdout,
        15,
        0.5,
        "history",
    )
