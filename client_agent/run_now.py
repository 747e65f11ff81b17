"""Running the agent now, when the hub asks through the report service's `run` command.

One run at a time: a second ask while a run is going is answered "already running", so a
hub retrying, or two hubs during a failover, never stack runs on a client. The run is the
real `client-agent run` of this client's config, in its own process, so a crash or hang of
the policy never takes the report service down; it is killed after `timeout`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Protocol

from hubcluster.run_request import EXIT_BUSY, MAX_SUMMARY, RunReply

log = logging.getLogger("hubcluster.agent")

# The same entry point as the installed `client-agent` script, from this interpreter.
AGENT = [sys.executable, "-c", "import sys; from client_agent.cli import main; sys.exit(main())"]
RUN_TIMEOUT = 600.0


class Runner(Protocol):
    """What the report service's `run` needs: this spawner, or
    client_agent.run_handoff_runner.HandoffRunner (the root run service does the run)."""

    async def run(self, classes: tuple[str, ...]) -> RunReply: ...


class AgentRunner:
    def __init__(self, config_args: list[str], timeout: float = RUN_TIMEOUT) -> None:
        self.config_args = config_args  # ["--config", PATH] or ["--workdir", DIR]
        self.timeout = timeout
        self._busy = asyncio.Lock()

    async def run(self, classes: tuple[str, ...]) -> RunReply:
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
            )
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), self.timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                return RunReply(1, f"the agent run took over {self.timeout:g}s and was killed")
            lines = out.decode("utf-8", "replace").strip().splitlines()
            summary = lines[-1] if lines else "no output"
            return RunReply(proc.returncode or 0, summary[:MAX_SUMMARY])
