"""The hub's side of a release transfer: `release-manifest` and `release-files`.

Clients and peer hubs take releases with these two commands (formats in
hubcluster.release_wire). Releases are immutable and named by their manifest's hash, so
their manifests and the deltas between them are cached by id. Files are read, packed and
compressed in a worker thread, a megabyte of input at a time, and written to the channel
with flow control: a slow receiver holds a megabyte of this hub's memory, not a release.

Paths are checked here too: a release tree holding a symlink or a path climbing out of it
(a hand-made or damaged release) has that file answered as missing, never read.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import stat
import zlib
from pathlib import Path
from typing import Any

import asyncssh

from hub.masterfiles import is_complete, manifest_path, release_dir
from hubcluster.hub_session import read_bounded
from hubcluster.messages import ManifestEntry, MessageError, check_relative_path, is_release_id
from hubcluster.release_wire import (
    FRAME,
    MISSING,
    STREAM_LEVEL,
    decode_want,
    encode_delta,
    load_trusted_manifest,
    parse_manifest_request,
)

log = logging.getLogger("hubcluster.ssh")

EXIT_REFUSED = 1
EXIT_BAD_REQUEST = 2
# A want bitmap is one bit a file, compressed: 1 MiB covers any release this hub would hold.
MAX_WANT_BYTES = 1 << 20
REQUEST_TIMEOUT = 10.0
_STEP = 1 << 20


class TransferRefused(Exception):
    """A transfer request refused; `status` is the command's exit status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@functools.lru_cache(maxsize=8)
def _manifest(root: Path, release: str) -> list[ManifestEntry]:
    try:
        return load_trusted_manifest(manifest_path(root, release).read_bytes(), release)
    except MessageError as exc:
        raise TransferRefused(
            EXIT_REFUSED, f"release {release} is damaged on this hub: {exc}"
        ) from None


@functools.lru_cache(maxsize=16)
def _delta(root: Path, release: str, base: str | None) -> bytes:
    base_entries = None
    if base is not None and is_complete(root, base):
        try:
            base_entries = _manifest(root, base)
        except TransferRefused:
            base_entries = None  # a damaged base: send the whole manifest instead
    return encode_delta(release, _manifest(root, release), base, base_entries)


def _held(root: Path, release: str) -> None:
    if not is_complete(root, release):
        raise TransferRefused(EXIT_REFUSED, f"release {release} is not held by this hub")


def manifest_answer(root: Path, args: str) -> bytes:
    """The delta a `release-manifest` request asks for."""
    try:
        release, base = parse_manifest_request(args)
    except MessageError as exc:
        raise TransferRefused(EXIT_BAD_REQUEST, str(exc)) from None
    _held(root, release)
    return _delta(root, release, base)


class FileStreamPacker:
    """The packed stream of some files of a release, produced a step at a time."""

    def __init__(self, tree: Path, entries: list[ManifestEntry], wanted: list[int]) -> None:
        self._tree = str(tree)
        self._queue = [entries[i] for i in wanted]
        self._next = 0
        self._deflater = zlib.compressobj(STREAM_LEVEL)
        self._fd = -1
        self._remaining = 0
        self._real_tree = os.path.realpath(tree)
        self._dirs: dict[str, bool] = {}
        self.refused: list[str] = []
        self.done = False

    def step(self) -> bytes:
        """About a megabyte of input, compressed (maybe nothing yet); `done` after the last."""
        if self.done:
            return b""
        raw: list[bytes] = []
        budget = _STEP
        while budget > 0:
            if self._fd >= 0:
                data = os.read(self._fd, min(self._remaining, budget))
                if not data:  # the file shrank since we said its size: the hash check catches it
                    data = bytes(min(self._remaining, budget))
                self._remaining -= len(data)
                budget -= len(data)
                raw.append(data)
                if self._remaining == 0:
                    os.close(self._fd)
                    self._fd = -1
                continue
            if self._next >= len(self._queue):
                self.done = True
                break
            entry = self._queue[self._next]
            self._next += 1
            budget -= 512  # an open costs about as much as reading that many bytes
            raw.append(FRAME.pack(self._open(entry)))
        # One compress call a step, not two a file: most policy files are small.
        out = self._deflater.compress(b"".join(raw))
        return out + self._deflater.flush() if self.done else out

    def _open(self, entry: ManifestEntry) -> int:
        """The size to announce for `entry` (MISSING when it may not or cannot be read)."""
        try:
            check_relative_path(entry.path, "path")
            parent = os.path.dirname(entry.path)
            if not self._inside(parent):
                raise OSError(f"{parent} leads out of the release")
            fd = os.open(f"{self._tree}/{entry.path}", os.O_RDONLY | os.O_NOFOLLOW)
            size = os.fstat(fd).st_size
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise OSError("not a regular file")
        except (OSError, MessageError) as exc:
            self.refused.append(f"{entry.path}: {exc}")
            return MISSING
        self._remaining = size
        if size == 0:
            os.close(fd)
        else:
            self._fd = fd
        return size

    def _inside(self, parent: str) -> bool:
        if not parent:
            return True
        known = self._dirs.get(parent)
        if known is None:
            # A symlinked directory anywhere on the way resolves elsewhere.
            real = os.path.realpath(f"{self._tree}/{parent}")
            known = self._dirs[parent] = real == f"{self._real_tree}/{parent}"
        return known

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def files_release(root: Path, args: str) -> str:
    """The release a `release-files RELEASE` request names, if this hub holds it."""
    release = args.strip()
    if not is_release_id(release):
        raise TransferRefused(EXIT_BAD_REQUEST, f"release-files: not a release id: {release!r}")
    _held(root, release)
    return release


def files_packer(root: Path, release: str, want: bytes) -> FileStreamPacker:
    """The packer for a release held here and a want bitmap over its manifest."""
    entries = _manifest(root, release)
    try:
        wanted = decode_want(want, len(entries))
    except MessageError as exc:
        raise TransferRefused(EXIT_BAD_REQUEST, str(exc)) from None
    return FileStreamPacker(release_dir(root, release), entries, wanted)


async def _read_want(process: asyncssh.SSHServerProcess[Any]) -> bytes:
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            want = await read_bounded(process.stdin, MAX_WANT_BYTES)
    except TimeoutError:
        raise TransferRefused(EXIT_BAD_REQUEST, "no want bitmap on stdin") from None
    if want is None:
        raise TransferRefused(EXIT_BAD_REQUEST, f"want bitmap over {MAX_WANT_BYTES} bytes; refused")
    return want


async def release_manifest(
    root: Path, who: str, process: asyncssh.SSHServerProcess[Any], args: str
) -> None:
    process.stdout.write(await asyncio.to_thread(manifest_answer, root, args))
    await process.stdout.drain()


async def release_files(
    root: Path, who: str, process: asyncssh.SSHServerProcess[Any], args: str
) -> None:
    # The request is checked before stdin is read: a bad one is refused at once.
    release = await asyncio.to_thread(files_release, root, args)
    want = await _read_want(process)
    packer = await asyncio.to_thread(files_packer, root, release, want)
    try:
        while not packer.done:
            # A step may come out empty: zlib holds input back until it has a block to give.
            if chunk := await asyncio.to_thread(packer.step):
                process.stdout.write(chunk)
                await process.stdout.drain()
    except (BrokenPipeError, ConnectionError, asyncssh.Error) as exc:
        why = str(exc) or type(exc).__name__
        log.info("release-files: %s went away mid-stream (%s)", who, why)
        return
    finally:
        packer.close()
    if packer.refused:
        log.warning("release-files: sent %s as missing: %s", who, "; ".join(packer.refused[:3]))
