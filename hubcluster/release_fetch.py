"""Take a release from a hub: its manifest as a delta, then the missing files as one stream.

Hubs mirroring the master and client agents both receive releases this way (the formats
are in hubcluster.release_wire). Files are written straight into the partial tree the
release-tree builder prepared, each verified against the manifest as its last byte arrives;
one whose content does not match is removed and the stream goes on, so what did arrive is
kept for the next attempt. Whatever goes wrong comes back as one ReleaseTreeError line.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from hubcluster.hub_session import HubSession, read_bounded
from hubcluster.messages import ManifestEntry, MessageError
from hubcluster.release_tree import ReleaseTreeError
from hubcluster.release_wire import (
    FILES_COMMAND,
    FRAME,
    MISSING,
    apply_delta,
    encode_want,
    manifest_request,
)

# A compressed delta of a million-file manifest is about 45 MB.
MAX_DELTA_BYTES = 64 * 1024 * 1024
ERROR_MAX_BYTES = 64 * 1024
# A hub that sends nothing for this long is taken as gone (the stream has no overall limit:
# a large release takes as long as it takes, as long as it keeps moving).
IDLE_TIMEOUT = 30.0
_READ = 256 * 1024
# Unpacked per step, so a small compressed chunk cannot make us hold a huge one.
_INFLATE_STEP = 4 * 1024 * 1024
# Never through a link, never over something already there.
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW


@dataclass
class Transfer:
    """What taking one release moved: commands run, bytes read off the wire, files written."""

    commands: int = 0
    wire_bytes: int = 0
    files: int = 0
    file_bytes: int = 0


class FileStreamReceiver:
    """Unpacks a packed file stream into `partial`, verifying each file; not thread-safe."""

    def __init__(self, partial: Path, entries: list[ManifestEntry], wanted: list[int]) -> None:
        self._partial = partial
        self._queue = [entries[i] for i in wanted]
        self._next = 0
        self._inflater = zlib.decompressobj()
        self._pending = b""
        self._fd = -1
        self._entry: ManifestEntry | None = None
        self._remaining = 0
        self._hash = hashlib.sha256()
        self._base = str(partial)
        # Files are created relative to their open directory (the manifest is sorted, so a
        # directory's files come together): the kernel resolves one name per file, not a path.
        self._dir = ""
        self._dir_fd = -1
        self._name = ""
        self.problems: list[str] = []
        self.files = 0
        self.file_bytes = 0

    def feed(self, data: bytes) -> None:
        """Take compressed bytes off the wire; raises ReleaseTreeError if the stream is bad."""
        try:
            out = self._inflater.decompress(data, _INFLATE_STEP)
            self._take(out)
            while self._inflater.unconsumed_tail:
                out = self._inflater.decompress(self._inflater.unconsumed_tail, _INFLATE_STEP)
                self._take(out)
        except zlib.error as exc:
            raise ReleaseTreeError(f"the file stream is corrupt ({exc})") from None
        if self._inflater.unused_data:
            raise ReleaseTreeError("the file stream goes on past its end")

    def _take(self, data: bytes) -> None:
        view = memoryview(self._pending + data) if self._pending else memoryview(data)
        self._pending = b""
        pos = 0
        while pos < len(view):
            if self._entry is not None:
                step = min(self._remaining, len(view) - pos)
                piece = view[pos : pos + step]
                self._hash.update(piece)
                if self._fd >= 0:
                    os.write(self._fd, piece)
                self._remaining -= step
                pos += step
                if self._remaining == 0:
                    self._end_file()
                continue
            if self._next >= len(self._queue):
                raise ReleaseTreeError("the file stream carries more than the files asked for")
            if len(view) - pos < FRAME.size:
                self._pending = bytes(view[pos:])
                return
            (length,) = FRAME.unpack_from(view, pos)
            pos += FRAME.size
            self._start_file(self._queue[self._next], length)
            self._next += 1

    def _start_file(self, entry: ManifestEntry, length: int) -> None:
        if length == MISSING:
            self.problems.append(f"{entry.path}: the hub could not read it")
            return
        if length != entry.size:
            # The framing would still hold, but a hub sending other sizes than its manifest
            # is not to be trusted with the rest of the stream either.
            raise ReleaseTreeError(
                f"{entry.path}: fetched content does not match the manifest "
                f"({length} bytes, not {entry.size})"
            )
        parent, _, self._name = entry.path.rpartition("/")
        if parent != self._dir or self._dir_fd < 0:
            self._open_dir(parent)
        try:
            self._fd = os.open(self._name, _CREATE, 0o600, dir_fd=self._dir_fd)
        except FileExistsError:  # left by an earlier attempt (a file, a directory, a link)
            _clear(Path(f"{self._base}/{entry.path}"))
            self._fd = os.open(self._name, _CREATE, 0o600, dir_fd=self._dir_fd)
        self._entry, self._remaining, self._hash = entry, length, hashlib.sha256()
        if length == 0:
            self._end_file()

    def _open_dir(self, parent: str) -> None:
        self._close_dir()
        path = f"{self._base}/{parent}" if parent else self._base
        os.makedirs(path, exist_ok=True)
        # The partial tree's directories are ours (strays and links were cleared before the
        # fetch); O_NOFOLLOW still refuses a link planted as the last one.
        self._dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        self._dir = parent

    def _close_dir(self) -> None:
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1

    def _end_file(self) -> None:
        entry = self._entry
        assert entry is not None
        fd, self._fd, self._entry = self._fd, -1, None
        try:
            if self._hash.hexdigest() == entry.sha256:
                os.fchmod(fd, entry.mode)
                self.files += 1
                self.file_bytes += entry.size
                return
        finally:
            os.close(fd)
        os.unlink(self._name, dir_fd=self._dir_fd)
        self.problems.append(f"{entry.path}: fetched content does not match the manifest")

    def finish(self) -> None:
        """After the last byte: raises when files are missing, short, or did not verify."""
        self._close_dir()
        if self._entry is not None or self._next < len(self._queue) or self._pending:
            self.close()
            raise ReleaseTreeError(
                f"the file stream ended after {self.files} of {len(self._queue)} files"
            )
        if not self._inflater.eof:
            raise ReleaseTreeError("the file stream ended before its end mark")
        if self.problems:
            more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            raise ReleaseTreeError(self.problems[0] + more)

    def close(self) -> None:
        """Drop a file left half written (a cut stream): it must not look fetched."""
        if self._fd >= 0 and self._entry is not None:
            os.close(self._fd)
            (self._partial / self._entry.path).unlink(missing_ok=True)
            self._fd, self._entry = -1, None
        self._close_dir()


def _clear(target: Path) -> None:
    try:
        os.unlink(target)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        shutil.rmtree(target)


class HubRelease:
    """One release as a hub serves it, over an authenticated session."""

    def __init__(
        self, session: HubSession, release: str, expected_tree_hash: str | None = None
    ) -> None:
        self.session = session
        self.release = release
        self.expected_tree_hash = expected_tree_hash
        self.transfer = Transfer()

    def _failed(self, what: str, exc: BaseException) -> ReleaseTreeError:
        why = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
        return ReleaseTreeError(f"hub {self.session.address}: {what}: {why}")

    async def manifest(
        self, base: str | None, base_entries: list[ManifestEntry] | None
    ) -> tuple[list[ManifestEntry], bytes]:
        """The release's entries and canonical manifest bytes, as a delta against `base`."""
        command = manifest_request(self.release, base if base_entries is not None else None)
        try:
            async with asyncio.timeout(IDLE_TIMEOUT):
                async with self.session.conn.create_process(command, encoding=None) as process:
                    data = await read_bounded(process.stdout, MAX_DELTA_BYTES, _READ)
                    await _exited(process, self.session.address, "release-manifest")
        except (OSError, TimeoutError, asyncssh.Error) as exc:
            raise self._failed("release-manifest", exc) from None
        self.transfer.commands += 1
        if data is None:
            raise ReleaseTreeError(f"manifest of release {self.release}: over {MAX_DELTA_BYTES}")
        self.transfer.wire_bytes += len(data)
        try:
            return apply_delta(data, self.release, base, base_entries, self.expected_tree_hash)
        except MessageError as exc:
            raise ReleaseTreeError(str(exc)) from None

    async def fetch(self, entries: list[ManifestEntry], wanted: list[int], partial: Path) -> None:
        """Write the `wanted` entries into `partial` from one stream, each verified."""
        receiver = FileStreamReceiver(partial, entries, wanted)
        self.transfer.commands += 1
        try:
            async with self.session.conn.create_process(
                f"{FILES_COMMAND} {self.release}", encoding=None
            ) as process:
                process.stdin.write(encode_want(wanted, len(entries)))
                process.stdin.write_eof()
                while True:
                    async with asyncio.timeout(IDLE_TIMEOUT):
                        chunk = await process.stdout.read(_READ)
                    if not chunk:
                        break
                    self.transfer.wire_bytes += len(chunk)
                    # In a thread: writing and hashing files must not stall the event loop
                    # that hubd or the agent shares with other work.
                    await asyncio.to_thread(receiver.feed, chunk)
                async with asyncio.timeout(IDLE_TIMEOUT):
                    await _exited(process, self.session.address, FILES_COMMAND)
            receiver.finish()
        except (OSError, TimeoutError, asyncssh.Error) as exc:
            raise self._failed(FILES_COMMAND, exc) from None
        finally:
            receiver.close()
            self.transfer.files += receiver.files
            self.transfer.file_bytes += receiver.file_bytes


async def _exited(process: asyncssh.SSHClientProcess[bytes], address: str, name: str) -> None:
    err = await read_bounded(process.stderr, ERROR_MAX_BYTES, _READ) or b""
    completed = await process.wait()
    if completed.exit_status != 0:
        said = err.decode(errors="replace").strip() or f"exit status {completed.exit_status}"
        raise ReleaseTreeError(f"hub {address} refused {name}: {said.splitlines()[0]}")
