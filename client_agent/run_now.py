"""Running the agent now, when the hub asks through the report service's `run` command.

One run at a time: a second ask while a run is going is answered "already running", so a
hub retrying, or two hubs during a failover, never stack runs on a client. The run is the
real `client-agent run` of this client's config, in its own process group, so a crash or hang
of the policy never takes the report service down. The hub's ask says how long it waits
(`run --deadline S`); the run is stopped then, with everything it started, and answered
EXIT_TIMED_OUT, never later than this client's own maximum.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Protocol

from hubcluster.run_request import (
    EXIT_BUSY,
    EXIT_TIMED_OUT,
    MAX_RUN_SECONDS,
    MAX_SUMMARY,
    RunAsk,
    RunReply,
)

log = logging.getLogger("hubcluster.agent")

# The same entry point as the installed `client-agent` script, from this interpreter.
AGENT = [sys.executable, "-c", "import sys; from client_agent.cli import main; sys.exit(main())"]


class Runner(Protocol):
    """What the report service's `run` needs: this spawner, or
    client_agent.run_handoff_runner.HandoffRunner (the root run service does the run)."""

    async def run(self, classes: tuple[str, ...], deadline: float | None = None) -> RunReply: ...


def timed_out(seconds: float, what: str) -> RunReply:
    """The answer for a run that outlived the hub's deadline (or this client's maximum)."""
    return RunReply(EXIT_TIMED_OUT, f"{what} at the {seconds:g}s deadline")


class AgentRunner:
    def __init__(self, config_args: list[str], maximum: float = MAX_RUN_SECONDS) -> None:
        self.config_args = config_args  # ["--config", PATH] or ["--workdir", DIR]
        self.maximum = maximum
        self._busy = asyncio.Lock()

    async def run(self, classes: tuple[str, ...], deadline: float | None = None) -> RunReply:
        seconds = RunAsk(classes, deadline).seconds(self.maximum)
        if self._busy.locked():
            return RunReply(EXIT_BUSY, "an agent run asked by a hub is already running")
        async with self._busy:
            defines = [w for c in classes for w in ("--define", c)]
            log.info("report service: agent run asked by the hub (classes: %s)", classes or "-")
            proc = await asyncio.create_subprocess_exec(
                *AGENT,
                "run",
                *self.config_args,
                *defines,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # its own group, never the service's (see _stop_run)
            )
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), seconds)
            except TimeoutError:
                _stop_run(proc.pid)
                await proc.wait()
                return timed_out(seconds, "stopped by the client")
            except asyncio.CancelledError:
                _stop_run(proc.pid)
                raise
            lines = out.decode("utf-8", "replace").strip().splitlines()
            summary = lines[-1] if lines else "no output"
            return RunReply(proc.returncode or 0, summary[:MAX_SUMMARY])


def _stop_run(pid: int) -> None:
    """SIGKILL the run and everything it started. A promise's command runs in a session of
    its own (the agent stops it by its group at expireafter), so the run's group is not
    enough: the run's descendants are found (through /proc) before anything is killed,
    while they are still its descendants, and each one's group goes too."""
    groups = {pid}
    for child in _descendants(pid):
        try:
            groups.add(os.getpgid(child))
        except ProcessLookupError:
            pass
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:  # no /proc: the run's own group is all that can be stopped
        return []
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
