"""The hub master's collector: pull reports from every client, store them once, move cursors.

A round: for each registered host whose lock allows it (`ifelapsed` since its last good
pull), with bounded concurrency, over an SSH connection kept from the last round (and on
its kept `reports --stream` channel: `report_stream.ReportLink`), ask the client's report
service for records after the stored cursor, store them with majority
write concern as idempotent upserts keyed by (host key, spool epoch, seq), then advance the
cursor (hosts pulled at the same time share those writes: `report_writer.py`).
Asking `--since N` is also the client's licence to prune up to N, so N only ever names
reports already stored on a majority. The first `NotWritablePrimary` or write-concern
failure ends the round at once: a deposed or isolated master must not write. The round's
pulls run in a task group: cancelling the round (the role was lost) ends them all.

A client's answer is read as a stream within a byte budget (`report_stream.py`), and every
report that cannot be stored (malformed, too large, beyond BSON's limits) is quarantined
with its reason so that the cursor passes it: one bad report never stalls its host.

In hubd the round's pulls run in worker processes, each on its share of the hosts
(`collector_pool.py`, `collector_worker.py`); each worker runs this class's `pull_due`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import asyncssh
from pymongo.errors import PyMongoError

from hub.bson_limits import storage_problem
from hub.config import CollectorSettings
from hub.events import record_event
from hub.report_records import ParsedReports, parse_report_lines
from hub.report_stream import CHUNK, ReportLink
from hub.report_writer import Deposed, ReportWriter, is_deposing
from hub.store import HubStore, Pull
from hubcluster.report_kinds import GAP
from hubcluster.reports_protocol import reports_command
from hubcluster.ssh_options import COLLECTOR_KEEPALIVE_SECONDS, client_options

log = logging.getLogger("hubcluster.collector")

KeyLookup = Callable[[str], asyncssh.SSHKey | None]


class _Observer(Protocol):
    def observe(self, amount: float) -> None: ...


class _Counter(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class CollectorMetrics(Protocol):
    """What the collector moves as figures arise: hub.metrics.HubMetrics in hubd, and a tally
    sent to hubd in a collector worker (hub.collector_worker)."""

    @property
    def pull_seconds(self) -> _Observer: ...
    @property
    def bytes_read(self) -> _Counter: ...
    def round_finished(self, figures: RoundFigures) -> None: ...
    def quarantined_reports(self, reasons: Iterable[str]) -> None: ...
    def gaps_recorded(self, count: int) -> None: ...


@dataclass
class RoundFigures:
    hub: str
    started: dt.datetime
    finished: dt.datetime | None = None
    seconds: float = 0.0
    hosts: int = 0
    pulled: int = 0
    skipped: int = 0
    stored: int = 0
    rejected: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    aborted: str | None = None

    def summary(self) -> str:
        text = (
            f"round on {self.hub}: {self.pulled}/{self.hosts} hosts pulled, {self.stored} reports "
            f"stored, {len(self.failed)} failed, {self.skipped} skipped, {self.seconds:.2f}s"
        )
        return f"{text}; aborted: {self.aborted}" if self.aborted else text

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        # Host keys hold no dots, but keep the document safe for MongoDB field names anyway.
        doc["failed"] = [{"host": h, "reason": r} for h, r in self.failed.items()]
        return doc


class Collector:
    """Collects on behalf of `hub`; one instance lives as long as hubd, across master changes."""

    def __init__(
        self,
        store: HubStore,
        settings: CollectorSettings,
        hub: str,
        hub_key: asyncssh.SSHKey,
        key_lookup: KeyLookup,
        is_master: Callable[[], bool],
    ) -> None:
        self.store = store
        self.settings = settings
        self.hub = hub
        self.hub_key = hub_key
        self.key_lookup = key_lookup
        self.is_master = is_master
        self._connections: dict[str, ReportLink] = {}
        # Ask on a kept `reports --stream` channel (False: a channel per ask, as before).
        self.streams = True
        self.last_round: RoundFigures | None = None
        self.progress: dict[str, int] = {}
        self.connects = 0  # SSH connections opened, ever (reuse shows as none opened)
        self.writer = ReportWriter(store, hub, is_master)
        self.writer.on_quarantine = self._refused_on_write
        # The election term this hub collects under (the fencing token on what it stores),
        # and the newest term seen anywhere: a round under an older one writes nothing.
        self.term: int | None = None
        self.newest_term = 0
        self.metrics: CollectorMetrics | None = None  # hubd sets its hub's (hub.metrics)

    def _refused_on_write(self, reason: str) -> None:
        """A report the database refused is quarantined like one the parser refused."""
        if self.metrics is not None:
            self.metrics.quarantined_reports([reason])

    # ----- a round ----------------------------------------------------------------------
    async def run_round(self) -> RoundFigures:
        figures = RoundFigures(hub=self.hub, started=dt.datetime.now(dt.UTC))
        t0 = time.monotonic()
        if not self.is_master():
            figures.aborted = "not master"
            return await self._finish(figures, t0, record=False)
        try:
            hosts = await asyncio.to_thread(self.store.hosts)
            cursors = await asyncio.to_thread(self.store.cursors)
        except PyMongoError as exc:
            figures.aborted = f"cannot read hosts: {exc}"
            return await self._finish(figures, t0, record=False)
        stale = await self._take_term(cursors)
        if stale:
            figures.aborted = stale
            log.warning("collector on %s writes nothing: %s", self.hub, stale)
            return await self._finish(figures, t0, record=False)
        figures.hosts = len(hosts)
        due = [h for h in hosts if self._due(cursors.get(h["_id"]), figures)]
        self.progress = {"due": len(due), "done": 0}
        await self.pull_due(due, cursors, figures)
        return await self._finish(figures, t0, record=figures.aborted is None)

    async def pull_due(
        self, due: list[dict[str, Any]], cursors: dict[str, dict[str, Any]], figures: RoundFigures
    ) -> None:
        """Pull `due` hosts under `self.term`; a lost role sets `figures.aborted`.

        (hub.collector_pool runs this in each worker process, on its share of the hosts.)
        """
        limit = asyncio.Semaphore(self.settings.concurrency)
        deposed: list[BaseException] = []
        try:
            # The group owns the pulls: a Deposed in one cancels the others, and so does
            # cancelling the round; either way no pull outlives it.
            async with asyncio.TaskGroup() as group:
                for host in due:
                    group.create_task(self._pull_bounded(limit, host, cursors, figures))
        except* Deposed as caught:
            deposed.extend(caught.exceptions)
        if deposed:
            figures.aborted = f"stopped writing: {deposed[0]}"
            log.warning("collector on %s stops at once: %s", self.hub, deposed[0])

    async def _finish(self, figures: RoundFigures, t0: float, record: bool) -> RoundFigures:
        figures.finished = dt.datetime.now(dt.UTC)
        figures.seconds = time.monotonic() - t0
        self.last_round = figures
        if figures.aborted != "not master":
            # The fields are for log_format = "json" (hubcluster.log_format); text shows the line.
            fields = {"round": figures.started.isoformat(), "hosts": figures.hosts}
            log.info("%s", figures.summary(), extra=fields)
            if self.metrics is not None:
                self.metrics.round_finished(figures)
        if record:
            try:
                # Off the event loop: a majority write can wait seconds for a slow majority.
                await asyncio.to_thread(self.store.record_round, figures.to_doc())
            except PyMongoError as exc:
                log.warning("could not record the round's figures: %s", exc)
        return figures

    async def _take_term(self, cursors: dict[str, dict[str, Any]]) -> str | None:
        """Learn the term this round collects under; say why not to collect, if so."""
        try:
            term = await asyncio.to_thread(self.store.current_term)
        except PyMongoError as exc:
            return f"cannot read the election term: {exc}"
        seen = max([int(c.get("term") or 0) for c in cursors.values()] + [self.newest_term])
        self.newest_term = max(seen, term or 0)
        if term is not None and term < seen:
            return f"its election term {term} is older than term {seen}, already seen"
        self.term = term
        return None

    def _due(self, cursor: dict[str, Any] | None, figures: RoundFigures) -> bool:
        last = (cursor or {}).get("last_pull")
        if last is None:
            return True
        if last.tzinfo is None:
            last = last.replace(tzinfo=dt.UTC)
        if (dt.datetime.now(dt.UTC) - last).total_seconds() < self.settings.ifelapsed:
            figures.skipped += 1
            return False
        return True

    async def _pull_bounded(
        self, limit: asyncio.Semaphore, host: dict, cursors: dict, figures: RoundFigures
    ) -> None:
        sha = host["_id"]
        label = f"{host.get('hostname', '?')} ({sha[:12]})"
        async with limit:
            started = dt.datetime.now(dt.UTC)
            cursor = cursors.get(sha) or {}
            since, epoch = int(cursor.get("seq", 0)), str(cursor.get("epoch", ""))
            why, stored = None, 0
            deadline = asyncio.timeout(self.settings.expireafter)
            try:
                async with deadline:
                    stored = await self._pull(host, since, epoch, started, figures)
            except Deposed:
                raise
            except TimeoutError as exc:
                if deadline.expired():
                    why = f"cancelled after expireafter {self.settings.expireafter:g}s"
                else:
                    why = _describe(exc)
            except (OSError, asyncssh.Error, ValueError) as exc:
                why = _describe(exc)
            except PyMongoError as exc:
                if is_deposing(exc):
                    raise Deposed(f"{type(exc).__name__}: {exc}") from None
                why = f"database: {exc}"
            except Exception as exc:  # noqa: BLE001 - a bug shown on one host, not the round
                log.exception("pull from %s failed unexpectedly", label)
                why = f"internal error: {type(exc).__name__}: {exc}"
            self.progress["done"] = self.progress.get("done", 0) + 1
            if self.metrics is not None:
                took = (dt.datetime.now(dt.UTC) - started).total_seconds()
                self.metrics.pull_seconds.observe(took)
            if why is not None:
                await self._drop_connection(sha)
                await self._failed(figures, sha, label, started, why)
                return
            figures.pulled += 1
            figures.stored += stored
            log.debug("pulled %s: %d new reports", label, stored)

    async def _failed(
        self, figures: RoundFigures, sha: str, label: str, when: dt.datetime, why: str
    ) -> None:
        figures.failed[sha] = why
        fields = {"round": figures.started.isoformat(), "host": sha}
        log.warning("pull from %s failed: %s", label, why, extra=fields)
        try:
            await asyncio.to_thread(self.store.mark_pull, sha, when, why)
        except PyMongoError as exc:
            if is_deposing(exc):
                raise Deposed(f"{type(exc).__name__}: {exc}") from None

    async def _pull(
        self, host: dict, since: int, epoch: str, started: dt.datetime, figures: RoundFigures
    ) -> int:
        sha = host["_id"]
        old = self._connections.get(sha)
        reused = old is not None and not old.is_closed()
        link = await self._connection(host)
        stored_total = 0
        limit = self.settings.max_report_bytes
        # What one pull may read and hold (see report_stream.py for the whole bound): a full
        # batch of reports at the size limit, plus a chunk of slack so such a batch completes.
        budget = self.settings.batch_size * (limit + 1) + CHUNK
        while True:
            # (A cursor without an epoch may talk to a client from before epochs.)
            command = reports_command(since, self.settings.batch_size, epoch)
            try:
                async with asyncio.timeout(self.settings.host_timeout):
                    answer = await link.ask(command, limit, budget)
            except _GONE:
                if not reused:
                    raise
                # Nothing probes a kept connection between rounds (no keepalive: see
                # hubcluster.ssh_options), so a client that rebooted is found out here, on
                # first use; one new connection settles it this round.
                log.debug("kept connection to %s was gone; connecting again", sha[:12])
                await self._drop_connection(sha)
                link = await self._connection(host)
                reused = False
                continue
            reused = False
            if answer.complete and answer.exit_status != 0:
                raise ValueError(f"report service said: {answer.stderr.strip()[:200]}")
            parsed = parse_report_lines(answer.lines, since, limit, epoch)
            complete = answer.complete
            if self.metrics is not None:
                self.metrics.bytes_read.inc(answer.bytes_read)
            del answer
            _quarantine_unstorable(parsed)
            if not self.is_master():
                # pymongo would retry our writes on the new primary; the role, not the
                # database, decides who collects.
                raise Deposed("this hub is no longer master")
            seqs = [r["seq"] for r in parsed.records] + [r["seq"] for r in parsed.rejected]
            restarted = epoch if parsed.epoch != epoch else None
            newest = max(seqs, default=since if restarted is None else 0)
            pull = Pull(
                sha,
                parsed.records,
                parsed.rejected,
                newest,
                started,
                parsed.epoch,
                restarted,
                self.term,
            )
            # Raises Deposed itself when the write shows this hub may no longer write.
            stored_total += await self.writer.write(pull)
            if restarted is not None and (restarted or since):
                # (A first pull, or a cursor from before epochs at 0, merely adopts it.)
                await self._spool_restarted(host, restarted, parsed.epoch)
            if self.metrics is not None:
                self.metrics.quarantined_reports(r["reason"] for r in parsed.rejected)
                self.metrics.gaps_recorded(sum(1 for r in parsed.records if r["kind"] == GAP))
            if parsed.rejected:
                figures.rejected += len(parsed.rejected)
                for bad in parsed.rejected:
                    log.warning("rejected report %d of %s: %s", bad["seq"], sha[:12], bad["reason"])
            if parsed.error:
                raise ValueError(f"malformed report after seq {newest}: {parsed.error}")
            if not complete:
                log.info(
                    "pull from %s stopped at its budget of %d bytes; the rest next round",
                    sha[:12],
                    budget,
                )
                return stored_total
            if not _more_to_ask(parsed, len(seqs), self.settings.batch_size):
                return stored_total
            since, epoch = newest, parsed.epoch

    async def _spool_restarted(self, host: dict, old: str, new: str) -> None:
        name = host.get("hostname", "?")
        message = (
            f"{name} ({host['_id'][:12]}) sends from a new spool (epoch {new}, was "
            f"{old or 'none'}): its state was lost or made anew; collecting it from its start"
        )
        log.warning("%s", message)
        await asyncio.to_thread(
            record_event, self.store.client, "spool-epoch", message, host=host["_id"], old=old
        )

    # ----- connections --------------------------------------------------------------
    async def _connection(self, host: dict) -> ReportLink:
        sha = host["_id"]
        link = self._connections.get(sha)
        if link is not None and not link.is_closed():
            return link
        key = self.key_lookup(sha)
        if key is None:
            raise ValueError("no key in ppkeys/ for this host (revoked or never registered here)")
        conn = await asyncssh.connect(
            host["address"],
            int(host["report_port"]),
            **client_options(
                client_keys=[self.hub_key],
                known_hosts=([key], [], []),
                connect_timeout=self.settings.connect_timeout,
                keepalive_interval=COLLECTOR_KEEPALIVE_SECONDS,
            ),
        )
        link = self._connections[sha] = ReportLink(conn, self.streams)
        self.connects += 1
        return link

    async def _drop_connection(self, sha: str) -> None:
        link = self._connections.pop(sha, None)
        if link is not None:
            link.close()

    async def close(self) -> None:
        for sha in list(self._connections):
            await self._drop_connection(sha)


# What a kept connection whose peer vanished fails with on first use.
_GONE = (asyncssh.ChannelOpenError, asyncssh.DisconnectError, ConnectionError)


def _more_to_ask(parsed: ParsedReports, count: int, batch_size: int) -> bool:
    """Whether to ask again at once: a full batch came, cleanly, and more may follow."""
    return count >= batch_size and parsed.error is None


def _quarantine_unstorable(parsed: ParsedReports) -> None:
    """Move records that MongoDB would refuse to the rejected ones (seq order is not needed)."""
    keep = []
    for record in parsed.records:
        problem = storage_problem(record, record["seq"] in parsed.plain)
        if problem is None:
            keep.append(record)
        else:
            parsed.rejected.append({"seq": record["seq"], "reason": problem, "raw": ""})
    parsed.records = keep
    for bad in parsed.rejected:
        # Evidence must be storable too: no lone surrogates from invalid UTF-8.
        bad["raw"] = bad["raw"].encode("utf-8", "backslashreplace").decode("utf-8")[:4096]
        bad["reason"] = bad["reason"].encode("utf-8", "backslashreplace").decode("utf-8")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return f"host key does not match ppkeys/ ({exc.reason})"
    if isinstance(exc, asyncssh.PermissionDenied):
        return "the report service refused the hub key"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, ValueError) else f"{type(exc).__name__}: {text}"
