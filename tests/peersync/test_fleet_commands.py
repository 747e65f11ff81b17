"""hubctl masterfiles publish/verify and keys list/revoke, against the replica-set stand-in."""

from __future__ import annotations

import asyncio
import json
import os

import asyncssh
import pytest
from typer.testing import CliRunner

from hub.events import list_events
from hub.key_records import REVOCATIONS
from hub.masterfiles import current_release_id
from hub.mongo import connect
from hub.peer_sync import apply_db_revocations
from hub.replset import ReplicaSet
from hub.store import HOSTS, HubStore
from hubcluster.hub_session import HubRefused, open_hub
from hubcluster.keys import fingerprint_from_sha, key_sha
from hubctl.app import app
from tests.conftest import hubd_access
from tests.peersync.peers import sync, write_tree

runner = CliRunner()


@pytest.fixture
def store(standin_set):
    client = connect(standin_set.uri, timeout=10)
    yield HubStore(client)
    client.close()


def cli(*args: str):
    return runner.invoke(app, list(args))


def hub_toml(tmp_path, standin_set, name: str, workdir) -> str:
    hubs = "".join(
        f'[[hubs]]\nname = "hub{i}"\nmongo = "{host}"\nservice = "127.0.0.1:{5400 + i}"\n'
        for i, host in enumerate(standin_set.hosts)
    )
    access = "".join(f'{key} = "{value}"\n' for key, value in hubd_access(standin_set).items())
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'[hub]\nname = "{name}"\nworkdir = "{workdir}"\n'
        f'[replset]\nuri = "{standin_set.uri}"\n{access}{hubs}'
    )
    return str(path)


def test_publish_on_the_master_only(standin_set, store, tmp_path):
    primary = ReplicaSet(standin_set.uri).wait_for_primary(10)
    master = standin_set.hosts.index(primary)
    other = (master + 1) % 3
    src = write_tree(tmp_path / "src", {"a.txt": "a"})
    (tmp_path / "other").mkdir()
    (tmp_path / "master").mkdir()

    config = hub_toml(tmp_path, standin_set, f"hub{other}", tmp_path / "other")
    result = cli("masterfiles", "publish", str(src), "--config", config)
    assert result.exit_code == 1
    assert f"refusing to publish on hub{other}" in result.output
    assert f"the master is hub{master} ({primary})" in result.output
    assert current_release_id(tmp_path / "other" / "masterfiles") is None

    config = hub_toml(tmp_path, standin_set, f"hub{master}", tmp_path / "master")
    # No hubd runs here, so no other hub takes it: served, but not durable, and said so.
    result = cli("masterfiles", "publish", str(src), "--config", config, "--wait-timeout", "1s")
    assert result.exit_code == 1, result.output
    assert f"generation 1) held by hub{master} (1 of 3 hubs" in result.output
    assert "fewer than the 2 needed after 1s" in result.output
    rid = result.stdout.strip()
    assert rid == current_release_id(tmp_path / "master" / "masterfiles")
    [state] = [s for s in store.hub_states() if s["_id"] == f"hub{master}"]
    assert state["release"] == rid and state["release_since"] is not None
    [event] = [e for e in list_events(store.client) if e["kind"] == "publish"]
    assert rid in event["message"] and event["details"]["release"] == rid

    (src / "promises.toml").write_text("[[promise]]\nname = 3\n")
    result = cli("masterfiles", "publish", str(src), "--config", config)
    assert result.exit_code == 1 and "refusing to publish" in result.output

    if os.geteuid() == 0:  # files another user could not prune later are refused up front
        os.chown(tmp_path / "master" / "masterfiles", 65534, 65534)
        result = cli("masterfiles", "publish", str(src), "--config", config)
        assert result.exit_code == 2 and "publish as that user" in result.output


def test_keys_revoke_end_to_end(standin_set, store, make_hubs):
    hubs = make_hubs(2)
    client = asyncssh.generate_private_key("ssh-ed25519")
    sha = key_sha(client)
    hubs.keystore(0).add(client)
    store.record_host(sha, "web1", "127.0.0.1", 5309, hub="hub0")
    sync(hubs, 1)
    store.set_hub_state("hub0", keys=1)

    async def master(i: int) -> None:
        async with open_hub(hubs.addresses[i], client, hubs.hub_key, 5.0) as session:
            await session.master()

    asyncio.run(master(1))  # the key reached hub1 by peer sync

    for target, problem in [
        ("web9", "no host named 'web9', and it is not a key SHA"),
        ("abc", "needs at least 6 digits"),
        ("0" * 10, "no registered key starting 0000000000"),
    ]:
        result = cli("keys", "revoke", target, "--mongo", standin_set.uri)
        assert result.exit_code == 1 and problem in result.output, result.output

    result = cli("keys", "revoke", "web1", "--reason", "decommissioned", "--mongo", standin_set.uri)
    assert result.exit_code == 0, result.output
    assert f"revoked web1 ({fingerprint_from_sha(sha)})" in result.output
    assert store.db[REVOCATIONS].find_one({"_id": sha})["reason"] == "decommissioned"
    assert store.db[HOSTS].find_one({"_id": sha})["revoked"] is True
    [event] = [e for e in list_events(store.client) if e["kind"] == "revoke"]
    assert "web1" in event["message"] and event["details"]["sha"] == sha

    again = cli("keys", "revoke", sha[:8], "--mongo", standin_set.uri)
    assert again.exit_code == 0 and "already revoked" in again.output

    # hub1 turns the DB revocation into a tombstone and refuses the client from then on.
    assert apply_db_revocations(store, hubs.keystore(1)) == [sha]
    assert hubs.keystore(1).tombstones()[sha]["reason"] == "decommissioned"
    with pytest.raises(HubRefused, match="refused this client's key"):
        asyncio.run(master(1))
    # hub0 learns it from hub1 by peer sync (tombstones win over its copy of the key).
    asyncio.run(master(0))
    assert sync(hubs, 0).keys_revoked == 1
    with pytest.raises(HubRefused):
        asyncio.run(master(0))
    assert apply_db_revocations(store, hubs.keystore(0)) == []

    listed = json.loads(cli("keys", "list", "--mongo", standin_set.uri, "--json").stdout)
    [row] = listed["keys"]
    assert (row["hostname"], row["sha"], row["reason"]) == ("web1", sha, "decommissioned")
    assert row["revoked"] is not None and listed["hub_key_counts"] == {"hub0": 1}
    table = cli("keys", "list", "--mongo", standin_set.uri)
    assert table.exit_code == 0 and "0 active keys, 1 revoked" in table.output


def test_an_ambiguous_prefix_is_refused(standin_set, store):
    store.record_host("abcdef01" + "0" * 56, "web1", "127.0.0.1", 5309, hub="hub0")
    store.record_host("abcdef02" + "0" * 56, "web1", "127.0.0.2", 5309, hub="hub0")
    result = cli("keys", "revoke", "web1", "--mongo", standin_set.uri)
    assert result.exit_code == 1 and "2 hosts are named 'web1'" in result.output
    result = cli("keys", "revoke", "abcdef0", "--mongo", standin_set.uri)
    assert result.exit_code == 1 and "matches several keys" in result.output
    result = cli("keys", "revoke", "abcdef02", "--mongo", standin_set.uri)
    assert result.exit_code == 0, result.output
