"""A client's report service that answers whatever lines a test gives it, as an attacker would.

It authenticates like the product's (`ReportServer`: the client's key, the pinned hub key)
but ignores `--limit` and sends every line past `--since`, on a stream or a channel per
ask, so the collector meets hostile input over real SSH. Run as a module it serves `count`
records of `size` bytes each from a separate process (so that its memory is not the
collector's):

    python -m tests.cluster.hostile_service STATE_DIR COUNT SIZE
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import asyncssh

from client_agent.report_service import ReportServer
from client_agent.state import ClientState
from hubcluster.reports_protocol import END_LINE, STREAM_COMMAND, parse_reports_command
from hubcluster.ssh_admission import Admission

# (seq, line) pairs; a line is text or a callable making it, so huge lines exist one at a time
Lines = Callable[[], Iterable[tuple[int, str | Callable[[], str]]]]


async def start_line_service(
    state: ClientState, lines: Lines, streams: bool = True, end: bool = True
) -> asyncssh.SSHAcceptor:
    """Serve `lines`; on a `reports --stream` channel too unless `streams` is False (then
    it refuses one, as a client from before streams does). Without `end`, a stream's first
    answer ends in the service closing the stream, not in its last line."""

    async def send(process: asyncssh.SSHServerProcess, since: int) -> None:
        for seq, line in lines():
            if seq > since:
                process.stdout.write((line() if callable(line) else line) + "\n")
                await process.stdout.drain()

    async def serve(process: asyncssh.SSHServerProcess) -> None:
        try:
            if process.command == STREAM_COMMAND:
                if not streams:
                    process.stderr.write("unexpected '--stream'\n")
                    process.exit(2)
                    return
                while ask := await process.stdin.readline():
                    await send(process, parse_reports_command(ask).since)
                    if not end:
                        break
                    process.stdout.write(END_LINE + "\n")
                process.exit(0)
                return
            await send(process, parse_reports_command(process.command or "").since)
            process.exit(0)
        except (asyncssh.Error, OSError, BrokenPipeError):
            process.close()  # the collector stopped reading: expected

    admission = Admission("hostile report service")
    return await asyncssh.listen(
        "127.0.0.1",
        0,
        server_factory=lambda: ReportServer(state, admission),
        server_host_keys=[state.client_key()],
        process_factory=serve,
        config=None,
    )


def huge_records(count: int, size: int) -> Lines:
    def lines() -> Iterable[tuple[int, Callable[[], str]]]:
        for seq in range(1, count + 1):
            yield seq, lambda seq=seq: json.dumps({"seq": seq, "blob": "z" * size})

    return lines


async def _main(state_dir: str, count: int, size: int) -> None:
    acceptor = await start_line_service(ClientState(Path(state_dir)), huge_records(count, size))
    print(acceptor.get_port(), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed
    acceptor.close()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
