"""Keys converge across three hub services over real SSH, revocations winning everywhere."""

from __future__ import annotations

import asyncio
import json
import logging

import asyncssh
import pytest

from hub import ssh_service
from hub.ssh_auth import Role
from hubcluster.hub_session import HubRefused, open_hub
from hubcluster.keys import key_sha, ppkey_filename
from hubcluster.messages import KeysReply, MessageError
from tests.peersync.peers import sync


def new_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


async def run(address: str, key, hub_key, command: str):
    async with open_hub(address, key, hub_key, 5.0) as session:
        return await session.conn.run(command, check=False, timeout=10)


def test_keys_converge_and_a_revocation_wins_over_copies_elsewhere(make_hubs):
    hubs = make_hubs(3)
    a, b, bad = new_key(), new_key(), new_key()
    hubs.keystore(0).add(a)
    hubs.keystore(1).add(b)
    hubs.keystore(0).add(bad)
    hubs.keystore(2).add(bad)
    # hub1 never had `bad`, but its operator revoked it: the tombstone must win on 0 and 2.
    hubs.keystore(1).revoke(key_sha(bad), "stolen laptop")

    first = sync(hubs, 0)
    assert sorted(first.peers_reached) == sorted(hubs.addresses[1:]) and not first.peers_failed
    assert (first.keys_added, first.keys_revoked, first.keys_refused) == (1, 1, 0)
    sync(hubs, 1)
    sync(hubs, 2)

    want = {key_sha(a), key_sha(b)}
    for i in range(3):
        store = hubs.keystore(i)
        assert set(store.keys()) == want, f"hub{i}"
        assert store.revoked() == {key_sha(bad)}, f"hub{i}"
        assert store.tombstones()[key_sha(bad)]["reason"] == "stolen laptop"
    # The time of the original revocation travels with it.
    times = {hubs.keystore(i).tombstones()[key_sha(bad)]["time"] for i in range(3)}
    assert len(times) == 1

    again = sync(hubs, 0)
    assert (again.keys_added, again.keys_revoked) == (0, 0)

    # The revoked client is refused by the hub that held its key before the sync.
    with pytest.raises(HubRefused, match="refused this client's key"):
        asyncio.run(run(hubs.addresses[2], bad, hubs.hub_key, "master"))
    result = asyncio.run(run(hubs.addresses[2], a, hubs.hub_key, "master"))
    assert result.exit_status == 0, result.stderr


def test_a_forged_key_is_refused_and_logged(make_hubs, monkeypatch, caplog):
    hubs = make_hubs(2)
    real, other = new_key(), new_key()
    # On disk at hub1: a file named for `real` holding `other` (a key posing as another).
    forged = hubs.keystore(1).directory / ppkey_filename(key_sha(real))
    forged.write_bytes(other.export_public_key())
    result = sync(hubs, 0)
    assert result.keys_added == 0 and hubs.keystore(0).keys() == {}

    # A peer that sends the forgery anyway (an older or broken hub) is refused per key.
    good = new_key()

    async def forged_keys(service, identity, process, args):
        keys = {
            key_sha(real): other.export_public_key().decode().strip(),
            key_sha(good): good.export_public_key().decode().strip(),
        }
        return json.dumps({"keys": keys, "revoked": {}})

    monkeypatch.setitem(ssh_service.COMMANDS[Role.PEER], "keys", forged_keys)
    with caplog.at_level(logging.WARNING, logger="hubcluster.peersync"):
        result = sync(hubs, 0)
    assert (result.keys_added, result.keys_refused) == (1, 1)
    assert set(hubs.keystore(0).keys()) == {key_sha(good)}
    assert (
        f"refused {key_sha(real)}" in caplog.text and f"hashes to {key_sha(other)}" in caplog.text
    )


def test_an_unreachable_peer_is_reported_and_the_others_still_sync(make_hubs):
    hubs = make_hubs(3)
    key = new_key()
    hubs.keystore(1).add(key)
    hubs.stop(2)
    result = sync(hubs, 0, master=2)
    assert result.peers_reached == [hubs.addresses[1]]
    assert list(result.peers_failed) == [hubs.addresses[2]]
    assert "connection refused" in result.peers_failed[hubs.addresses[2]]
    assert result.mirror_failed and "master is unreachable" in result.mirror
    assert result.keys_added == 1 and hubs.keystore(0).is_known(key_sha(key))
    assert "1/2 peers reached" in result.summary()


def test_peer_commands_are_for_peers_only_and_answers_are_checked(make_hubs):
    hubs = make_hubs()
    client = new_key()
    hubs.keystore().add(client)
    address = hubs.addresses[0]
    for command in ("keys", "masterfiles"):
        result = asyncio.run(run(address, client, hubs.hub_key, command))
        assert result.exit_status == 1 and "not allowed for client keys" in result.stderr
    result = asyncio.run(run(address, hubs.hub_key, hubs.hub_key, "keys please"))
    assert result.exit_status == 2 and "keys takes no arguments" in result.stderr
    result = asyncio.run(run(address, hubs.hub_key, hubs.hub_key, "keys"))
    assert KeysReply.from_json(result.stdout).keys == {
        key_sha(client): client.export_public_key().decode().strip()
    }

    sha = "ab" * 32
    for bad, problem in [
        ('{"keys": {}}', "missing revoked"),
        ('{"keys": {"xyz": "ssh-ed25519 AAAA"}, "revoked": {}}', "'xyz' is not a hex SHA-256"),
        (f'{{"keys": {{"{sha}": 5}}, "revoked": {{}}}}', "expected an OpenSSH public key line"),
        (f'{{"keys": {{}}, "revoked": {{"{sha}": {{"time": "t"}}}}}}', "missing reason"),
    ]:
        with pytest.raises(MessageError, match=problem):
            KeysReply.from_json(bad)
