"""Reading one report service answer as a stream, within a byte budget, never whole.

A client decides how much it sends; the hub decides how much it reads. A pull reads at most
`budget` bytes (the collector passes batch size x report limit) and holds at most that many
in complete lines; a line growing past the report limit is not held: only its first 4 KiB
(to name its seq) and its size are kept, and the rest is read and dropped.

Memory bound of one pull: `budget` bytes of held lines, plus one line being assembled (at
most the report limit), plus the SSH channel's receive window (asyncssh's 2 MiB). A round
runs at most `concurrency` pulls at once, so a round holds at most concurrency times that,
whatever its clients send.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncssh

from hub.report_records import Oversized

CHUNK = 64 * 1024
HEAD = 4096


@dataclass
class Answer:
    lines: list[str | Oversized] = field(default_factory=list)
    complete: bool = False  # read to the end; else stopped at the budget
    exit_status: int | None = None
    stderr: str = ""
    bytes_read: int = 0


async def read_answer(
    conn: asyncssh.SSHClientConnection, command: str, max_line: int, budget: int
) -> Answer:
    """Run `command` and read its output into lines; stop once `budget` bytes were read."""
    answer = Answer()
    process = await conn.create_process(command, encoding=None)
    try:
        current = bytearray()
        head: bytes | None = None  # set once the current line went past max_line
        size = 0
        while answer.bytes_read < budget:
            chunk = await process.stdout.read(min(CHUNK, budget - answer.bytes_read))
            if not chunk:
                answer.complete = True
                break
            answer.bytes_read += len(chunk)
            start = 0
            while start < len(chunk):
                end = chunk.find(b"\n", start)
                piece = chunk[start:] if end < 0 else chunk[start:end]
                start = len(chunk) if end < 0 else end + 1
                size += len(piece)
                if head is None:
                    current += piece
                    if len(current) > max_line:
                        head, current = bytes(current[:HEAD]), bytearray()
                if end < 0:
                    break
                answer.lines.append(_line(current, head, size, whole=True))
                current, head, size = bytearray(), None, 0
        if head is not None:
            # Stopped inside a line already over the limit: it can be placed and refused now.
            answer.lines.append(_line(current, head, size, whole=False))
        elif current and answer.complete:
            answer.lines.append(_line(current, head, size, whole=True))
        if answer.complete:
            answer.stderr = (await process.stderr.read(HEAD)).decode("utf-8", "replace")
            await process.wait_closed()
            answer.exit_status = process.exit_status
    finally:
        process.close()
    return answer


def _line(current: bytearray, head: bytes | None, size: int, whole: bool) -> str | Oversized:
    if head is not None:
        return Oversized(head.decode("utf-8", "replace"), size, whole)
    # Invalid UTF-8 survives decoding as surrogates; the storage check then refuses it.
    return current.decode("utf-8", "surrogateescape")
