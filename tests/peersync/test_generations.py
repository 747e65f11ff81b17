"""Release generations: a publish is held by a majority, survives its master, never goes back.

Real parts: three hub SSH services on loopback, peer sync over SSH, generations in the
stand-in replica set through pymongo, clients running the real agent.
"""

from __future__ import annotations

import asyncio

import pytest

from client_agent.agent_run import run_agent
from client_agent.bootstrap import bootstrap
from client_agent.policy_generation import running
from client_agent.state import ClientState
from hub import release_generations as generations
from hub.durable_publish import install_and_record, wait_for_holders
from hub.masterfiles import current_release_id
from hub.mongo import connect
from hub.peer_sync import sync_with_peers
from hub.store import HubStore
from tests.peersync.peers import hub_config, write_tree
from tests.sshsvc.harness import client_config


@pytest.fixture
def store(standin_set):
    client = connect(standin_set.uri, timeout=10)
    yield HubStore(client)
    client.close()


def take(hubs, store, i: int, master: int | None = 0):
    """Hub i's peer sync as hubd runs it: towards the set's newest generation."""
    config = hub_config(hubs, i)
    service = hubs.addresses[master] if master is not None else None
    target = generations.latest(store)
    result = asyncio.run(
        sync_with_peers(config, hubs.keystore(i), hubs.hub_key, service, 3.0, target)
    )
    state = {"release": current_release_id(hubs.masterfiles(i))}
    held = generations.held(hubs.masterfiles(i))
    state["generation"] = held.number if held else None
    store.set_hub_state(config.name, **state)
    return result


def test_a_publish_is_durable_on_a_majority_and_survives_its_master(make_hubs, store, tmp_path):
    hubs = make_hubs(3)
    config0 = hub_config(hubs, 0)
    first = install_and_record(config0, store, write_tree(tmp_path / "a", {"f": "one"}))
    assert first.generation.number == 1
    waited = wait_for_holders(config0, store, lambda: None, first, "majority", 0.3)
    assert not waited.durable and waited.holders == ["hub0"]
    assert waited.missing == ["hub1", "hub2"]

    take(hubs, store, 1)
    waited = wait_for_holders(config0, store, lambda: None, first, "majority", 0.3)
    assert waited.durable and waited.holders == ["hub0", "hub1"]
    assert waited.holders_line() == (
        f"release {first.generation.release} (generation 1) held by hub0, hub1 "
        "(2 of 3 hubs; not yet on hub2)"
    )
    store.set_hub_state("hub2", release=None, generation=None)  # a healthy hub, not there yet
    every = wait_for_holders(config0, store, lambda: None, first, "all", 0.3)
    assert not every.durable and every.needed == 3 and every.missing == ["hub2"]
    take(hubs, store, 2)
    every = wait_for_holders(config0, store, lambda: None, first, "all", 0.3)
    assert every.durable and every.holders == ["hub0", "hub1", "hub2"]

    # The master dies at once after a second publish that hub1 took: hub2 (the new master,
    # say) finds the newest generation in the set and takes it from hub1, not the master.
    second = install_and_record(config0, store, write_tree(tmp_path / "b", {"f": "two"}))
    take(hubs, store, 1)
    hubs.stop(0)
    result = take(hubs, store, 2, master=2)
    assert current_release_id(hubs.masterfiles(2)) == second.generation.release, result.mirror
    assert generations.held(hubs.masterfiles(2)).number == 2
    assert "hub0" in str(result.peers_failed) or result.peers_failed


def test_a_hub_never_takes_a_lower_generation_and_a_republish_is_a_new_one(
    make_hubs, store, tmp_path
):
    hubs = make_hubs(2)
    config0 = hub_config(hubs, 0)
    old = install_and_record(config0, store, write_tree(tmp_path / "a", {"f": "one"}))
    new = install_and_record(config0, store, write_tree(tmp_path / "b", {"f": "two"}))
    take(hubs, store, 1)
    assert generations.held(hubs.masterfiles(1)).number == 2

    # A stale view of the set (generation 1) does not take hub1 back.
    config1 = hub_config(hubs, 1)
    stale = generations.Generation(1, old.generation.release)
    result = asyncio.run(
        sync_with_peers(config1, hubs.keystore(1), hubs.hub_key, hubs.addresses[0], 3.0, stale)
    )
    assert current_release_id(hubs.masterfiles(1)) == new.generation.release
    assert result.mirror.startswith(f"kept release {new.generation.release} (generation 2)")

    again = install_and_record(config0, store, write_tree(tmp_path / "a", {"f": "one"}))
    assert again.generation.release == old.generation.release
    assert again.generation.number == 3
    take(hubs, store, 1)
    assert current_release_id(hubs.masterfiles(1)) == old.generation.release
    assert generations.held(hubs.masterfiles(1)).number == 3


def test_a_client_never_moves_to_a_lower_generation(make_hubs, store, tmp_path):
    hubs = make_hubs(2)
    config0 = hub_config(hubs, 0)
    old = install_and_record(config0, store, write_tree(tmp_path / "a", {"f": "one"}))
    take(hubs, store, 1)  # hub1 holds generation 1 and stays there
    new = install_and_record(config0, store, write_tree(tmp_path / "b", {"f": "two"}))
    config = client_config(tmp_path)
    asyncio.run(bootstrap(config, hubs.addresses[0], hub_fingerprint=hubs.fingerprint))
    state = ClientState(config.workdir)
    assert state.current_release() == new.generation.release
    assert running(state).generation == 2

    # hub0 dies; hub1 (generation 1) is the only hub left. The client keeps generation 2.
    hubs.stop(0)
    hubs.master = 1
    asyncio.run(run_agent(config))
    assert state.current_release() == new.generation.release
    assert running(state).generation == 2
    assert current_release_id(hubs.masterfiles(1)) == old.generation.release
