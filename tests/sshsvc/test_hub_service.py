"""The hub's SSH service over real SSH on loopback: roles, register, master, no SFTP."""

from __future__ import annotations

import asyncio
import json

import asyncssh
import pytest

from hubcluster.hub_session import HubRefused, open_hub
from hubcluster.keys import key_sha
from hubcluster.messages import MasterInfo, RegisterReply, RegisterRequest


def new_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


async def run(address: str, key, hub_key, command: str, stdin: str | None = None):
    async with open_hub(address, key, hub_key, 5.0) as session:
        return await session.conn.run(command, input=stdin, check=False, timeout=10)


def test_unknown_key_may_only_register_then_is_a_client(make_hubs):
    hubs = make_hubs()
    key = new_key()
    address = hubs.addresses[0]

    result = asyncio.run(run(address, key, hubs.hub_key, "master"))
    assert result.exit_status == 1
    assert "not allowed for unregistered keys" in result.stderr

    request = RegisterRequest("web1", 5309).to_json()
    result = asyncio.run(run(address, key, hubs.hub_key, "register", request))
    assert result.exit_status == 0, result.stderr
    reply = RegisterReply.from_json(result.stdout)
    assert reply.sha == key_sha(key) and reply.new_key and reply.address == "127.0.0.1"
    assert hubs.keystore().is_known(key_sha(key))
    [record] = hubs.registered
    assert (record.sha, record.hostname, record.report_port) == (key_sha(key), "web1", 5309)

    result = asyncio.run(run(address, key, hubs.hub_key, "master"))
    assert result.exit_status == 0, result.stderr
    info = MasterInfo.from_json(result.stdout)
    assert info.master == address and info.hubs == hubs.addresses and info.release is None
    assert hubs.contacts and hubs.contacts[-1] == (key_sha(key), "127.0.0.1")


def test_register_request_on_the_command_line_and_bad_requests(make_hubs):
    hubs = make_hubs()
    key = new_key()
    address = hubs.addresses[0]
    line = "register " + json.dumps({"hostname": "db1", "report_port": 6000})
    result = asyncio.run(run(address, key, hubs.hub_key, line))
    assert result.exit_status == 0, result.stderr
    assert hubs.registered[-1].hostname == "db1"

    for bad, problem in [
        ("register {not json", "not JSON"),
        ('register {"hostname": "x"}', "missing report_port"),
        ('register {"hostname": "x", "report_port": 70000}', "report_port"),
        ("frobnicate", "unknown command 'frobnicate'"),
        ("master now", "master takes no arguments"),
    ]:
        result = asyncio.run(run(address, key, hubs.hub_key, bad))
        assert result.exit_status == 2, (bad, result.stderr)
        assert problem in result.stderr


def test_registration_refused_outside_trust_keys_from(make_hubs):
    hubs = make_hubs(trust=("10.0.0.0/8", "192.0.2.0/24"))
    key = new_key()
    request = RegisterRequest("web1", 5309).to_json()
    result = asyncio.run(run(hubs.addresses[0], key, hubs.hub_key, "register", request))
    assert result.exit_status == 1
    assert "trust_keys_from does not include your address 127.0.0.1" in result.stderr
    assert not hubs.keystore().is_known(key_sha(key))
    assert hubs.registered == []


def test_known_key_may_update_its_record_from_anywhere(make_hubs):
    hubs = make_hubs(trust=())
    key = new_key()
    hubs.admit(key)
    request = RegisterRequest("moved", 7000).to_json()
    result = asyncio.run(run(hubs.addresses[0], key, hubs.hub_key, "register", request))
    assert result.exit_status == 0, result.stderr
    assert RegisterReply.from_json(result.stdout).new_key is False
    assert hubs.registered[-1].report_port == 7000


def test_revoked_key_is_refused_at_authentication(make_hubs):
    hubs = make_hubs()
    key = new_key()
    hubs.admit(key)
    assert hubs.keystore().revoke(key_sha(key), "stolen laptop")
    with pytest.raises(HubRefused, match="refused this client's key"):
        asyncio.run(run(hubs.addresses[0], key, hubs.hub_key, "master"))
    # A tombstone wins forever: the key cannot come back by registering.
    with pytest.raises(ValueError, match="revoked"):
        hubs.keystore().add(key)


def test_master_follows_the_provider_and_names_this_hubs_release(make_hubs):
    hubs = make_hubs(count=3)
    key = new_key()
    hubs.admit(key)
    rid = hubs.publish({"a.txt": "a"})

    async def master(i: int) -> MasterInfo:
        async with open_hub(hubs.addresses[i], key, hubs.hub_key, 5.0) as session:
            return await session.master()

    info = asyncio.run(master(1))
    assert (info.master, info.hubs, info.release) == (hubs.addresses[0], hubs.addresses, rid)
    hubs.master = 2
    assert asyncio.run(master(0)).master == hubs.addresses[2]
    hubs.master, hubs.reason = None, "no primary: election in progress"
    info = asyncio.run(master(0))
    assert info.master is None and info.reason == "no primary: election in progress"


def test_hub_key_is_a_peer(make_hubs):
    hubs = make_hubs()
    result = asyncio.run(run(hubs.addresses[0], hubs.hub_key, hubs.hub_key, "master"))
    assert result.exit_status == 0
    result = asyncio.run(run(hubs.addresses[0], hubs.hub_key, hubs.hub_key, "register {}"))
    assert result.exit_status == 1 and "not allowed for peer keys" in result.stderr
    assert hubs.contacts == []


def test_shell_and_other_subsystems_are_refused(make_hubs):
    hubs = make_hubs()
    key = new_key()
    hubs.admit(key)

    async def shell() -> asyncssh.SSHCompletedProcess:
        async with open_hub(hubs.addresses[0], key, hubs.hub_key, 5.0) as session:
            return await session.conn.run(check=False, timeout=10, input="")

    result = asyncio.run(shell())
    assert result.exit_status == 2 and "a shell is not offered" in result.stderr


# ----- no SFTP -------------------------------------------------------------------------------


def test_no_sftp_subsystem_for_anyone(make_hubs):
    """Releases travel by `release-files` only; the SFTP subsystem is not served at all."""
    hubs = make_hubs()
    hubs.publish({"a.txt": "a"})
    client = new_key()
    hubs.admit(client)

    async def try_sftp(key) -> str:
        async with open_hub(hubs.addresses[0], key, hubs.hub_key, 5.0) as session:
            try:
                await session.conn.start_sftp_client()
            except (asyncssh.Error, OSError) as exc:
                return type(exc).__name__
            return "served"

    assert asyncio.run(try_sftp(client)) != "served"
    assert asyncio.run(try_sftp(hubs.hub_key)) != "served"
