"""Build a release tree from its manifest, fetching only files whose content is not here yet.

Clients (`inputs.d/<release>/`) and hubs (`masterfiles/releases/<release>/`) both install a
release this way. The tree is built beside the finished ones, in `<release>.partial/`:
a file whose SHA-256 matches the manifest is kept from an earlier, interrupted attempt or
hard-linked (copied if linking is impossible) from a tree already here; the rest come from
the `fetch` callable and are verified against the manifest before they are placed. Only a
complete tree that passes the caller's `check` is renamed to `<release>/`. What to do next
(switch a symlink, write the manifest beside it) is the caller's business.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import stat
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from hubcluster.atomic import fsync_dir
from hubcluster.messages import MANIFEST_SUFFIX, ManifestEntry

FETCH_CONCURRENCY = 16
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
PARTIAL_SUFFIX = ".partial"
_CHUNK = 1 << 20

# Writes the content of `entry` to the local path given; raises ReleaseTreeError if it cannot.
Fetch = Callable[[ManifestEntry, Path], Awaitable[None]]
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


def matches(path: Path, entry: ManifestEntry) -> bool:
    """Whether `path` is a regular file holding exactly what `entry` lists."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return (
        stat.S_ISREG(st.st_mode) and st.st_size == entry.size and file_sha256(path) == entry.sha256
    )


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
    partial: Path, entries: list[ManifestEntry], reuse_from: Sequence[Path]
) -> tuple[list[ManifestEntry], int]:
    """Fill the partial tree from local copies; returns what must be fetched and how many reused."""
    _clear_strays(partial, entries)
    missing: list[ManifestEntry] = []
    reused = 0
    for entry in entries:
        target = partial / entry.path
        if matches(target, entry):
            os.chmod(target, entry.mode)
            reused += 1
            continue
        source = next((s / entry.path for s in reuse_from if matches(s / entry.path, entry)), None)
        if source is None:
            missing.append(entry)
            continue
        remove(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if os.stat(source).st_mode & 0o7777 != entry.mode:
                raise OSError("a different mode; a link would change the tree in force")
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
            os.chmod(target, entry.mode)
        reused += 1
    return missing, reused


def _verify_and_place(tmp: Path, entry: ManifestEntry, partial: Path) -> None:
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    if tmp.stat().st_size != entry.size or file_sha256(tmp) != entry.sha256:
        tmp.unlink(missing_ok=True)
        raise ReleaseTreeError(f"{entry.path}: fetched content does not match the manifest")
    os.chmod(tmp, entry.mode)
    target = partial / entry.path
    remove(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)


def _prepare_partial(final: Path, partial: Path) -> None:
    if final.is_dir() and not partial.exists():
        # Complete but never used (a crash at the last step): verify it like a partial.
        os.rename(final, partial)
    remove(final)
    partial.mkdir(exist_ok=True)
    # The same mode whatever the umask: hubs serve these trees to clients.
    os.chmod(partial, 0o755)


async def build_tree(
    store: Path,
    release: str,
    entries: list[ManifestEntry],
    fetch: Fetch,
    reuse_from: Sequence[Path] = (),
    check: Check | None = None,
    concurrency: int = FETCH_CONCURRENCY,
) -> TreeFigures:
    """Build `store/<release>/` from `entries`; on failure the partial tree is kept for a retry.

    `reuse_from` are trees already here whose files may be linked in when their hash matches.
    """
    store = Path(store)
    final = store / release
    partial = partial_dir(store, release)
    await asyncio.to_thread(_prepare_partial, final, partial)
    figures = TreeFigures()
    missing, figures.files_reused = await asyncio.to_thread(
        _place_local, partial, entries, list(reuse_from)
    )
    scratch = store / f".fetch-{release}"
    remove(scratch)
    scratch.mkdir()
    try:
        limit = asyncio.Semaphore(concurrency)

        async def fetch_one(index: int, entry: ManifestEntry) -> None:
            async with limit:
                tmp = scratch / str(index)
                await fetch(entry, tmp)
                await asyncio.to_thread(_verify_and_place, tmp, entry, partial)
                figures.files_fetched += 1
                figures.bytes_fetched += entry.size

        tasks = [asyncio.create_task(fetch_one(i, e)) for i, e in enumerate(missing)]
        try:
            # Every fetch runs to its end, so one missing file does not waste the others:
            # what arrived stays in the partial tree for the next attempt.
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            raise failures[0]
    finally:
        remove(scratch)
    if check is not None:
        check(partial)
    # In a thread: the fsync must not stall the event loop of the hub or agent running this.
    await asyncio.to_thread(_rename_synced, partial, final)
    return figures


def _rename_synced(partial: Path, final: Path) -> None:
    os.rename(partial, final)
    fsync_dir(final.parent)


# ----- over SFTP (a hub's read-only view of its `releases/`) -----------------------------------


async def read_remote_manifest(sftp: asyncssh.SFTPClient, release: str) -> bytes:
    """The manifest bytes of `release` as the hub serves them (not yet checked)."""
    try:
        async with sftp.open(release + MANIFEST_SUFFIX, "rb") as handle:
            # The annotation picks read()'s bytes form: asyncssh types it AnyStr, by open mode.
            data: bytes = await handle.read(MAX_MANIFEST_BYTES + 1)
    except asyncssh.SFTPError as exc:
        raise ReleaseTreeError(
            f"fetching the manifest of release {release}: {exc.reason}"
        ) from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise ReleaseTreeError(f"manifest of release {release} is larger than {MAX_MANIFEST_BYTES}")
    return data


def sftp_fetcher(sftp: asyncssh.SFTPClient, release: str) -> Fetch:
    """A `Fetch` reading `<release>/<path>` from a hub's releases over SFTP."""

    async def fetch(entry: ManifestEntry, local: Path) -> None:
        try:
            await sftp.get(f"{release}/{entry.path}", str(local))
        except asyncssh.SFTPError as exc:
            raise ReleaseTreeError(f"fetching {entry.path}: {exc.reason}") from None

    return fetch
