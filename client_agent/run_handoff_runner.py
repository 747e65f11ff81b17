"""The report service's `run` through systemd: it hands the ask to the root run service.

A deployed report service is an unprivileged user, so an agent it spawned could not keep
root's promises. Instead it writes the request into the shared spool directory
(hubcluster.run_handoff); `hubcluster-agent-run.path` starts the root
`hubcluster-agent-run.service`, whose `client-agent run` takes the request and writes the
result this runner waits for, as long as the hub's deadline (never over `maximum`; the
run service's own limit is the unit's TimeoutStartSec, the same hour). One run at a time,
also across a restart of the service: a request file still pending answers busy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from client_agent.run_now import timed_out
from hubcluster.messages import MessageError
from hubcluster.run_handoff import (
    RunHandoffRequest,
    new_request_id,
    read_result,
    request_pending,
    withdraw_request,
    write_request,
)
from hubcluster.run_request import EXIT_BUSY, MAX_RUN_SECONDS, RunAsk, RunReply

log = logging.getLogger("hubcluster.agent")

POLL_SECONDS = 0.2


class HandoffRunner:
    def __init__(self, spool_dir: Path, timeout: float = MAX_RUN_SECONDS) -> None:
        self.spool_dir = spool_dir
        self.timeout = timeout  # the longest this client waits, whatever the hub's deadline
        self._busy = asyncio.Lock()

    async def run(self, classes: tuple[str, ...], deadline: float | None = None) -> RunReply:
        if self._busy.locked() or request_pending(self.spool_dir):
            return RunReply(EXIT_BUSY, "an agent run asked by a hub is already pending or running")
        async with self._busy:
            request = RunHandoffRequest(new_request_id(), classes)
            try:
                await asyncio.to_thread(write_request, self.spool_dir, request)
            except OSError as exc:
                return RunReply(1, f"cannot write the run request: {exc.strerror or exc}")
            log.info(
                "report service: agent run %s handed to the run service (classes: %s)",
                request.request_id,
                classes or "-",
            )
            return await self._wait(request.request_id, RunAsk(classes, deadline))

    async def _wait(self, request_id: str, ask: RunAsk) -> RunReply:
        seconds = ask.seconds(self.timeout)
        deadline = time.monotonic() + seconds
        refused = None
        while time.monotonic() < deadline:
            try:
                result = await asyncio.to_thread(read_result, self.spool_dir, request_id)
            except (MessageError, OSError) as exc:
                if str(exc) != refused:  # once per problem, not every poll
                    refused = str(exc)
                    log.warning("report service: refused the run result: %s", refused)
                result = None
            if result is not None:
                return RunReply(result.exit_code, result.summary)
            await asyncio.sleep(POLL_SECONDS)
        if await asyncio.to_thread(withdraw_request, self.spool_dir, request_id):
            return RunReply(
                1,
                f"no run service took the request within {seconds:g}s"
                " (is hubcluster-agent-run.path enabled?)",
            )
        # The root run goes on (this unprivileged service cannot stop it); its own limit is
        # the unit's TimeoutStartSec.
        return timed_out(seconds, "still running in the run service")
