"""One collector worker process: pulls its share of the hosts under the term hubd gives it.

Started by hub.collector_pool with the 'spawn' context, it talks to hubd over one pipe:

    hubd -> worker: ("round", id, term, hosts, cursors)   pull these hosts under `term`
                    ("stop-writing", id)                  the role is lost: stop at once
                    ("exit",)
    worker -> hubd: ("ready",)                            started, connected, listening
                    ("log", record)                       its log records, for hubd's log
                    ("progress", id, done)                hosts done so far in round `id`
                    ("done", id, WorkerResult)

The worker has its own SSH connections (kept across rounds) and its own database client
through the hub's own member, without retries, as hubd's collector has: every write it
makes carries the term and is fenced on it (hub.store.HubStore.fence), and it writes only
while round `id` is the one hubd allows, so a "stop-writing" ends its writes before the next
group write and cancels its pulls. Losing hubd (EOF on the pipe) ends the worker.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from hub.collector import Collector, RoundFigures
from hub.config import CollectorSettings
from hub.keystore import KeyStore
from hub.mongo import connect_member, use_access
from hub.mongo_access import MongoAccess
from hub.store import HubStore
from hubcluster.keys import load_private_key

PROGRESS_SECONDS = 0.2
LOST_ROLE = "stopped writing: hubd says this hub lost the master role"


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, passed explicitly: a spawned process inherits no globals
    (not the database identity set by hub.mongo.use_access, not logging's setup)."""

    hub: str
    uri: str
    member: str
    settings: CollectorSettings
    hub_key_path: Path
    ppkeys: Path
    access: MongoAccess | None = None
    max_staleness: float = 90.0
    log_levels: dict[str, int] = field(default_factory=dict)


@dataclass
class WorkerResult:
    figures: RoundFigures
    writes: int = 0  # group writes
    connects: int = 0  # SSH connections opened this round
    cpu_seconds: float = 0.0
    pull_seconds: list[float] = field(default_factory=list)
    bytes_read: int = 0
    quarantined: list[str] = field(default_factory=list)
    gaps: int = 0


class _Durations:
    def __init__(self, into: list[float]) -> None:
        self._into = into

    def observe(self, amount: float) -> None:
        self._into.append(amount)


class _Bytes:
    def __init__(self, result: WorkerResult) -> None:
        self._result = result

    def inc(self, amount: float = 1) -> None:
        self._result.bytes_read += int(amount)


class Tally:
    """The collector's metric hooks, counted into the round's result for hubd's metrics."""

    def __init__(self, result: WorkerResult) -> None:
        self.result = result
        self.pull_seconds = _Durations(result.pull_seconds)
        self.bytes_read = _Bytes(result)

    def round_finished(self, figures: RoundFigures) -> None:
        """hubd counts the round once, with every worker's figures merged."""

    def quarantined_reports(self, reasons: Iterable[str]) -> None:
        self.result.quarantined.extend(reasons)

    def gaps_recorded(self, count: int) -> None:
        self.result.gaps += count


