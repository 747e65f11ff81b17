"""Real read-only and full filesystems for agent tests.

Tests run as root, and root writes through chmod, so a read-only directory is a read-only
bind mount and a full disk is a small tmpfs filled to the last page. Both need mount rights;
without them the test is skipped (it cannot be provoked honestly any other way).
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        pytest.skip(f"needs mount rights: mount {' '.join(args)}: {done.stderr.strip()}")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10, check=True)


@contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """`path` (an existing directory) made read-only for everyone, root included."""
    _mount("--bind", str(path), str(path))
    try:
        _mount("-o", "remount,bind,ro", str(path))
        yield path
    finally:
        _umount(path)


@contextmanager
def small_disk(path: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of `size` mounted on `path` (created empty) for the duration."""
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    try:
        yield path
    finally:
        _umount(path)


def fill(disk: Path) -> Path:
    """Fill the filesystem holding `disk` to the last byte; returns the filler to delete."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for chunk in (1 << 16, 4096, 1):
            while True:
                try:
                    handle.write(b"\0" * chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    # Prove it: a new file with one byte no longer fits.
    probe = disk / "probe"
    try:
        with pytest.raises(OSError) as info:
            with open(probe, "wb") as handle:
                handle.write(b"x")
                handle.flush()
                os.fsync(handle.fileno())
        assert info.value.errno == errno.ENOSPC
    finally:
        probe.unlink(missing_ok=True)
    return filler
