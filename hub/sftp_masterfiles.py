"""Read-only SFTP of a hub's masterfiles releases, confined to `masterfiles/releases/`.

asyncssh's chroot maps paths under a root but follows links that point out of it and
allows writes; this server refuses both explicitly. Every path is checked twice: its
components may not climb above the root (`..` at the top), and its realpath must stay
inside the root (a symlink placed in a release cannot lead out).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncssh
from asyncssh.sftp import (
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


def _refuse(*_args: object) -> None:
    raise asyncssh.SFTPPermissionDenied(READ_ONLY)


class ReleaseSFTPServer(asyncssh.SFTPServer):
    """One SFTP session over `root`; `who` names the client in log lines."""

    def __init__(self, chan: asyncssh.SSHServerChannel, root: Path, who: str) -> None:
        super().__init__(chan, chroot=os.fsencode(root))
        assert self._chroot is not None
        self._root: bytes = self._chroot
        self._who = who

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

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        if pflags & _WRITE_FLAGS:
            log.warning("sftp: refused %s: open %r for writing", self._who, path)
            _refuse()
        return super().open(path, pflags, attrs)

    def open56(
        self, path: bytes, desired_access: int, flags: int, attrs: asyncssh.SFTPAttrs
    ) -> object:
        if desired_access & _WRITE_ACCESS or (flags & FXF_ACCESS_DISPOSITION) != FXF_OPEN_EXISTING:
            log.warning("sftp: refused %s: open %r for writing", self._who, path)
            _refuse()
        return super().open56(path, desired_access, flags, attrs)

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


def release_sftp_factory(
    root: Path, who: str
) -> Callable[[asyncssh.SSHServerChannel], asyncssh.SFTPServer]:
    """An asyncssh `sftp_factory` serving `root` read-only to the client named `who`."""

    def factory(chan: asyncssh.SSHServerChannel) -> asyncssh.SFTPServer:
        log.debug("sftp: %s opened the masterfiles", who)
        return ReleaseSFTPServer(chan, root, who)

    return factory
