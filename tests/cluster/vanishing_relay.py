"""A TCP relay on loopback in front of a report service that can 'reboot' its host.

`vanish()` plays a client that rebooted without a word: the relayed connections stay open
on the collector's side (no FIN, as nothing is left to send one), and the first bytes the
collector sends on one are answered with a reset. New connections are relayed again.
"""

from __future__ import annotations

import asyncio
import contextlib


class _Link(asyncio.Protocol):
    def __init__(self, relay: VanishingRelay) -> None:
        self.relay = relay
        self.transport: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.vanished = False
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.relay.links.append(self)
        asyncio.get_running_loop().create_task(self._open_upstream())

    async def _open_upstream(self) -> None:
        loop = asyncio.get_running_loop()
        link = self

        class Back(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                if not link.vanished and link.transport is not None:
                    link.transport.write(data)

            def connection_lost(self, exc: Exception | None) -> None:
                if not link.vanished and link.transport is not None:
                    link.transport.close()

        transport, _ = await loop.create_connection(Back, "127.0.0.1", self.relay.target)
        self.upstream = transport
        for data in self.pending:
            transport.write(data)
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        if self.vanished:
            assert self.transport is not None
            self.transport.abort()  # a reset: the host that had this connection is gone
        elif self.upstream is None:
            self.pending.append(data)
        else:
            self.upstream.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.close()


class VanishingRelay:
    def __init__(self, target: int) -> None:
        self.target = target
        self.links: list[_Link] = []
        self.gone: list[_Link] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Link(self), "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    def vanish(self) -> None:
        for link in self.links:
            link.vanished = True
            if link.upstream is not None:
                link.upstream.close()
        self.gone.extend(self.links)
        self.links = []

    async def close(self) -> None:
        for link in self.links + self.gone:
            if link.transport is not None:
                link.transport.close()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
