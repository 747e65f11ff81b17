"""A new member is made electable only once its hub has caught up, as its hubd reports.

Two real hubd nodes on a stand-in set with a spare mongod: the master holds a client key
the new hub lacks (peer sync is hours away), so the new member, a secondary at once,
stays at priority 0 and `hubctl member add` says why, until the key reaches the new hub and
`hubctl member promote` raises it.
"""

from __future__ import annotations

import asyncio
import json

import asyncssh
import pytest
from typer.testing import CliRunner

from hub.keystore import KeyStore
from hub.member_promotion import PROMOTIONS
from hubctl.app import app
from hubctl.lab.standin import StandinCluster
from tests.conftest import ELECTION_TIMEOUT, wait_until
from tests.hubd.test_hubd_loops import hub_node
from tests.sshsvc.harness import LoopThread

runner = CliRunner()


@pytest.fixture
def spare():
    """hub1..hub3 initiated on three members; a fourth mongod running, not in the set."""
    with StandinCluster(4, election_timeout=ELECTION_TIMEOUT) as cluster:
        cluster.initiate(cluster.hosts[:3], election_timeout_ms=int(ELECTION_TIMEOUT * 1000))
        wait_until(cluster.primary, 15, what="a primary")
        yield cluster


def member(uri: str, hub: str) -> dict:
    doc = json.loads(runner.invoke(app, ["status", "--json", "--mongo", uri]).stdout)
    return next(m for m in doc["members"] if m["hub"] == hub)


def test_a_new_member_waits_for_the_keys_before_it_may_be_elected(spare, tmp_path):
    master = hub_node(spare, tmp_path, spare.primary(), state_interval="0.5s")
    new = hub_node(spare, tmp_path, spare.hosts[3], state_interval="0.5s")
    assert new.name == "hub4"
    client_key = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
    KeyStore(master.config.ppkeys).add(client_key)
    loop = LoopThread()
    running = [asyncio.run_coroutine_threadsafe(n.run(), loop.loop) for n in (master, new)]
    promotions = master.store.db[PROMOTIONS]
    try:
        wait_until(lambda: master.watch.state.is_master, 10, what="the master hub")
        added = runner.invoke(
            app,
            ["member", "add", f"hub4={spare.hosts[3]}", "--yes", "--wait", "3s"]
            + ["--mongo", spare.uri],
        )
        assert added.exit_code == 1
        assert "hub4 (" in added.stderr and "has not caught up within 3s" in added.stderr
        assert "client keys of the master's" in added.stderr
        assert member(spare.uri, "hub4")["state"] == "SECONDARY"
        assert member(spare.uri, "hub4")["priority"] == 0

        KeyStore(new.config.ppkeys).add(client_key)  # what peer sync would bring
        promoted = runner.invoke(
            app, ["member", "promote", "hub4", "--wait", "15s", "--mongo", spare.uri]
        )
        assert promoted.exit_code == 0, promoted.output
        assert "has caught up and may be elected (priority 1)" in promoted.stdout
        assert member(spare.uri, "hub4")["priority"] == 1
        assert promotions.count_documents({}) == 0
        kinds = [e["kind"] for e in master.store.db["events"].find()]
        assert "member-promote" in kinds
    finally:
        for n in (master, new):
            loop.loop.call_soon_threadsafe(n.request_stop)
        for r in running:
            r.result(20)
        loop.stop()
