"""Unauthenticated connections are capped per source and in total (issue 19 s2).

Floods of TCP connections that never send a byte, each from its own loopback address, at
the real hub SSH service: past the caps new ones are dropped at once, and a peer from
another address still gets in and is answered.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import ExitStack

from hubcluster.hub_session import HubUnreachable, open_hub
from hubcluster.ssh_admission import MAX_UNAUTHENTICATED, MAX_UNAUTHENTICATED_PER_SOURCE
from tests.sshsvc.flood import half_open, sort_out


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def ask_master(hubs) -> list[str]:
    async def ask() -> list[str]:
        async with open_hub(hubs.addresses[0], hubs.hub_key, hubs.hub_key, 5.0) as session:
            return (await session.master()).hubs

    return asyncio.run(ask())


def test_a_flood_from_one_address_does_not_shut_out_the_others(make_hubs):
    hubs = make_hubs()
    flood = 3 * MAX_UNAUTHENTICATED_PER_SOURCE
    with half_open(port_of(hubs.addresses[0]), "127.0.0.3", flood) as socks:
        greeted, dropped = sort_out(socks)
        assert (greeted, dropped) == (
            MAX_UNAUTHENTICATED_PER_SOURCE,
            flood - MAX_UNAUTHENTICATED_PER_SOURCE,
        )
        # The flood still holds its slots (the login grace time has not run out), yet a peer
        # from 127.0.0.1 authenticates and is answered.
        assert ask_master(hubs) == hubs.addresses


def test_the_total_cap_holds_across_sources_and_slots_come_back(make_hubs):
    hubs = make_hubs()
    port = port_of(hubs.addresses[0])
    sources = MAX_UNAUTHENTICATED // MAX_UNAUTHENTICATED_PER_SOURCE + 1
    with ExitStack() as floods:
        for n in range(1, sources + 1):
            socks = floods.enter_context(
                half_open(port, f"127.0.1.{n}", MAX_UNAUTHENTICATED_PER_SOURCE)
            )
            greeted, dropped = sort_out(socks)
            # Every source is under its own cap; the last one finds the total reached.
            expected = MAX_UNAUTHENTICATED_PER_SOURCE if n < sources else 0
            assert (greeted, dropped) == (expected, MAX_UNAUTHENTICATED_PER_SOURCE - expected), n
    # The flood gone (the server hears of it within moments), its slots are free again.
    deadline = time.monotonic() + 5
    while True:
        try:
            assert ask_master(hubs) == hubs.addresses
            break
        except HubUnreachable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
