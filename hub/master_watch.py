"""Knowing, within a second, whether this hub's mongod is primary, and who is otherwise.

The watch asks its own member `hello` four times a second over a direct connection (the
member's own word, not a heartbeat-old view) and reports every change as one sentence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pymongo
from pymongo.errors import PyMongoError

from hub.mongo import connect_member

log = logging.getLogger("hubcluster.master_watch")

POLL_SECONDS = 0.25


@dataclass(frozen=True)
class MasterState:
    is_master: bool
    primary: str | None  # the set's primary member as this hub's mongod sees it
    reachable: bool  # whether our own mongod answered

    def describe(self, me: str) -> str:
        if not self.reachable:
            return f"{me} cannot reach its own mongod; not collecting"
        if self.is_master:
            return f"{me} is primary; this hub is master and collects"
        if self.primary:
            return f"{me} is secondary; master is {self.primary}"
        return f"{me} sees no primary; nobody collects"


ChangeHandler = Callable[[MasterState, MasterState], Awaitable[None]]


class MasterWatch:
    def __init__(self, uri: str, member: str, on_change: ChangeHandler) -> None:
        self.member = member
        self.on_change = on_change
        self._client: pymongo.MongoClient = connect_member(uri, member, timeout=1.0)
        self.state = MasterState(is_master=False, primary=None, reachable=False)
        self.changed_at = time.monotonic()

    def _probe(self) -> MasterState:
        try:
            hello = self._client.admin.command("hello")
        except PyMongoError:
            return MasterState(False, None, False)
        return MasterState(bool(hello.get("isWritablePrimary")), hello.get("primary"), True)

    async def check(self) -> MasterState:
        """One look; calls `on_change(old, new)` when anything differs."""
        new = await asyncio.to_thread(self._probe)
        old = self.state
        if new != old:
            self.state = new
            self.changed_at = time.monotonic()
            log.info("%s", new.describe(self.member))
            await self.on_change(old, new)
        return new

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.check()
            try:
                await asyncio.wait_for(stop.wait(), POLL_SECONDS)
            except TimeoutError:
                pass

    def close(self) -> None:
        self._client.close()
