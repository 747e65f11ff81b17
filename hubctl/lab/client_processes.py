"""The lab's clients as processes: bootstrapping them to a hub, and one agent run on each.

Bootstraps run concurrently up to a bound: one after another, 120 clients took 107 s, and a
real fleet does not wait in line either.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from hubctl.lab.agent_processes import AgentForker, AgentProcess

BOOTSTRAP_ATTEMPTS = 5


@dataclass
class LabClient:
    name: str
    workdir: Path
    config: Path
    port: int
    log: Path
    proc: AgentProcess | None = None


async def bootstrap_all(
    fleet: list[LabClient],
    hub_service: str,
    pin: list[str],
    forker: AgentForker,
    concurrency: int,
) -> None:
    """Bootstrap every client to `hub_service`, then start its report service; one
    RuntimeError naming the first failure (and how many more) when any fails."""
    limit = asyncio.Semaphore(max(1, concurrency))
    failures: list[str] = []

    async def one(c: LabClient) -> None:
        log = c.workdir / "bootstrap.log"
        args = ["bootstrap", hub_service, "--config", str(c.config), *pin]
        code: int | None = None
        async with limit:
            # A loaded hub may answer late (the lab's clients give it 1 s, for quick
            # failovers); bootstrap is idempotent, so the lab tries again shortly.
            for attempt in range(BOOTSTRAP_ATTEMPTS):
                await asyncio.sleep(0.5 * attempt)
                proc = forker.start(args, log)
                deadline = time.monotonic() + 60
                # Polled, not waited for in threads: the default pool would cap concurrency.
                while (code := proc.poll()) is None and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                if code is None:
                    proc.kill()
                    failures.append(f"bootstrap of {c.name} took over 60s")
                    return
                if code == 0:
                    break
        if code != 0:
            lines = log.read_text(errors="replace").strip().splitlines() or ["no output"]
            failures.append(f"bootstrap of {c.name} failed: {lines[-1]}")
            return
        c.proc = forker.start(["serve", "--config", str(c.config)], c.log)

    await asyncio.gather(*(one(c) for c in fleet))
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise RuntimeError(failures[0] + more)


async def run_agents(fleet: list[LabClient], command: list[str], concurrency: int) -> list[int]:
    """One `client-agent run` (`command` starts client-agent) on every client; exit codes."""
    limit = asyncio.Semaphore(concurrency)

    async def one(c: LabClient) -> int:
        async with limit:
            proc = await asyncio.create_subprocess_exec(
                *command,
                "run",
                "--config",
                str(c.config),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            return await proc.wait()

    return list(await asyncio.gather(*(one(c) for c in fleet)))
