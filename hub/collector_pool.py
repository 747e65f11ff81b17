"""The master's collector on every core: hosts spread over worker processes.

hubd keeps what makes a round one round: it reads the hosts and cursors, takes the election
term (the fencing token), chooses the due hosts, and merges the workers' figures into one
round summary, one set of metrics and one progress figure. The pulls and their writes run
in `[collector] workers` processes (hub.collector_worker), each with its own SSH
connections and its own fenced, grouped majority writes through the hub's own member.

A host always goes to the worker its key hashes to (`worker_of`), so its SSH connection
stays open in one process across rounds. The guarantees are the single collector's,
held by each worker: reports are idempotent upserts, a cursor moves only after its
reports are on a majority, and every write carries the term and is refused under a
stale one. When hubd sees the role lost (its round is cancelled, the master watch says so,
or one worker was deposed), it tells every worker to stop writing at once.

Why 'spawn' processes: hubd runs an asyncio loop and threads (the master watch's probes,
pymongo's monitors, writer threads), and a fork would copy their locks held mid-operation
into a child that never releases them; 'forkserver' would start clean too, but its server
is itself forked from hubd. A spawned worker starts from a fresh interpreter and is given
everything it needs explicitly (hub.collector_worker.WorkerSpec), including the database
identity, which it would not inherit. A worker that dies is logged in one line and
started again for the next round; what it was pulling is collected then, exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import math
import multiprocessing
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from typing import Any

import asyncssh

from hub.collector import Collector, KeyLookup, RoundFigures
from hub.collector_worker import WorkerResult, WorkerSpec, worker_main
from hub.config import CollectorSettings
from hub.store import HubStore

log = logging.getLogger("hubcluster.collector")

POLL_SECONDS = 0.05
# How long a worker told to stop writing may take to answer before it is killed.
STOP_GRACE_SECONDS = 10.0


def worker_of(host: str, workers: int) -> int:
    """The worker that collects `host`: a stable hash of its key (never Python's hash(),
    which differs per process), so each host's connection lives in one worker."""
    digest = hashlib.blake2b(host.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % workers


def _log_levels() -> dict[str, int]:
    """hubd's logging levels now, for a worker's records to be made as hubd's would be."""
    names = ("", "hubcluster", "asyncssh")
    return {name: logging.getLogger(name or None).getEffectiveLevel() for name in names}


class WorkerStopped(Exception):
    """A worker process ended without answering."""


def _how_it_ended(code: int | None) -> str:
    if code is None:
        return "did not end"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


class _Worker:
    """hubd's side of one worker process: its pipe, its process, its round in hand."""

    def __init__(self, index: int, spec: WorkerSpec) -> None:
        self.index = index
        self.spec = spec
        self.proc: SpawnProcess | None = None
        self.conn: Connection | None = None
        self.round_id = 0
        self.done = 0
        self.answer: asyncio.Future[WorkerResult] | None = None
        self.ready: asyncio.Future[None] | None = None
        self.restarts = 0
        self._sending = threading.Lock()  # one message at a time on the pipe

    @property
    def alive(self) -> bool:
        return self.conn is not None

    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe(duplex=True)
        spec = dataclasses.replace(self.spec, log_levels=_log_levels())
        self.proc = ctx.Process(
            target=worker_main,
            args=(spec, theirs),
            name=f"{self.spec.hub}-collector-{self.index}",
            daemon=True,  # ends with hubd, whatever way hubd ends
        )
        self.proc.start()
        theirs.close()  # so that the worker's death shows here as EOF
        self.conn = ours
        loop = asyncio.get_running_loop()
        self.ready = loop.create_future()
        loop.add_reader(ours.fileno(), self._readable)

    async def begin(
        self, round_id: int, term: int | None, hosts: list[dict], cursors: dict
    ) -> None:
        self.round_id, self.done = round_id, 0
        self.answer = asyncio.get_running_loop().create_future()
        # Thousands of hosts make megabytes: sent from a thread, so that hubd's loop goes on
        # reading what the worker sends meanwhile (neither side may wait on the other).
        message = ("round", round_id, term, hosts, cursors)
        if not await asyncio.to_thread(self._send, message):
            self._ended()

    def send(self, message: tuple[Any, ...]) -> None:
        if not self._send(message):
            self._ended()

    def _send(self, message: tuple[Any, ...]) -> bool:
        conn = self.conn
        if conn is None:
            return True
        try:
            with self._sending:
                conn.send(message)
        except OSError:
            return False
        return True

    def stop_writing(self) -> None:
        if self.answer is not None and not self.answer.done():
            self.send(("stop-writing", self.round_id))

    def _readable(self) -> None:
        assert self.conn is not None
        try:
            message = self.conn.recv()
        except (EOFError, OSError):
            self._ended()
            return
        kind = message[0]
        if kind == "log":
            record = logging.makeLogRecord(message[1])
            logger = logging.getLogger(record.name)
            if logger.isEnabledFor(record.levelno):
                logger.handle(record)
        elif kind == "ready":
            if self.ready is not None and not self.ready.done():
                self.ready.set_result(None)
        elif kind == "progress" and message[1] == self.round_id:
            self.done = message[2]
        elif kind == "done" and message[1] == self.round_id:
            if self.answer is not None and not self.answer.done():
                self.answer.set_result(message[2])
        # A late answer for a round hubd gave up on is dropped: its writes were fenced.

    def _ended(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        asyncio.get_running_loop().remove_reader(conn.fileno())
        conn.close()
        assert self.proc is not None
        self.proc.join(timeout=1.0)  # it closed its pipe: it is ending or has ended
        how = _how_it_ended(self.proc.exitcode)
        log.error(
            "collector worker %d of %s stopped (%s); it is started again for the next round",
            self.index,
            self.spec.hub,
            how,
        )
        stopped = WorkerStopped(f"its collector worker stopped ({how})")
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(stopped)
        if self.ready is not None and not self.ready.done():
            self.ready.set_exception(stopped)
            self.ready.exception()  # said above, in one line

    async def settle(self) -> None:
        """Wait for an answer to a round hubd gave up on; kill a worker that gives none."""
        if self.answer is None:
            return
        if self.answer.done():
            if not self.answer.cancelled():
                self.answer.exception()  # seen (and said in one line when it ended)
            return
        self.stop_writing()
        try:
            await asyncio.wait_for(asyncio.shield(self.answer), STOP_GRACE_SECONDS)
        except TimeoutError:
            log.error(
                "collector worker %d of %s did not stop writing within %gs; killing it",
                self.index,
                self.spec.hub,
                STOP_GRACE_SECONDS,
            )
            self.kill()
        except Exception:  # noqa: BLE001, S110 - it ended: _ended said so in one line
            pass

    def kill(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.kill()
        self._ended()

    async def close(self) -> None:
        conn, proc, self.conn = self.conn, self.proc, None
        if conn is None or proc is None:
            return
        # Not read any more: its end of the pipe closing is now expected, not a death.
        asyncio.get_running_loop().remove_reader(conn.fileno())
        with contextlib.suppress(OSError):
            conn.send(("exit",))
        await asyncio.to_thread(proc.join, STOP_GRACE_SECONDS)
        if proc.is_alive():
            proc.kill()
            await asyncio.to_thread(proc.join, 5.0)
        conn.close()
        if self.answer is not None and not self.answer.done():
            self.answer.cancel()


class CollectorPool(Collector):
    """The collector hubd runs: the round as `Collector` has it, its pulls in workers."""

    def __init__(
        self,
        store: HubStore,
        settings: CollectorSettings,
        hub: str,
        hub_key: asyncssh.SSHKey,
        key_lookup: KeyLookup,
        is_master: Callable[[], bool],
        spec: WorkerSpec,
    ) -> None:
        super().__init__(store, settings, hub, hub_key, key_lookup, is_master)
        count = settings.workers
        # The concurrency setting bounds the master's pulls in flight, whatever the workers.
        share = dataclasses.replace(settings, concurrency=math.ceil(settings.concurrency / count))
        spec = dataclasses.replace(spec, settings=share)
        self.workers = [_Worker(i, spec) for i in range(count)]
        self._round_id = 0
        self.writes = 0  # group writes, all workers
        self.last_results: list[WorkerResult] = []  # the last round's, per worker that ran

    async def start(self) -> None:
        """Have every worker running (again, for one that stopped); then wait until they are
        ready (a round does not wait: its message waits in the pipe)."""
        await self._ensure_workers()
        for worker in self.workers:
            if worker.ready is not None:
                with contextlib.suppress(WorkerStopped):
                    await worker.ready

    async def _ensure_workers(self) -> None:
        for worker in self.workers:
            await worker.settle()
            if not worker.alive:
                if worker.proc is not None:
                    worker.restarts += 1
                try:
                    worker.start()
                except OSError as exc:  # no process to be had (limits, memory): next round
                    log.error("cannot start collector worker %d: %s", worker.index, exc)

    async def pull_due(
        self, due: list[dict[str, Any]], cursors: dict[str, dict[str, Any]], figures: RoundFigures
    ) -> None:
        self._round_id += 1
        await self._ensure_workers()
        shares: list[list[dict[str, Any]]] = [[] for _ in self.workers]
        for host in due:
            shares[worker_of(host["_id"], len(self.workers))].append(host)
        running = []
        self.last_results = []
        try:
            for worker, hosts in zip(self.workers, shares, strict=True):
                if hosts and not worker.alive:
                    for host in hosts:
                        figures.failed[host["_id"]] = "its collector worker could not start"
                elif hosts:
                    mine = {h["_id"]: cursors[h["_id"]] for h in hosts if h["_id"] in cursors}
                    await worker.begin(self._round_id, self.term, hosts, mine)
                    running.append((worker, hosts))
            await self._gather(running, figures)
        except asyncio.CancelledError:
            self._stop_writing()  # the role is lost (or hubd stops): nobody writes on
            raise

    async def _gather(
        self, running: list[tuple[_Worker, list[dict[str, Any]]]], figures: RoundFigures
    ) -> None:
        waiting = {w.answer: (w, hosts) for w, hosts in running if w.answer is not None}
        while waiting:
            done, _ = await asyncio.wait(waiting, timeout=POLL_SECONDS)
            self.progress["done"] = sum(w.done for w, _ in running)
            if not self.is_master() and figures.aborted is None:
                figures.aborted = "stopped writing: this hub is no longer master"
                self._stop_writing()
            for answer in done:
                worker, hosts = waiting.pop(answer)
                error = answer.exception()
                if error is not None:
                    for host in hosts:
                        figures.failed.setdefault(host["_id"], f"{error}; collected next round")
                    continue
                self._merge(answer.result(), figures)
                if figures.aborted is not None:
                    self._stop_writing()  # one deposed worker: the others stop at once too

    def _merge(self, result: WorkerResult, figures: RoundFigures) -> None:
        self.last_results.append(result)
        theirs = result.figures
        figures.pulled += theirs.pulled
        figures.stored += theirs.stored
        figures.rejected += theirs.rejected
        figures.failed.update(theirs.failed)
        if theirs.aborted is not None and figures.aborted is None:
            figures.aborted = theirs.aborted
        self.writes += result.writes
        self.connects += result.connects
        if self.metrics is not None:
            for seconds in result.pull_seconds:
                self.metrics.pull_seconds.observe(seconds)
            self.metrics.bytes_read.inc(result.bytes_read)
            self.metrics.quarantined_reports(result.quarantined)
            self.metrics.gaps_recorded(result.gaps)

    def _stop_writing(self) -> None:
        for worker in self.workers:
            worker.stop_writing()

    async def close(self) -> None:
        await asyncio.gather(*(w.close() for w in self.workers))
        await super().close()
