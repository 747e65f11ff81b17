"""asyncssh's logging costs nothing when off, and logs every line as before when on."""

from __future__ import annotations

import asyncio
import logging

import asyncssh
import pytest
from asyncssh import logging as asyncssh_logging
from asyncssh import packet as asyncssh_packet

from hubcluster import ssh_logging, ssh_options
from hubcluster.hub_session import open_hub


class Described:
    """A log argument that counts how often asyncssh turns it into text."""

    def __init__(self) -> None:
        self.times = 0

    def __str__(self) -> str:
        self.times += 1
        return "described"


@pytest.fixture
def packet_descriptions(monkeypatch):
    """How many packets asyncssh described for its log (it names each one's size)."""
    seen = []
    plural = asyncssh_packet.plural

    def counting(length: int, label: str) -> str:
        seen.append(label)
        return plural(length, label)

    monkeypatch.setattr(asyncssh_packet, "plural", counting)
    return seen


def ask_master(hubs) -> None:
    """A real hub session: the shared client options against the shared server options."""

    async def ask() -> None:
        async with open_hub(hubs.addresses[0], hubs.hub_key, hubs.hub_key, 5.0) as session:
            assert (await session.master()).hubs == hubs.addresses

    asyncio.run(ask())


def test_the_shared_options_put_the_guards_in_place():
    ssh_options.server_options(host_keys=[])
    assert asyncssh_logging.SSHLogger.log is ssh_logging._guarded_log
    assert asyncssh_packet.SSHPacketLogger.log_sent_packet is ssh_logging._guarded_sent
    assert asyncssh_packet.SSHPacketLogger.log_received_packet is ssh_logging._guarded_received


def test_a_quiet_asyncssh_describes_no_packet(make_hubs, packet_descriptions, caplog):
    caplog.set_level(logging.WARNING, logger="asyncssh")  # as hubd and client-agent run it
    ask_master(make_hubs())
    assert packet_descriptions == []


def test_asyncssh_at_debug_level_3_still_logs_every_packet(make_hubs, packet_descriptions, caplog):
    hubs = make_hubs()
    caplog.set_level(logging.DEBUG, logger="asyncssh")
    asyncssh.set_debug_level(3)
    try:
        ask_master(hubs)
    finally:
        asyncssh.set_debug_level(1)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("asyncssh")]
    assert any("Sent MSG_CHANNEL_OPEN" in line for line in lines), lines[:20]
    assert any("Received MSG_CHANNEL_DATA" in line for line in lines), lines[:20]
    assert len(packet_descriptions) >= 10


def test_log_arguments_become_text_only_for_a_logger_that_listens(caplog):
    described = Described()
    caplog.set_level(logging.WARNING, logger="asyncssh")
    asyncssh.logger.info("opening %s", [described])
    assert described.times == 0
    caplog.set_level(logging.INFO, logger="asyncssh")
    asyncssh.logger.info("opening %s", [described])
    assert described.times == 1
    assert "opening described" in caplog.messages
