"""Keeping hubd's long-running parts alive, and saying so when one of them was not.

A hub that keeps running while one of its loops has died (a frozen role, no more syncs) is
worse than a hub that crashed: nothing restarts it and nobody is told. The supervisor owns
every long-running part of hubd:

- loops (the master watch, the SSH service) run as tasks it restarts when they end or
  raise, and when their heartbeat stops for `stall_after` seconds (a stalled loop is
  cancelled first);
- periodic jobs (a collection round, peer sync, state, buffered writes) run inside
  `guarded`, which logs any exception with its traceback and lets the next run happen; a job
  that has not started for several of its intervals is reported and started again;
- the event loop itself: a supervisor tick that comes late means something blocked the loop.

Everything that went wrong in the last `REMEMBER_SECONDS` is a problem: one sentence each,
published in the hub's state doc, which `hubctl status` and `hubctl check` (CRITICAL) show.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("hubcluster.supervisor")

CHECK_SECONDS = 1.0
# A problem stays on the hub's record this long after it last happened, so an operator who
# runs `hubctl check` every few minutes still sees a restart that happened in between.
REMEMBER_SECONDS = 600.0
# A supervisor tick this late means the event loop was blocked (a blocking call on it); high
# enough that a busy host's scheduling jitter is not mistaken for one.
LOOP_LAG_SECONDS = 5.0
# A scheduled job whose next start is this many intervals late is stalled.
JOB_STALL_INTERVALS = 4


@dataclass
class Part:
    """One supervised part and what has happened to it."""

    name: str
    restarts: int = 0
    failures: int = 0
    problem: str | None = None  # the latest thing that went wrong, in words
    problem_at: float = 0.0  # monotonic time of it
    heartbeat: float = field(default_factory=time.monotonic)

    def report(self, now: float) -> dict[str, Any]:
        recent = self.problem if now - self.problem_at <= REMEMBER_SECONDS else None
        return {
            "restarts": self.restarts,
            "failures": self.failures,
            "problem": recent,
            "problem_age": round(now - self.problem_at, 1) if recent else None,
        }


@dataclass
class _Loop:
    part: Part
    start: Callable[[], Coroutine[Any, Any, None]]
    heartbeat: Callable[[], float] | None
    stall_after: float | None
    task: asyncio.Task | None = None


@dataclass
class _Job:
    part: Part
    interval: float
    restart: Callable[[], None]
    running: bool = False


class Supervisor:
    def __init__(
        self, hub: str, check_every: float = CHECK_SECONDS, lag_limit: float = LOOP_LAG_SECONDS
    ) -> None:
        self.hub = hub
        self.check_every = check_every
        self.lag_limit = lag_limit
        self.parts: dict[str, Part] = {}
        self._loops: list[_Loop] = []
        self._jobs: dict[str, _Job] = {}
        self._started = False

    # ----- registering parts ------------------------------------------------------------
    def _part(self, name: str) -> Part:
        return self.parts.setdefault(name, Part(name))

    def keep_running(
        self,
        name: str,
        start: Callable[[], Coroutine[Any, Any, None]],
        heartbeat: Callable[[], float] | None = None,
        stall_after: float | None = None,
    ) -> None:
        """Run `start()` as a task from `run()` on, again whenever it ends or stalls."""
        loop = _Loop(self._part(name), start, heartbeat, stall_after)
        self._loops.append(loop)
        if self._started:
            self._start(loop)

    def guarded(
        self, name: str, job: Callable[[], Awaitable[None]], interval: float
    ) -> Callable[[], Awaitable[None]]:
        """`job` for a scheduler: exceptions logged with traceback and recorded, never raised."""
        entry = _Job(self._part(name), interval, lambda: None)
        self._jobs[name] = entry

        async def run() -> None:
            entry.part.heartbeat = time.monotonic()
            entry.running = True
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error(
                    "%s: %s failed (%s); it runs again at its next time",
                    self.hub,
                    name,
                    _words(exc),
                    exc_info=exc,
                )
                self._problem(entry.part, f"{name} failed: {_words(exc)}")
            finally:
                entry.running = False
                entry.part.heartbeat = time.monotonic()

        return run

    def on_stall(self, name: str, restart: Callable[[], None]) -> None:
        """How to start a guarded job again when it stalls (e.g. move its next run to now)."""
        self._jobs[name].restart = restart

    # ----- reporting --------------------------------------------------------------------
    def _problem(self, part: Part, words: str) -> None:
        part.failures += 1
        part.problem = words
        part.problem_at = time.monotonic()

    def note(self, name: str, words: str) -> None:
        """Record a problem found by someone else (e.g. rounds that keep overrunning)."""
        self._problem(self._part(name), words)

    def problems(self) -> list[str]:
        """One sentence per part with a recent problem, for the hub's state doc."""
        now = time.monotonic()
        found = []
        for part in self.parts.values():
            if part.problem and now - part.problem_at <= REMEMBER_SECONDS:
                found.append(f"{part.problem} ({now - part.problem_at:.0f}s ago)")
        return found

    def report(self) -> dict[str, Any]:
        now = time.monotonic()
        return {name: part.report(now) for name, part in self.parts.items()}

    # ----- running ----------------------------------------------------------------------
    def _start(self, loop: _Loop) -> None:
        loop.part.heartbeat = time.monotonic()
        loop.task = asyncio.get_running_loop().create_task(loop.start(), name=loop.part.name)

    async def run(self, stop: asyncio.Event) -> None:
        """Start every loop, and look after them until `stop`; then cancel them all."""
        self._started = True
        for loop in self._loops:
            self._start(loop)
        try:
            expected = time.monotonic() + self.check_every
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.check_every)
                if stop.is_set():
                    break  # loops that see `stop` end by themselves: no restart, no problem
                late = time.monotonic() - expected
                if late > self.lag_limit:
                    log.error("%s: the event loop was blocked for %.1fs", self.hub, late)
                    self.note("event loop", f"the event loop was blocked for {late:.1f}s")
                self.check()
                expected = time.monotonic() + self.check_every
        finally:
            tasks = [loop.task for loop in self._loops if loop.task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def check(self) -> None:
        """One look at every part; restarts what ended or stalled."""
        now = time.monotonic()
        for loop in self._loops:
            task, part = loop.task, loop.part
            if task is None:
                continue
            if task.done():
                exc = None if task.cancelled() else task.exception()
                how = f"raised {_words(exc)}" if exc else "ended"
                log.error("%s: %s %s; restarting it", self.hub, part.name, how, exc_info=exc)
                self._problem(part, f"{part.name} {how}; restarted")
            elif loop.heartbeat is not None and loop.stall_after is not None:
                silent = now - max(loop.heartbeat(), part.heartbeat)
                if silent <= loop.stall_after:
                    continue
                log.error(
                    "%s: %s stalled: no sign of life for %.1fs (expected within %.1fs); "
                    "restarting it",
                    self.hub,
                    part.name,
                    silent,
                    loop.stall_after,
                )
                self._problem(part, f"{part.name} stalled for {silent:.0f}s; restarted")
                task.cancel()
            else:
                continue
            part.restarts += 1
            self._start(loop)
        for name, job in self._jobs.items():
            late = now - job.part.heartbeat - job.interval
            if job.running or late <= (JOB_STALL_INTERVALS - 1) * job.interval:
                continue
            log.error(
                "%s: %s has not run for %.1fs (every %.1fs); starting it now",
                self.hub,
                name,
                now - job.part.heartbeat,
                job.interval,
            )
            self._problem(job.part, f"{name} did not run for {now - job.part.heartbeat:.0f}s")
            job.part.restarts += 1
            job.part.heartbeat = now
            job.restart()


def _words(exc: BaseException | None) -> str:
    if exc is None:
        return "nothing"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# Rounds overrunning their interval this many times in a row are worth an operator's look.
OVERRUNS_WARN = 3


def published_problems(name: str, state: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(critical, warning) sentences from one hub's state doc, for status and check.

    Critical: a part of hubd that died, stalled or failed recently (what `problems()`
    published). Warning: collection rounds that keep taking longer than their interval.
    """
    critical = [f"{name}: {p}" for p in state.get("problems") or []]
    warning = []
    overruns = state.get("round_overruns") or {}
    in_a_row = int(overruns.get("in_a_row") or 0)
    if in_a_row >= OVERRUNS_WARN:
        warning.append(
            f"{name}: rounds keep overrunning ({in_a_row} in a row, the last took "
            f"{float(overruns.get('last_seconds') or 0):.1f} s for a "
            f"{float(overruns.get('interval') or 0):g} s interval)"
        )
    return critical, warning
