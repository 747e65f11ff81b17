"""Read-only SFTP of a hub's masterfiles releases, confined to `masterfiles/releases/`.

asyncssh's chroot maps paths under a root but follows links that point out of it and
allows writes; this server refuses both explicitly. Every path is checked twice: its
components may not climb above the root (`..` at the top), and its realpath must stay
inside the root (a symlink placed in a release cannot lead out).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import NoReturn

import asyncssh
from asyncssh import (
    ACE4_APPEND_DATA,
    ACE4_WRITE_ATTRIBUTES,
    ACE4_WRITE_DATA,
    FXF_ACCESS_DISPOSITION,
    FXF_APPEND,
    FXF_CREAT,
    FXF_EXCL,
    FXF_OPEN_EXISTING,
    FXF_TRUNC,
    FXF_WRITE,
)

log = logging.getLogger("hubcluster.ssh")

_WRITE_FLAGS = FXF_WRITE | FXF_APPEND | FXF_CREAT | FXF_TRUNC | FXF_EXCL
_WRITE_ACCESS = ACE4_WRITE_DATA | ACE4_APPEND_DATA | ACE4_WRITE_ATTRIBUTES
READ_ONLY = "the masterfiles are read-only"
# Bounds on what one SFTP session may make this hub hold. asyncssh refuses a request packet
# over 4 MiB + 1 KiB itself (MAX_SFTP_PACKET_LEN); a read is answered with at most this much
# (a short read, which clients continue), and a session keeps at most this many files open.
MAX_READ_BYTES = 256 * 1024
MAX_OPEN_FILES = 64


def _refuse(*_args: object, **_kwargs: object) -> NoReturn:
    raise asyncssh.SFTPPermissionDenied(READ_ONLY)


class ReleaseSFTPServer(asyncssh.SFTPServer):
    """One SFTP session over `root`; `who` names the client in log lines."""

    def __init__(self, chan: asyncssh.SSHServerChannel, root: Path, who: str) -> None:
        super().__init__(chan, chroot=os.fsencode(root))
        assert self._chroot is not None
        self._root: bytes = self._chroot
        self._who = who
        self._open_files = 0

    def map_path(self, path: bytes) -> bytes:
        depth = 0
        for part in path.split(b"/"):
            if part == b"..":
                depth -= 1
                if depth < 0:
                    log.warning("sftp: refused %s: %r climbs out with '..'", self._who, path)
                    raise asyncssh.SFTPPermissionDenied(
                        "'..' may not leave the masterfiles releases"
                    )
            elif part not in (b"", b"."):
                depth += 1
        local = super().map_path(path)
        real = os.path.realpath(local)
        if real != self._root and not real.startswith(self._root + b"/"):
            log.warning("sftp: refused %s: %r resolves outside the releases", self._who, path)
            raise asyncssh.SFTPPermissionDenied(
                f"{os.fsdecode(path)} resolves outside the masterfiles releases"
            )
        return local

    def _count_open(self) -> None:
        if self._open_files >= MAX_OPEN_FILES:
            log.warning("sftp: refused %s: over %d files open", self._who, MAX_OPEN_FILES)
            raise asyncssh.SFTPFailure(f"too many open files (at most {MAX_OPEN_FILES})")
        self._open_files += 1

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        if pflags & _WRITE_FLAGS:
            log.warning("sftp: refused %s: open %r for writing", self._who, path)
            _refuse()
        self._count_open()
        try:
            return super().open(path, pflags, attrs)
        except BaseException:
            self._open_files -= 1
            raise

    def open56(
        self, path: bytes, desired_access: int, flags: int, attrs: asyncssh.SFTPAttrs
    ) -> object:
        if desired_access & _WRITE_ACCESS or (flags & FXF_ACCESS_DISPOSITION) != FXF_OPEN_EXISTING:
            log.warning("sftp: refused %s: open %r for writing", self._who, path)
            _refuse()
        self._count_open()
        try:
            return super().open56(path, desired_access, flags, attrs)
        except BaseException:
            self._open_files -= 1
            raise

    def close(self, file_obj: object) -> None:
        self._open_files = max(0, self._open_files - 1)
        super().close(file_obj)

    def read(self, file_obj: object, offset: int, size: int) -> bytes | Awaitable[bytes]:
        return super().read(file_obj, offset, min(size, MAX_READ_BYTES))

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        # The base class also lists `.` and `..`, and the `..` of the root is outside it.
        with os.scandir(self.map_path(path)) as entries:
            for entry in entries:
                attrs = asyncssh.SFTPAttrs.from_local(entry.stat(follow_symlinks=False))
                yield asyncssh.SFTPName(os.fsencode(entry.name), attrs=attrs)

    write = _refuse
    setstat = _refuse
    lsetstat = _refuse
    fsetstat = _refuse
    remove = _refuse
    mkdir = _refuse
    rmdir = _refuse
    rename = _refuse
    posix_rename = _refuse
    symlink = _refuse
    link = _refuse


def release_sftp_server(
    chan: asyncssh.SSHServerChannel, root: Path, who: str
) -> asyncssh.SFTPServer:
    """The releases under `root`, read-only, for the client or peer named `who`."""
    log.debug("sftp: %s opened the masterfiles", who)
    return ReleaseSFTPServer(chan, root, who)


class _RefusingSFTPServer(ReleaseSFTPServer):
    """SFTP for a session that may not read the releases: every path is refused."""

    def map_path(self, path: bytes) -> bytes:
        log.warning("sftp: refused %s: %r (not a registered client)", self._who, path)
        raise asyncssh.SFTPPermissionDenied("the masterfiles are for registered clients only")


def refusing_sftp_server(
    chan: asyncssh.SSHServerChannel, root: Path, who: str
) -> asyncssh.SFTPServer:
    """An SFTP server that answers every request with a refusal naming why."""
    return _RefusingSFTPServer(chan, root, who)
