"""End to end: hub1's hardware dies for good and hub4 takes its place.

Real hubd processes and client agents on the stand-in: `hubctl lab replace hub1` makes the
lab do what an operator does (a new mongod, a new hubd, `hubctl member replace --wait`),
and hubctl makes hub4 electable only once hub4's hubd reports the cluster's keys and
release.
"""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest

from client_agent.state import ClientState
from hubctl.lab.child_commands import HUBCTL
from hubctl.lab.standin.control import serve_control
from tests.conftest import wait_until


def hubctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(HUBCTL + list(args), capture_output=True, text=True, timeout=60)


def hub_lists(lab) -> set[tuple[str, ...]]:
    return {tuple(ClientState(c.workdir).read_hubs()[0].hubs) for c in lab.fleet}


@pytest.mark.timeout(240)  # a lab start, a replacement and a switchover, on a loaded machine
def test_a_dead_hub_is_replaced_and_nothing_is_lost(lab):
    assert asyncio.run(lab.agent_runs()) == [0] * 5
    wait_until(lab.all_collected, 30, 0.3, "first collection")
    old = lab.hub("hub1")

    # As an operator types it, from another shell, through the running lab's control API.
    control = serve_control(lab)
    try:
        lab.save_state(f"127.0.0.1:{control.server_address[1]}")
        said = subprocess.run(
            HUBCTL + ["lab", "replace", "hub1", "--dir", str(lab.directory)],
            capture_output=True,
            text=True,
            timeout=200,
        )
    finally:
        control.shutdown()
    assert said.returncode == 0, said.stderr
    assert said.stdout.startswith("hub1 replaced by hub4"), said.stdout
    hub4 = lab.hub("hub4")

    # hub4 is a caught-up, electable member; hub1 is gone from the set.
    doc = json.loads(hubctl("status", "--json", "--mongo", lab.uri).stdout)
    members = {m["hub"]: m for m in doc["members"]}
    assert set(members) == {"hub2", "hub3", "hub4"}
    assert members["hub4"]["priority"] == 1 and members["hub4"]["state"] == "SECONDARY"
    hubs = {h["name"]: h for h in doc["hubs"]}
    assert set(hubs) == {"hub2", "hub3", "hub4"}  # hub1 is gone, not "unreachable"
    assert hubs["hub4"]["keys"] == hubs["hub2"]["keys"] >= 5
    assert hubs["hub4"]["release"] == hubs["hub2"]["release"] is not None

    # Clients learn the new hub list from whichever hub they reach, and keep reporting.
    expected = {tuple(h.service for h in lab.hubs)}

    def lists_updated() -> bool:
        asyncio.run(lab.agent_runs())
        return hub_lists(lab) == expected

    wait_until(lists_updated, 40, 0.5, "every client's hub list naming hub4, not hub1")
    assert old.service not in {s for hubs in hub_lists(lab) for s in hubs}
    wait_until(lab.all_collected, 30, 0.3, "collection after the replacement")

    # A release counts as held by a majority of the hubs as they are now, even when published
    # with a config that still lists hub1: hub4 and the master make it, with the third down.
    master = lab.master()
    standby = next(h for h in lab.hubs if h not in (master, hub4))
    lab.stop_hub(standby)
    policy = lab.directory / "second-policy"
    policy.mkdir()
    (policy / "promises.toml").write_text('[[promise]]\nname = "second"\ncheck = "true"\n')
    published = hubctl("masterfiles", "publish", str(policy), "--config", str(master.config))
    assert published.returncode == 0, published.stderr
    assert "hub4" in published.stderr
    lab.start_hub(standby)

    # hub4 can take over as master, and clients follow it there.
    moved = hubctl("stepdown", "--to", "hub4", "--yes", "--mongo", lab.uri)
    assert moved.returncode == 0, moved.stderr
    wait_until(lambda: lab.master() is hub4, 30, 0.2, "hub4 master")

    def repointed() -> bool:
        asyncio.run(lab.agent_runs())
        return set(lab.policy_servers().values()) == {hub4.service}

    wait_until(repointed, 30, 0.5, "clients re-pointed to hub4")
    wait_until(lab.all_collected, 30, 0.3, "collection by hub4")
    assert all(len(seqs) == len(set(seqs)) for seqs in lab.stored().values())

    kinds = [e["kind"] for e in json.loads(hubctl("history", "--json", "--mongo", lab.uri).stdout)]
    for kind in ("member-remove", "member-add", "member-promote", "member-replace"):
        assert kind in kinds
    assert kinds.index("member-add") < kinds.index("member-promote")
