"""Every read a hub makes from the network has a bound; past it, one clean refusal."""

from __future__ import annotations

import asyncio
import json

import asyncssh
import pytest

from hub import peer_sync
from hubcluster.hub_session import HubBadAnswer, open_hub
from tests.peersync.peers import sync


def new_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


async def run(address, key, hub_key, command, stdin=None):
    async with open_hub(address, key, hub_key, 5.0) as session:
        return await session.conn.run(command, input=stdin, check=False, timeout=10)


def test_registration_requests_over_64_kib_are_refused_on_either_channel(make_hubs):
    hubs = make_hubs()
    big = json.dumps({"hostname": "web1", "report_port": 5309, "pad": "x" * 70_000})
    for command, stdin in (("register " + big, None), ("register", big)):
        result = asyncio.run(run(hubs.addresses[0], new_key(), hubs.hub_key, command, stdin))
        assert result.exit_status == 2, result.stderr
        assert result.stderr.strip() == "request too large (over 65536 bytes)"
    assert hubs.registered == []
    # and a hub that refused goes on serving
    ok = json.dumps({"hostname": "web1", "report_port": 5309})
    result = asyncio.run(run(hubs.addresses[0], new_key(), hubs.hub_key, "register " + ok))
    assert result.exit_status == 0, result.stderr


def test_a_peer_answer_over_its_bound_is_refused_and_the_others_still_sync(make_hubs, monkeypatch):
    hubs = make_hubs(3)
    for _ in range(20):  # hub1's `keys` answer: about 4 KiB
        hubs.keystore(1).add(new_key())
    hubs.keystore(2).add(new_key())
    monkeypatch.setattr(peer_sync, "KEYS_ANSWER_MAX_BYTES", 2048)
    result = sync(hubs, 0, master=None)
    assert list(result.peers_failed) == [hubs.addresses[1]]
    assert result.peers_failed[hubs.addresses[1]] == (
        f"hub {hubs.addresses[1]}: keys: answer over 2048 bytes; refused"
    )
    assert result.peers_reached == [hubs.addresses[2]] and result.keys_added == 1


def test_a_hub_answer_over_the_session_bound_is_refused(make_hubs):
    hubs = make_hubs(2)
    for _ in range(10):
        hubs.keystore(1).add(new_key())

    async def ask() -> str:
        async with open_hub(hubs.addresses[1], hubs.hub_key, hubs.hub_key, 5.0) as session:
            return await session.run("keys", max_bytes=512)

    with pytest.raises(HubBadAnswer, match="keys: answer over 512 bytes; refused"):
        asyncio.run(ask())