class _Pipe:
    """The worker's end; sends come from the loop and from logging in writer threads."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        with self._lock:
            self.conn.send(message)


class _PipeLog(logging.Handler):
    def __init__(self, pipe: _Pipe) -> None:
        super().__init__()
        self.pipe = pipe

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # As logging.handlers.QueueHandler.prepare: the text is made here, where the
            # arguments and traceback live; the extra fields travel as they are.
            message = self.format(record)
            fields = dict(record.__dict__)
            fields.update(msg=message, message=message, args=None, exc_info=None, exc_text=None)
            fields.pop("stack_info", None)
            self.pipe.send(("log", fields))
        except Exception:  # noqa: BLE001, S110 - logging must never break a pull
            pass  # hubd is gone (or the record would not pickle): nobody to tell


class _Worker:
    def __init__(self, spec: WorkerSpec, pipe: _Pipe) -> None:
        self.spec = spec
        self.pipe = pipe
        self.current = 0  # the round hubd allows this worker to write for; 0: none
        self.task: asyncio.Task[None] | None = None
        client = connect_member(spec.uri, spec.member, timeout=5.0, retryWrites=False)
        self.store = HubStore(client, spec.max_staleness)
        self.collector = Collector(
            self.store,
            spec.settings,
            spec.hub,
            load_private_key(spec.hub_key_path),
            KeyStore(spec.ppkeys).get,
            lambda: self.current != 0,
        )

    def stop_writing(self, round_id: int) -> None:
        if round_id == self.current:
            self.current = 0
            if self.task is not None and not self.task.done():
                self.task.cancel()

    async def run_round(
        self, round_id: int, term: int | None, hosts: list[dict[str, Any]], cursors: dict
    ) -> WorkerResult:
        figures = RoundFigures(hub=self.spec.hub, started=dt.datetime.now(dt.UTC))
        result = WorkerResult(figures)
        col = self.collector
        col.metrics = Tally(result)
        col.term = term
        col.progress = {"due": len(hosts), "done": 0}
        cpu, writes, connects = time.process_time(), col.writer.writes, col.connects
        self.current = round_id
        self.task = asyncio.create_task(col.pull_due(hosts, cursors, figures))
        reporting = asyncio.create_task(self._report_progress(round_id))
        try:
            await self.task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            figures.aborted = LOST_ROLE
        finally:
            reporting.cancel()
            self.current = 0
        result.writes = col.writer.writes - writes
        result.connects = col.connects - connects
        result.cpu_seconds = time.process_time() - cpu
        return result

    async def _report_progress(self, round_id: int) -> None:
        while True:
            await asyncio.sleep(PROGRESS_SECONDS)
            try:
                self.pipe.send(("progress", round_id, self.collector.progress.get("done", 0)))
            except OSError:
                return  # hubd is gone; the pipe's EOF ends the worker

    async def close(self) -> None:
        # The database client is left to the process's end: closing it waits on a member
        # that may be unreachable (that is often why the worker stops).
        await self.collector.close()


async def _serve(spec: WorkerSpec, pipe: _Pipe) -> None:
    conn = pipe.conn
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    worker = _Worker(spec, pipe)

    def readable() -> None:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            message = ("exit",)  # hubd is gone: nobody may be told what we store
        if message[0] == "stop-writing":
            worker.stop_writing(message[1])  # at once, not after the round in hand
            return
        if message[0] == "exit":
            loop.remove_reader(conn.fileno())
            worker.stop_writing(worker.current)
        inbox.put_nowait(message)

    loop.add_reader(conn.fileno(), readable)
    pipe.send(("ready",))
    try:
        while True:
            message = await inbox.get()
            if message[0] == "exit":
                return
            _, round_id, term, hosts, cursors = message
            result = await worker.run_round(round_id, term, hosts, cursors)
            try:
                pipe.send(("done", round_id, result))
            except OSError:
                return  # hubd is gone: nobody waits for the answer
    finally:
        await worker.close()


def worker_main(spec: WorkerSpec, conn: Connection) -> None:
    """The worker process's entry point (a multiprocessing target)."""
    use_access(spec.access)
    pipe = _Pipe(conn)
    root = logging.getLogger()
    root.handlers[:] = [_PipeLog(pipe)]
    for name, level in spec.log_levels.items():
        logging.getLogger(name or None).setLevel(level)
    try:
        asyncio.run(_serve_then_leave(spec, pipe))
    except KeyboardInterrupt:
        pass  # hubd's terminal sent the process group ^C; hubd stops us itself
    except Exception as exc:  # noqa: BLE001 - one line in hubd's log, not a traceback
        logging.getLogger("hubcluster.collector").error(
            "collector worker of %s cannot go on: %s: %s", spec.hub, type(exc).__name__, exc
        )
        sys.exit(1)
    finally:
        pipe.conn.close()


async def _serve_then_leave(spec: WorkerSpec, pipe: _Pipe) -> None:
    await _serve(spec, pipe)
    # Not waiting for writer threads: one stuck on an unreachable member would hold the exit
    # for its timeout. Leaving it is a crash the design survives (idempotent reports,
    # cursors after them), and nobody is told of a write not acknowledged.
    os._exit(0)
