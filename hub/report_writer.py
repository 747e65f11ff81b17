"""Group commit of pulled reports: many hosts' pulls share one majority write.

A majority write costs a round trip to a majority of members however many documents it
holds, so writing each host's reports on its own caps a round at one host per replication
round trip. Here a pull hands its reports over and waits; whatever pulls arrive while a
write is in flight go together in the next one (as a database's group commit does), so a
lone pull waits for nothing and a busy round writes hundreds of hosts at a time. Each
pull's future resolves only once its reports and then its cursor are on a majority.

A write that fails for any other reason than a lost role is not the group's failure: its
pulls are written again one by one, and a pull that still fails record by record, so the
one report the database refuses is quarantined with the database's reason and the rest of
the group, and of that host, is stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable

from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    NotPrimaryError,
    ServerSelectionTimeoutError,
    WriteConcernError,
)

from hub.store import HubStore, Pull, StaleTerm

log = logging.getLogger("hubcluster.collector")


class Deposed(Exception):
    """This hub may no longer write: it is not primary, or a majority cannot acknowledge."""


def is_deposing(exc: BaseException) -> bool:
    if isinstance(exc, NotPrimaryError | WriteConcernError | ServerSelectionTimeoutError):
        return True
    if isinstance(exc, StaleTerm):
        return True  # a master of a newer election has collected: the fencing token
    if isinstance(exc, BulkWriteError):
        return bool(exc.details.get("writeConcernErrors"))
    return isinstance(exc, AutoReconnect)


# Bounds one write's size so it stays well inside the majority wtimeout; at a few KB per
# report this is a few MB, far below a bulk write's own limits.
GROUP_REPORTS = 2000


class ReportWriter:
    """Collects pulls from concurrent tasks and writes them in as few bulk writes as it can."""

    def __init__(
        self,
        store: HubStore,
        hub: str,
        is_master: Callable[[], bool],
        max_reports: int = GROUP_REPORTS,
    ) -> None:
        self.store = store
        self.hub = hub
        self.is_master = is_master
        self.max_reports = max_reports
        self._pending: list[tuple[Pull, asyncio.Future[int]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.writes = 0
        # Told each reason the database refused a report for (the collector counts it).
        self.on_quarantine: Callable[[str], None] | None = None

    async def write(self, pull: Pull) -> int:
        """Store one host's pull; returns how many of its reports were new."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((pull, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        # Let pulls that are already runnable join the first write too.
        await asyncio.sleep(0)
        while self._pending:
            group = self._take()
            live = [(p, f) for p, f in group if not f.done()]  # a cancelled pull writes nothing
            if not live:
                continue
            try:
                if not self.is_master():
                    # The master watch can know before the database refuses; trust it first.
                    raise Deposed("this hub is no longer master")
                counts = await asyncio.to_thread(self._store_group, [p for p, _ in live])
            except Exception as exc:  # noqa: BLE001 - every waiting pull gets the error
                if is_deposing(exc):
                    exc = Deposed(f"{type(exc).__name__}: {exc}")
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.writes += 1
            for (_, future), count in zip(live, counts, strict=True):
                if not future.done():
                    future.set_result(count)

    def _store_group(self, pulls: list[Pull]) -> list[int]:
        try:
            return self.store.store_pulls(pulls, self.hub)
        except Exception as exc:
            if is_deposing(exc):
                raise
            log.warning("a group write failed (%s); writing its %d pulls alone", exc, len(pulls))
        return [self._store_alone(p) for p in pulls]

    def _store_alone(self, pull: Pull) -> int:
        try:
            return self.store.store_pulls([pull], self.hub)[0]
        except Exception as exc:
            if is_deposing(exc):
                raise
        stored, restarted = 0, pull.restarted_from
        for record in pull.records:
            one = dataclasses.replace(
                pull, records=[record], rejected=[], newest=record["seq"], restarted_from=restarted
            )
            try:
                stored += self.store.store_pulls([one], self.hub)[0]
            except Exception as exc:
                if is_deposing(exc):
                    raise
                reason = f"the database refused it: {type(exc).__name__}: {str(exc)[:200]}"
                log.warning(
                    "quarantined report %d of %s: %s", record["seq"], pull.host[:12], reason
                )
                bad = {"seq": record["seq"], "reason": reason, "raw": ""}
                one = dataclasses.replace(one, records=[], rejected=[bad])
                self.store.store_pulls([one], self.hub)
                if self.on_quarantine is not None:
                    self.on_quarantine(reason)
            restarted = None
        rest = dataclasses.replace(pull, records=[], restarted_from=restarted)
        self.store.store_pulls([rest], self.hub)
        return stored

    def _take(self) -> list[tuple[Pull, asyncio.Future[int]]]:
        taken, reports = 0, 0
        for pull, _ in self._pending:
            size = len(pull.records) + len(pull.rejected)
            if taken and reports + size > self.max_reports:
                break
            taken += 1
            reports += size
        group, self._pending = self._pending[:taken], self._pending[taken:]
        return group
