"""hubd's loops on a real (stand-in) replica set: they survive injected failures, and a
majority write held by an isolated majority does not stop the master watch."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import socket
import time
from pathlib import Path

import asyncssh
import pytest
from typer.testing import CliRunner

from hub.config import parse_hub_config
from hub.keystore import KeyStore
from hub.master_watch import MasterState, MasterWatch
from hub.mongo import access_as
from hub.node import HubNode
from hubcluster.keys import ensure_key_pair
from hubctl.app import app
from hubctl.lab.standin import StandinCluster
from tests.conftest import hubd_access, wait_until
from tests.sshsvc.harness import LoopThread


class FlakyWatch(MasterWatch):
    """A watch whose second look fails with an error pymongo never raises (a bug's stand-in)."""

    looks = 0

    def _probe(self) -> MasterState:
        self.looks += 1
        if self.looks == 2:
            raise KeyError("injected: a field the code expected is missing")
        return super()._probe()


def test_master_watch_survives_a_failing_look_and_a_failing_handler(standin_set, caplog):
    primary = standin_set.primary()
    changes: list[MasterState] = []

    async def on_change(old: MasterState, new: MasterState) -> None:
        changes.append(new)
        if len(changes) == 1:
            raise RuntimeError("injected: the hub's reaction to a change failed")

    watch = FlakyWatch(standin_set.uri, primary, on_change)

    async def scenario() -> tuple[bool, float]:
        stop = asyncio.Event()
        task = asyncio.create_task(watch.run(stop))
        await asyncio.sleep(1.5)
        alive = not task.done()
        silent = time.monotonic() - watch.last_probe
        stop.set()
        await asyncio.wait_for(task, 5)
        return alive, silent

    with caplog.at_level(logging.ERROR, "hubcluster.master_watch"):
        alive, silent = asyncio.run(scenario())
    watch.close()
    assert alive, "the watch ended on an exception"
    assert silent < 1.0 and watch.looks >= 4
    assert watch.state.is_master and changes[0].is_master
    failures = [r for r in caplog.records if "a look failed" in r.getMessage()]
    assert {type(r.exc_info[1]) for r in failures} == {KeyError, RuntimeError}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def collection_settled(node: HubNode) -> bool:
    """No round running or asked for, and the last round's figures published."""
    last = node.collector.last_round
    if last is None or last.finished is None or node._collect_soon.is_set():
        return False
    if node._round is None or not node._round.done():
        return False
    state = next((s for s in node.store.hub_states() if s["_id"] == node.name), {})
    published = (state.get("last_round") or {}).get("finished")
    return published is not None and abs(
        published.replace(tzinfo=dt.UTC) - last.finished
    ) < dt.timedelta(milliseconds=2)


@pytest.fixture
def slow_election_set():
    """A set whose primary keeps its role for 8 s after losing its majority: time for a
    round to start and for the watch to be observed, even on a loaded machine."""
    with StandinCluster(election_timeout=8.0) as cluster:
        cluster.initiate(election_timeout_ms=8000, hub_names={})
        wait_until(cluster.primary, 15, what="a primary")
        yield cluster


def hub_node(
    cluster: StandinCluster,
    tmp_path: Path,
    member: str,
    state_interval: str = "15s",
    collector: dict | None = None,
) -> HubNode:
    hubs = [
        {"name": f"hub{i}", "mongo": host, "service": f"127.0.0.1:{free_port()}"}
        for i, host in enumerate(cluster.hosts, 1)
    ]
    me = next(h for h in hubs if h["mongo"] == member)
    config = parse_hub_config(
        {
            "hub": {
                "name": me["name"],
                "workdir": str(tmp_path / me["name"]),
                "listen": me["service"],
                "state_interval": state_interval,
            },
            "replset": {"uri": cluster.uri, **hubd_access(cluster)},
            "hubs": hubs,
            "collector": collector or {"interval": "1h"},
            "sync": {"interval": "1h"},
        }
    )
    ensure_key_pair(KeyStore(config.ppkeys).hub_private_key_path)
    with access_as(config.mongo_access):  # it plays hubd: its clients log in as hubd
        return HubNode(config)


def test_a_held_majority_write_does_not_stop_the_master_watch(slow_election_set, tmp_path):
    cluster = slow_election_set
    primary = cluster.primary()
    node = hub_node(cluster, tmp_path, primary)
    loop = LoopThread()
    running = asyncio.run_coroutine_threadsafe(node.run(), loop.loop)
    try:
        wait_until(lambda: node.watch.state.is_master, 10, what="the hub to become master")
        wait_until(lambda: node.collector.last_round is not None, 10, what="a first round")
        rounds = node.store.db["rounds"]
        wait_until(lambda: rounds.count_documents({}) == 1, 10, what="the round recorded")
        # Isolating while the first round's own writes (its state, a round asked for by the
        # master change) are under way would hold the loop there until the primary steps
        # down, and the asked-for round would never run.
        wait_until(lambda: collection_settled(node), 10, what="the collection loop idle")
        for host in cluster.hosts:
            if host != primary:
                cluster.isolate(host)
        first = node.collector.last_round
        loop.loop.call_soon_threadsafe(node.collect_now)
        # The round's figures wait for a majority that is not there; the loop must not.
        wait_until(lambda: node.collector.last_round is not first, 15, what="a second round")
        # The held write lasts 10 s (the majority wtimeout); a watch stuck behind it would be
        # silent that long, so a bound well under it tells the two apart on a loaded machine.
        worst = 0.0
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            worst = max(worst, time.monotonic() - node.watch.last_probe)
            time.sleep(0.02)
        assert node.watch.state.is_master  # still primary: the write was held, not refused
        assert worst < 2.5, f"the master watch did not look for {worst:.1f}s"
    finally:
        for host in cluster.hosts:
            cluster.heal(host)
        loop.loop.call_soon_threadsafe(node.request_stop)
        running.result(20)
        loop.stop()


def test_a_failing_part_of_hubd_shows_in_check_as_critical(standin_set, tmp_path):
    primary = standin_set.primary()
    node = hub_node(standin_set, tmp_path, primary, state_interval="0.5s")
    node.watch.close()
    node.watch = FlakyWatch(standin_set.uri, primary, node._on_master_change, node._watch_failed)
    loop = LoopThread()
    running = asyncio.run_coroutine_threadsafe(node.run(), loop.loop)
    try:

        def published() -> list[str]:
            state = next((s for s in node.store.hub_states() if s["_id"] == node.name), {})
            return state.get("problems") or []

        [problem] = wait_until(published, 10, what="the failure in the hub's state")
        assert problem.startswith("master watch: a look failed (KeyError: ")
        assert node.watch.state.is_master  # it failed once and watched on
        result = CliRunner().invoke(app, ["check", "--mongo", standin_set.uri])
        assert result.exit_code == 2, result.output
        assert result.output.startswith("HUBCLUSTER CRITICAL")
        assert f"{node.name}: master watch: a look failed (KeyError" in result.output
        status = CliRunner().invoke(app, ["status", "--mongo", standin_set.uri])
        assert f"{node.name}: master watch: a look failed (KeyError" in status.output
    finally:
        loop.loop.call_soon_threadsafe(node.request_stop)
        running.result(20)
        loop.stop()


def test_rounds_that_overrun_say_so_in_one_line_and_in_check(standin_set, tmp_path, caplog):
    """A client that never answers makes each round outlast a 1 s interval."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the handshake completes, no SSH banner ever comes
    primary = standin_set.primary()
    node = hub_node(
        standin_set,
        tmp_path,
        primary,
        state_interval="0.5s",
        collector={"interval": "1s", "connect_timeout": "1.5s", "ifelapsed": "0s"},
    )
    key = asyncssh.generate_private_key("ssh-ed25519")
    sha, _ = node.keystore.add(key)
    node.store.record_host(sha, "mute1", "127.0.0.1", silent.getsockname()[1], node.name)
    loop = LoopThread()
    running = asyncio.run_coroutine_threadsafe(node.run(), loop.loop)
    try:

        def overruns() -> dict:
            state = next((s for s in node.store.hub_states() if s["_id"] == node.name), {})
            found = state.get("round_overruns") or {}
            return found if found.get("in_a_row", 0) >= 3 else {}

        with caplog.at_level(logging.INFO):
            seen = wait_until(overruns, 20, what="three overrunning rounds published")
        assert seen["interval"] == 1.0 and seen["last_seconds"] >= 1.4
        lines = [r.getMessage() for r in caplog.records]
        said = [line for line in lines if line.startswith("round took ")]
        assert said and all(
            re.fullmatch(
                r"round took \d+\.\d s, longer than the 1 s interval; next round starts now"
                r"( \(\d+ in a row\))?",
                line,
            )
            for line in said
        ), said
        assert not [line for line in lines if "maximum number of running instances" in line]
        result = CliRunner().invoke(app, ["check", "--mongo", standin_set.uri])
        assert f"{node.name}: rounds keep overrunning (" in result.output, result.output
        assert result.exit_code in (1, 2)
    finally:
        loop.loop.call_soon_threadsafe(node.request_stop)
        running.result(20)
        loop.stop()
        silent.close()


class FlakySSHNode(HubNode):
    """A hub whose SSH service fails its self-check once (a wedged service's stand-in)."""

    probes = 0

    async def _probe_ssh(self) -> None:
        self.probes += 1
        if self.probes == 1:
            raise ConnectionError("injected: no banner")
        await super()._probe_ssh()


def test_the_ssh_service_is_restarted_when_it_stops_answering(standin_set, tmp_path):
    primary = standin_set.primary()
    plain = hub_node(standin_set, tmp_path, primary, state_interval="0.5s")
    node = FlakySSHNode(plain.config)
    for client in (plain.client, plain.collector_client):
        client.close()
    plain.watch.close()
    node.ssh_probe_seconds = 0.3
    loop = LoopThread()
    running = asyncio.run_coroutine_threadsafe(node.run(), loop.loop)
    try:
        wait_until(lambda: node.probes >= 3, 10, what="the service probed again after a restart")
        [problem] = wait_until(
            lambda: next(
                (s.get("problems") for s in node.store.hub_states() if s["_id"] == node.name),
                None,
            ),
            10,
            what="the restart in the hub's state",
        )
        assert problem.startswith("SSH service raised ConnectionError: injected: no banner;")
        assert "restarted" in problem
        port = int(node.config.me.service.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            assert sock.makefile("rb").readline().startswith(b"SSH-2.0-")
    finally:
        loop.loop.call_soon_threadsafe(node.request_stop)
        running.result(20)
        loop.stop()
