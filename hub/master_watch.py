"""Knowing, within a second, whether this hub's mongod is primary, and who is otherwise.

The watch asks its own member `hello` four times a second over a direct connection (the
member's own word, not a heartbeat-old view) and reports every change as one sentence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pymongo
from pymongo.errors import PyMongoError

from hub.mongo import connect_member

log = logging.getLogger("hubcluster.master_watch")

POLL_SECONDS = 0.25
# The same unexpected failure is logged with its traceback once a minute, not four times a second.
REPEAT_LOG_SECONDS = 60.0


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
    def __init__(
        self,
        uri: str,
        member: str,
        on_change: ChangeHandler,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self.member = member
        self.on_change = on_change
        self.on_failure = on_failure  # hears every failed look, in words (for the hub state)
        self._client: pymongo.MongoClient = connect_member(uri, member, timeout=1.0)
        # Its own thread: probes never queue behind the hub's slow writes in the default
        # executor, and a probe stuck on a hung member holds one thread, not a growing pile.
        self._probes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="master-watch")
        self.state = MasterState(is_master=False, primary=None, reachable=False)
        self.changed_at = time.monotonic()
        self.last_probe = time.monotonic()  # when a probe last finished: the watch's heartbeat
        self.last_answer = time.monotonic()  # when our own mongod last answered (metrics)
        self._last_failure: tuple[str, float] | None = None

    def _probe(self) -> MasterState:
        try:
            hello = self._client.admin.command("hello")
        except PyMongoError:
            return MasterState(False, None, False)
        return MasterState(bool(hello.get("isWritablePrimary")), hello.get("primary"), True)

    async def check(self) -> MasterState:
        """One look; calls `on_change(old, new)` when anything differs."""
        new = await asyncio.get_running_loop().run_in_executor(self._probes, self._probe)
        self.last_probe = time.monotonic()
        if new.reachable:
            self.last_answer = self.last_probe
        old = self.state
        if new != old:
            self.state = new
            self.changed_at = time.monotonic()
            log.info("%s", new.describe(self.member))
            await self.on_change(old, new)
        return new

    async def run(self, stop: asyncio.Event) -> None:
        """Look until `stop`; a failure of one look (or of `on_change`) is logged, not fatal."""
        while not stop.is_set():
            try:
                await self.check()
            except Exception as exc:
                self._log_failure(exc)
            try:
                await asyncio.wait_for(stop.wait(), POLL_SECONDS)
            except TimeoutError:
                pass

    def _log_failure(self, exc: Exception) -> None:
        what = f"{type(exc).__name__}: {exc}"
        if self.on_failure is not None:
            self.on_failure(what)
        now = time.monotonic()
        if self._last_failure is not None:
            last_what, last_time = self._last_failure
            if last_what == what and now - last_time < REPEAT_LOG_SECONDS:
                return
        self._last_failure = (what, now)
        log.error(
            "master watch of %s: a look failed (%s); watching on", self.member, what, exc_info=exc
        )

    def close(self) -> None:
        self._probes.shutdown(wait=False, cancel_futures=True)
        self._client.close()
