"""Build a release tree from its manifest, fetching only files whose content is not here yet.

Clients (`inputs.d/<release>/`) and hubs (`masterfiles/releases/<release>/`) both install a
release this way. The tree is built beside the finished ones, in `<release>.partial/`. A
file is hard-linked (copied if linking is impossible) from a complete tree already here
whose recorded manifest lists the same content and mode: those trees were verified when
installed and are never changed, and their manifests are proved by their hash, so their
files are not read again. A file kept from an earlier, interrupted attempt is re-hashed
(that tree was never verified). The rest come from `fetch` in one call, verified as they
arrive. Only a complete tree that passes the caller's `check` is flushed to disk and renamed
to `<release>/`. What to do next (write the manifest beside it, switch a symlink) is the
caller's business.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import os
import shutil
import stat
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hubcluster.atomic import fsync_dir
from hubcluster.messages import ManifestEntry

PARTIAL_SUFFIX = ".partial"
_CHUNK = 1 << 20

# Writes entries[i] for each i of `wanted` into the partial tree given, each verified; raises
# ReleaseTreeError (after keeping what did arrive) if it cannot.
Fetch = Callable[[list[ManifestEntry], list[int], Path], Awaitable[None]]
# Raises (with the reason) when a complete tree must not be installed.
Check = Callable[[Path], None]


class ReleaseTreeError(Exception):
    """A tree could not be built; what was fetched stays in the partial tree for a retry."""


@dataclass
class TreeFigures:
    files_fetched: int = 0
    files_reused: int = 0
    bytes_fetched: int = 0


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def matches(path: str | Path, entry: ManifestEntry) -> bool:
    """Whether `path` is a regular file holding exactly what `entry` lists (read and hashed)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISREG(st.st_mode)
        and st.st_size == entry.size
        and file_sha256(Path(path)) == entry.sha256
    )


@dataclass(frozen=True)
class LocalTree:
    """A complete tree here and its recorded manifest, proved by its hash when read."""

    root: Path
    entries: list[ManifestEntry]


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def partial_dir(store: Path, release: str) -> Path:
    return Path(store) / f"{release}{PARTIAL_SUFFIX}"


def _clear_strays(partial: Path, entries: list[ManifestEntry]) -> None:
    """Remove from a partial tree anything the release does not list (so the rename is exact)."""
    files = {e.path for e in entries}
    dirs = {"."}
    for p in files:
        parent = Path(p).parent
        while str(parent) != ".":
            dirs.add(str(parent))
            parent = parent.parent
    for current, dirnames, filenames in os.walk(partial, topdown=True):
        base = Path(current)
        rel_base = base.relative_to(partial)
        for name in list(dirnames):
            rel = str(rel_base / name)
            if rel not in dirs or (base / name).is_symlink():
                remove(base / name)
                dirnames.remove(name)
        for name in filenames:
            if str(rel_base / name) not in files:
                remove(base / name)


def _place_local(
    partial: Path, entries: list[ManifestEntry], trees: Sequence[LocalTree], fresh: bool
) -> tuple[list[int], int]:
    """Fill the partial tree from trees here; returns the indexes still to fetch, and how
    many files were placed."""
    if not fresh:
        _clear_strays(partial, entries)
    sources: dict[tuple[str, int], tuple[int, str]] = {}
    fds: list[int] = []
    try:
        for tree in trees:
            # Links made relative to open directories: no walk down the long prefix per file.
            try:
                fds.append(os.open(tree.root, os.O_RDONLY | os.O_DIRECTORY))
            except OSError:
                continue  # gone since: its files will be fetched
            for e in tree.entries:
                sources.setdefault((e.sha256, e.mode), (fds[-1], e.path))
        fds.append(os.open(partial, os.O_RDONLY | os.O_DIRECTORY))
        return _link_or_list(partial, fds[-1], entries, sources, fresh)
    finally:
        for fd in fds:
            os.close(fd)


def _link_or_list(
    partial: Path,
    partial_fd: int,
    entries: list[ManifestEntry],
    sources: dict[tuple[str, int], tuple[int, str]],
    fresh: bool,
) -> tuple[list[int], int]:
    made: set[str] = set()
    missing: list[int] = []
    placed = 0
    for i, entry in enumerate(entries):
        path = entry.path
        if not fresh and matches(partial / path, entry):
            os.chmod(partial / path, entry.mode)
            placed += 1
            continue
        source = sources.get((entry.sha256, entry.mode))
        if source is None:
            missing.append(i)
            continue
        if not fresh:
            remove(partial / path)
        parent = os.path.dirname(path)
        if parent and parent not in made:
            os.makedirs(partial / parent, exist_ok=True)
            made.add(parent)
        try:
            os.link(source[1], path, src_dir_fd=source[0], dst_dir_fd=partial_fd)
        except FileNotFoundError:
            missing.append(i)  # that tree lost a file since: fetch it
            continue
        except OSError:  # another file system, or too many links: a copy will do
            src = os.open(source[1], os.O_RDONLY, dir_fd=source[0])
            with open(src, "rb") as reader, open(partial / path, "wb") as writer:
                shutil.copyfileobj(reader, writer)
            os.chmod(partial / path, entry.mode)
        placed += 1
    return missing, placed


def _prepare_partial(final: Path, partial: Path) -> bool:
    """An empty-or-resumed partial tree; True when it is new (nothing in it to check)."""
    if final.is_dir() and not partial.exists():
        # Complete but never used (a crash at the last step): verify it like a partial.
        os.rename(final, partial)
    remove(final)
    fresh = not partial.exists()
    partial.mkdir(exist_ok=True)
    # The same mode whatever the umask: hubs serve these trees to clients.
    os.chmod(partial, 0o755)
    return fresh


async def build_tree(
    store: Path,
    release: str,
    entries: list[ManifestEntry],
    fetch: Fetch,
    trees: Sequence[LocalTree] = (),
    check: Check | None = None,
) -> TreeFigures:
    """Build `store/<release>/` from `entries`; on failure the partial tree is kept for a retry.

    `trees` are complete trees here whose files are linked in when their manifest lists the
    same content and mode; the rest are fetched in one call to `fetch`.
    """
    store = Path(store)
    final = store / release
    partial = partial_dir(store, release)
    fresh = await asyncio.to_thread(_prepare_partial, final, partial)
    missing, placed = await asyncio.to_thread(_place_local, partial, entries, trees, fresh)
    figures = TreeFigures(files_reused=placed)
    if missing:
        await fetch(entries, missing, partial)
        figures.files_fetched = len(missing)
        figures.bytes_fetched = sum(entries[i].size for i in missing)
    if check is not None:
        check(partial)
    # In a thread: flushing must not stall the event loop of the hub or agent running this.
    await asyncio.to_thread(_flush_and_rename, partial, final)
    return figures


def _flush_and_rename(partial: Path, final: Path) -> None:
    # One flush of the file system instead of an fsync per file (about 1 ms each, 10 s for a
    # 10,000-file release): every file is on disk before the tree can be renamed into use.
    flush_file_system(partial)
    os.rename(partial, final)
    fsync_dir(final.parent)


def flush_file_system(path: Path) -> None:
    """Everything written to the file system holding `path` reaches the disk (syncfs(2))."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _SYNCFS is None or _SYNCFS(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _load_syncfs() -> Callable[[int], int] | None:
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
    except OSError:
        return None


_SYNCFS = _load_syncfs()
