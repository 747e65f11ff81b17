"""Server order, failing over across hubs, following the master, repairing policy_server.dat."""

from __future__ import annotations

import asyncio
import socket
import time

from client_agent.agent_run import run_agent
from client_agent.bootstrap import bootstrap
from client_agent.failover import plan_servers, server_order
from client_agent.state import ClientState, HubList
from tests.sshsvc.harness import client_config


def bootstrapped(hubs, tmp_path, timeout: float = 2.0):
    config = client_config(tmp_path, timeout=timeout)
    asyncio.run(bootstrap(config, hubs.addresses[0], hub_fingerprint=hubs.fingerprint))
    state = ClientState(config.workdir)
    hubs.admit(state.client_key())  # what peer key sync does
    return config, state


def test_server_order():
    hubs = ["h1:1", "h2:1", "h3:1"]
    assert server_order("h2:1", hubs, None) == ["h2:1", "h1:1", "h3:1"]
    assert server_order("h3:1", hubs, "h1:1") == ["h3:1", "h2:1", "h1:1"]
    assert server_order("h1:1", hubs, "h1:1") == ["h1:1", "h2:1", "h3:1"]
    assert server_order(None, hubs, "h2:1") == ["h1:1", "h3:1", "h2:1"]
    assert server_order("h9:1", [], None) == ["h9:1"]


def test_failover_across_three_hubs_when_policy_server_is_dead(make_hubs, tmp_path):
    hubs = make_hubs(count=3)
    hubs.master = 1
    hubs.publish({"a.txt": "a"})
    config, state = bootstrapped(hubs, tmp_path)
    assert state.read_policy_server()[0] == hubs.addresses[1]

    hubs.stop(1)  # the master dies; the set elects hub2
    hubs.master = 2
    result = asyncio.run(run_agent(config))
    assert result.exit_code == 0, result.summary()
    assert result.server == hubs.addresses[0]  # next in list order after the dead one
    assert state.read_policy_server() == (hubs.addresses[2], None)
    hub_list, _ = state.read_hubs()
    assert hub_list.failed_master == hubs.addresses[1]
    assert f"failed over past {hubs.addresses[1]}" in result.summary()
    assert "master moved" in result.summary()
    # The dead master goes last, so the next failure costs one hop, not two.
    assert plan_servers(state).servers == [hubs.addresses[2], hubs.addresses[0], hubs.addresses[1]]

    hubs.stop(2)
    hubs.master = 0
    result = asyncio.run(run_agent(config))
    assert result.server == hubs.addresses[0] and result.exit_code == 0
    assert state.read_policy_server()[0] == hubs.addresses[0]
    assert state.read_hubs()[0].failed_master == hubs.addresses[2]


def test_repointing_only_when_the_master_moves(make_hubs, tmp_path):
    hubs = make_hubs(count=3)
    hubs.publish({"a.txt": "a"})
    config, state = bootstrapped(hubs, tmp_path)
    before = state.policy_server_path.stat()

    result = asyncio.run(run_agent(config))
    assert result.exit_code == 0 and "master moved" not in result.summary()
    assert state.policy_server_path.stat().st_ino == before.st_ino  # not rewritten

    hubs.master = 2
    result = asyncio.run(run_agent(config))
    assert "master moved: policy_server.dat now " + hubs.addresses[2] in result.summary()
    assert state.read_policy_server()[0] == hubs.addresses[2]
    assert state.read_hubs()[0].failed_master is None  # hub0 answered; nothing failed

    moved = state.policy_server_path.stat()
    hubs.master, hubs.reason = None, "no primary"
    result = asyncio.run(run_agent(config))
    assert result.exit_code == 0 and result.server == hubs.addresses[2]
    assert state.policy_server_path.stat().st_ino == moved.st_ino  # kept the current server


def test_garbage_policy_server_is_reported_and_repaired(make_hubs, tmp_path):
    hubs = make_hubs(count=2)
    hubs.master = 1
    hubs.publish({"a.txt": "a"})
    config, state = bootstrapped(hubs, tmp_path)
    port = hubs.addresses[1].rsplit(":", 1)[1]
    nul = f"127.0.0.1\0:{port}\n".encode()  # once a traceback out of the resolver
    for garbage in (b"", b"\x00\xff\xfe garbage", b"h1:1\nh2:2\n", b"no-port-here\n", nul):
        state.policy_server_path.write_bytes(garbage)
        result = asyncio.run(run_agent(config))
        assert result.exit_code == 0, result.summary()
        assert "repaired from the hub list" in result.summary()
        assert state.read_policy_server() == (hubs.addresses[1], None)


def test_nothing_known_means_bootstrap(make_hubs, tmp_path):
    hubs = make_hubs()
    hubs.publish({"a.txt": "a"})
    config, state = bootstrapped(hubs, tmp_path)
    state.policy_server_path.write_text("garbage")
    state.hubs_path.write_text("{not json")
    result = asyncio.run(run_agent(config))
    assert result.exit_code == 2
    assert "no hub list to repair it from" in result.summary()
    assert "run client-agent bootstrap" in result.summary()
    assert result.seqs, "the policy in force still ran and was spooled"


def test_a_silent_hub_costs_one_connect_timeout(make_hubs, tmp_path):
    hubs = make_hubs(count=2)
    hubs.publish({"a.txt": "a"})
    config, state = bootstrapped(hubs, tmp_path, timeout=0.5)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never says a word
    try:
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        state.write_policy_server(address)
        state.write_hubs(HubList(hubs.addresses, None))
        t0 = time.monotonic()
        result = asyncio.run(run_agent(config))
        elapsed = time.monotonic() - t0
    finally:
        silent.close()
    assert result.exit_code == 0 and result.server == hubs.addresses[0]
    assert elapsed < 3.0
    assert state.read_policy_server()[0] == hubs.addresses[0]
    assert state.read_hubs()[0].failed_master == address
