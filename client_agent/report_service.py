"""`client-agent serve`: the report service the hub master's collector pulls from.

Its host key is the client's own pair (the hub checks it against `ppkeys/`), and the only
key allowed in is the pinned hub key. `run [--define CLASS]...` runs the agent now and answers
a RunReply (hubcluster.run_request: what a hub's remediation asks, like `cf-runagent`).
`reports --since N [--limit M] [--epoch E]` answers the records after N as JSON lines, each
naming the spool's epoch; asking with N also acknowledges everything up to N, since the
collector only asks from a cursor it has stored on a majority, unless E names another epoch
than the spool's (see `Spool.hand_over`). `reports --stream` answers such asks one per line
for as long as the hub keeps the channel (hubcluster.reports_protocol).
"""

from __future__ import annotations

import asyncio
import logging

import asyncssh

from client_agent.run_now import Runner
from client_agent.spool import Spool
from client_agent.state import ClientState
from hubcluster.keys import key_fingerprint
from hubcluster.messages import report_line
from hubcluster.reports_protocol import (
    END_LINE,
    MAX_ASK_BYTES,
    STREAM_COMMAND,
    USAGE,
    ReportsAsk,
    error_line,
    parse_reports_command,
)
from hubcluster.run_request import is_run_command, parse_run_command
from hubcluster.ssh_admission import Admission, AdmittedServer
from hubcluster.ssh_options import server_options

log = logging.getLogger("hubcluster.agent")


class ReportServer(AdmittedServer):
    """One connection: only the pinned hub key authenticates."""

    def __init__(self, state: ClientState, admission: Admission) -> None:
        super().__init__(admission)
        self._state = state
        self._address = "?"

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        super().connection_made(conn)
        peer = conn.get_extra_info("peername")
        self._address = str(peer[0]) if peer else "?"

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        # Read on every attempt, so a re-bootstrap to a re-keyed hub needs no restart.
        hub_key = self._state.pinned_hub_key()
        if hub_key is not None and key.public_data == hub_key.public_data:
            return True
        log.warning(
            "report service: refused key %s from %s (only the pinned hub key may connect)",
            key_fingerprint(key),
            self._address,
        )
        return False


def _answer(spool: Spool, ask: ReportsAsk) -> str:
    epoch, records = spool.hand_over(ask.since, ask.epoch, ask.limit)
    return "".join(report_line(r, epoch) + "\n" for r in records)


async def _serve_run(runner: Runner | None, process: asyncssh.SSHServerProcess) -> None:
    try:
        ask = parse_run_command(process.command or "")
    except ValueError as exc:
        process.stderr.write(f"{exc}\n")
        process.exit(2)
        return
    if runner is None:
        process.stderr.write("this report service does not run the agent\n")
        process.exit(2)
        return
    reply = await runner.run(ask.classes, ask.deadline)
    process.stdout.write(reply.to_json() + "\n")
    process.exit(0)


async def _serve_stream(spool: Spool, process: asyncssh.SSHServerProcess) -> None:
    """Answer asks, one per line, until the hub closes the channel."""
    while True:
        line = await process.stdin.readline()
        if not line:
            process.exit(0)
            return
        if len(line) > MAX_ASK_BYTES or not line.endswith("\n"):
            # Not an ask cut short by the window: something that is not our hub's.
            process.stdout.write(error_line(f"an ask is one line of {MAX_ASK_BYTES} at most"))
            process.exit(2)
            return
        try:
            text = await asyncio.to_thread(_answer, spool, parse_reports_command(line))
        except ValueError as exc:  # a bad ask, or acknowledging beyond what was handed out
            process.stdout.write(error_line(str(exc)))
            continue
        process.stdout.write(text + END_LINE + "\n")


async def _serve_process(
    spool: Spool, process: asyncssh.SSHServerProcess, runner: Runner | None = None
) -> None:
    command = process.command
    if command is None:
        process.stderr.write(f"only commands are offered; {USAGE}\n")
        process.exit(2)
        return
    if is_run_command(command):
        await _serve_run(runner, process)
        return
    if command.strip() == STREAM_COMMAND:
        await _serve_stream(spool, process)
        return
    try:
        ask = parse_reports_command(command)
    except ValueError as exc:
        process.stderr.write(f"{exc}\n")
        process.exit(2)
        return
    try:
        text = await asyncio.to_thread(_answer, spool, ask)
    except ValueError as exc:  # e.g. acknowledging beyond what was handed out
        process.stderr.write(f"{exc}\n")
        process.exit(1)
        return
    process.stdout.write(text)
    process.exit(0)


async def start_report_service(
    state: ClientState,
    listen: tuple[str, int],
    spool: Spool,
    runner: Runner | None = None,
) -> asyncssh.SSHAcceptor:
    """Serve `spool` on `listen` ((host, port); port 0 picks one) until the acceptor closes;
    with `runner`, the `run` command runs the agent."""
    host_key = state.client_key()
    host, port = listen
    admission = Admission("report service")
    acceptor = await asyncssh.listen(
        host,
        port,
        server_factory=lambda: ReportServer(state, admission),
        process_factory=lambda process: _serve_process(spool, process, runner),
        **server_options(host_keys=[host_key]),
    )
    log.info(
        "report service on %s:%d, host key %s", host, acceptor.get_port(), key_fingerprint(host_key)
    )
    return acceptor
