"""Reading a report service's answers as a stream, within a byte budget, never whole.

A client decides how much it sends; the hub decides how much it reads. A pull reads at most
`budget` bytes (the collector passes batch size x report limit) and holds at most that many
in complete lines; a line growing past the report limit is not held: only its first 4 KiB
(to name its seq) and its size are kept, and the rest is read and dropped.

Memory bound of one pull: `budget` bytes of held lines, plus one line being assembled (at
most the report limit), plus the SSH channel's receive window (asyncssh's 2 MiB). A round
runs at most `concurrency` pulls at once, so a round holds at most concurrency times that,
whatever its clients send.

`ReportLink` asks one connection, on a kept `reports --stream` channel where the client
offers one, else a channel per ask (hubcluster.reports_protocol).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncssh

from hub.report_records import Oversized
from hubcluster.reports_protocol import END_LINE, ERROR_PREFIX, STREAM_COMMAND

CHUNK = 64 * 1024
HEAD = 4096
_END = END_LINE.encode()
_ERROR = ERROR_PREFIX.encode()


@dataclass
class Answer:
    lines: list[str | Oversized] = field(default_factory=list)
    complete: bool = False  # read to the end; else stopped at the budget
    exit_status: int | None = None  # a channel per ask: its exit status; a stream: 0 or 1
    stderr: str = ""  # why the service refused the ask (its stderr, or a stream's #error)
    bytes_read: int = 0


class StreamUnsupported(Exception):
    """The client's report service predates streams: ask it a channel per ask."""


class LineSplitter:
    """Splits what arrives into the answer's lines, holding none past `max_line`; on a stream
    it also finds the answer's last line, `#end` or `#error <why>`."""

    def __init__(self, answer: Answer, max_line: int, stream: bool) -> None:
        self.answer = answer
        self.max_line = max_line
        self.stream = stream
        self.ended = False
        self._current = bytearray()
        self._head: bytes | None = None  # set once the current line went past max_line
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        start = 0
        while start < len(chunk):
            if self.ended:
                raise ValueError("the report service sent more after the end of its answer")
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            start = len(chunk) if end < 0 else end + 1
            self._size += len(piece)
            if self._head is None:
                self._current += piece
                if len(self._current) > self.max_line:
                    self._head, self._current = bytes(self._current[:HEAD]), bytearray()
            if end < 0:
                break
            if not (self.stream and self._last_line()):
                self.answer.lines.append(_line(self._current, self._head, self._size, True))
            self._current, self._head, self._size = bytearray(), None, 0

    def _last_line(self) -> bool:
        line = self._current
        if self._head is not None or line[:1] != b"#":
            return False
        if line == _END:
            self.answer.exit_status = 0
        elif line.startswith(_ERROR):
            self.answer.exit_status = 1
            self.answer.stderr = line[len(_ERROR) :].decode("utf-8", "replace")
        else:
            return False  # not ours: a line the parser will refuse
        self.ended = True
        return True

    def finish(self) -> None:
        """The reading stopped: keep the line it stopped in, if that can be placed."""
        if self._head is not None:
            # Stopped inside a line already over the limit: it can be placed and refused now.
            self.answer.lines.append(_line(self._current, self._head, self._size, whole=False))
        elif self._current and self.answer.complete and not self.stream:
            self.answer.lines.append(_line(self._current, self._head, self._size, whole=True))


async def _read(stdout: asyncssh.SSHReader[bytes], lines: LineSplitter, budget: int) -> None:
    answer = lines.answer
    while answer.bytes_read < budget:
        chunk = await stdout.read(min(CHUNK, budget - answer.bytes_read))
        if not chunk:
            if lines.stream:
                if answer.bytes_read == 0:
                    raise ConnectionResetError("the report stream was closed")
                raise ValueError("the report service closed its stream inside an answer")
            answer.complete = True
            break
        answer.bytes_read += len(chunk)
        lines.feed(chunk)
        if lines.ended:
            answer.complete = True
            break
    lines.finish()


async def read_answer(
    conn: asyncssh.SSHClientConnection, command: str, max_line: int, budget: int
) -> Answer:
    """Run `command` on a channel of its own and read its output into lines; stop once
    `budget` bytes were read."""
    answer = Answer()
    process = await conn.create_process(command, encoding=None)
    try:
        await _read(process.stdout, LineSplitter(answer, max_line, stream=False), budget)
        if answer.complete:
            answer.stderr = (await process.stderr.read(HEAD)).decode("utf-8", "replace")
            await process.wait_closed()
            answer.exit_status = process.exit_status
    finally:
        process.close()
    return answer


class ReportLink:
    """One kept connection to a client's report service, and how it is asked: one ask at a
    time (the collector pulls a host once at a time), as answers on a stream follow asks
    in order."""

    def __init__(self, conn: asyncssh.SSHClientConnection, stream: bool = True) -> None:
        self.conn = conn
        self._streams = stream  # False once the client refused a stream, or if told so
        self._process: asyncssh.SSHClientProcess[bytes] | None = None
        self.channels = 0  # opened, ever: one per stream, or one per ask

    def is_closed(self) -> bool:
        return self.conn.is_closed()

    async def ask(self, command: str, max_line: int, budget: int) -> Answer:
        if self._streams:
            try:
                return await self._ask_stream(command, max_line, budget)
            except StreamUnsupported:
                self._streams = False
        self.channels += 1
        return await read_answer(self.conn, command, max_line, budget)

    async def _ask_stream(self, command: str, max_line: int, budget: int) -> Answer:
        opened = self._process is None
        if self._process is None:
            self.channels += 1
            self._process = await self.conn.create_process(STREAM_COMMAND, encoding=None)
        process = self._process
        answer = Answer()
        try:
            process.stdin.write(command.encode() + b"\n")
            await _read(process.stdout, LineSplitter(answer, max_line, stream=True), budget)
        except (BrokenPipeError, ConnectionResetError):  # closed before an answer
            try:
                if opened:
                    await self._refused(process)
            finally:
                self._close_stream()
            raise
        except BaseException:
            # Cut inside an answer (time-out, cancelled round, bad data): the rest of it
            # would be read as the next answer, so the next ask opens a new stream.
            self._close_stream()
            raise
        if not answer.complete:
            self._close_stream()  # stopped at the budget: the same
        return answer

    async def _refused(self, process: asyncssh.SSHClientProcess[bytes]) -> None:
        """A stream that closed before its first answer: refused by an older client?"""
        await process.wait_closed()
        if process.exit_status not in (None, 0):
            raise StreamUnsupported(
                (await process.stderr.read(HEAD)).decode("utf-8", "replace").strip()
            )

    def _close_stream(self) -> None:
        if self._process is not None:
            self._process.close()
            self._process = None

    def close(self) -> None:
        self._close_stream()
        self.conn.close()


def _line(current: bytearray, head: bytes | None, size: int, whole: bool) -> str | Oversized:
    if head is not None:
        return Oversized(head.decode("utf-8", "replace"), size, whole)
    # Invalid UTF-8 survives decoding as surrogates; the storage check then refuses it.
    return current.decode("utf-8", "surrogateescape")
