"""Masterfiles releases on a hub: content-addressed trees, switched in atomically.

Layout under the masterfiles root (`WORKDIR/masterfiles`):

    releases/<release_id>/                 the files of one release, never changed once there
    releases/<release_id>.manifest.json    its canonical manifest; present = release complete
    current -> releases/<release_id>       switched by renaming a new symlink over it

The release id is the first 16 hex digits of the SHA-256 of the canonical manifest, so two
hubs holding the same tree name it the same, and a client can check a manifest it fetched
against the id it was told. Clients fetch `<release_id>/<path>` rather than `current/...`,
so a switch in the middle of their download cannot mix two releases.

A release arrives in one of two ways: `publish_release` (the operator, on the master) or
`install_release` (peer sync, from the master), which builds the tree with the same builder
clients use (hubcluster.release_tree) and so moves only the files not already here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fcntl
import hashlib
import logging
import os
import shutil
import stat
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hubcluster.atomic import atomic_write_bytes, fsync_dir
from hubcluster.messages import (
    MANIFEST_SUFFIX,
    ManifestEntry,
    MessageError,
    encode_manifest,
    is_release_id,
    parse_manifest,
    release_id,
    tree_hash,
)
from hubcluster.promises_grammar import PromisesError, load_promises
from hubcluster.release_fetch import HubRelease
from hubcluster.release_tree import (
    PARTIAL_SUFFIX,
    LocalTree,
    TreeFigures,
    build_tree,
    file_sha256,
)
from hubcluster.release_wire import load_trusted_manifest

__all__ = [
    "KEEP_RELEASES",
    "MasterfilesError",
    "build_manifest",
    "current_release",
    "current_release_id",
    "current_release_since",
    "current_tree_hash",
    "file_sha256",
    "install_release",
    "is_complete",
    "list_releases",
    "manifest_path",
    "publish_release",
    "release_dir",
    "releases_dir",
    "switch_current",
    "tree_hash",
    "verify_release",
]

log = logging.getLogger("hubcluster.masterfiles")

_TRASH = ".trash-"
RELEASES = "releases"
CURRENT = "current"
PROMISES_FILE = "promises.toml"
KEEP_RELEASES = 3
# Version-control metadata is not policy; publishing from a checkout should not ship it.
_SKIPPED_DIRS = {".git", ".svn", ".hg"}
_CHUNK = 1 << 20


class MasterfilesError(ValueError):
    """A release that cannot be built, published or read; the message says which and why."""


def releases_dir(masterfiles_root: Path) -> Path:
    return Path(masterfiles_root) / RELEASES


def release_dir(masterfiles_root: Path, release: str) -> Path:
    return releases_dir(masterfiles_root) / release


def manifest_path(masterfiles_root: Path, release: str) -> Path:
    return releases_dir(masterfiles_root) / (release + MANIFEST_SUFFIX)


def _walk_files(directory: Path) -> Iterator[tuple[str, Path]]:
    """(relative POSIX path, absolute path) of every regular file, refusing links and devices."""
    for current, dirnames, filenames in os.walk(directory, followlinks=False):
        base = Path(current)
        for name in list(dirnames):
            if name in _SKIPPED_DIRS:
                dirnames.remove(name)
            elif (base / name).is_symlink():
                raise MasterfilesError(
                    f"{base / name}: is a symlink; masterfiles hold regular files only"
                )
        for name in filenames:
            path = base / name
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                raise MasterfilesError(f"{path}: is a symlink; masterfiles hold regular files only")
            if not stat.S_ISREG(st.st_mode):
                raise MasterfilesError(f"{path}: is not a regular file")
            yield path.relative_to(directory).as_posix(), path


def build_manifest(directory: Path) -> list[ManifestEntry]:
    """The manifest of a tree of files, sorted by path."""
    root = Path(directory)
    if not root.is_dir():
        raise MasterfilesError(f"{root}: not a directory")
    entries = []
    for rel, path in _walk_files(root):
        st = path.stat()
        entries.append(ManifestEntry(rel, file_sha256(path), st.st_size, stat.S_IMODE(st.st_mode)))
    return sorted(entries, key=lambda e: e.path)


@contextmanager
def _publish_lock(masterfiles_root: Path, wait: bool = True) -> Iterator[None]:
    """One writer at a time: operator publishes and peer-sync installs must not interleave.

    Peer sync does not wait (`wait=False`): it runs in hubd's event loop, and the next
    sync will find the tree the publish left.
    """
    releases = releases_dir(masterfiles_root)
    releases.mkdir(parents=True, exist_ok=True)
    with open(Path(masterfiles_root) / ".publish.lock", "a") as guard:
        try:
            fcntl.flock(guard, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MasterfilesError(
                "another publish or sync is writing the masterfiles now; try again"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(guard, fcntl.LOCK_UN)


def _copy_verified(source: Path, target: Path, entry: ManifestEntry) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(source, "rb") as src, open(target, "xb") as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    if digest.hexdigest() != entry.sha256:
        raise MasterfilesError(f"{source}: changed while it was being published; publish again")
    os.chmod(target, entry.mode)


def publish_release(
    masterfiles_root: Path, source_dir: Path, keep: int = KEEP_RELEASES, switch: bool = True
) -> str:
    """Validate `source_dir`, install it as a release, switch `current` to it; return its id.

    The promises file is checked first: a policy that clients could not run is refused.
    Publishing a tree that is already a release just switches `current` back to it. With
    `switch=False` the release is only installed: `serve_release` switches to it later.
    """
    source = Path(source_dir)
    promises = source / PROMISES_FILE
    if not promises.is_file():
        raise MasterfilesError(f"{source}: no {PROMISES_FILE}; refusing to publish")
    try:
        load_promises(promises)
    except PromisesError as exc:
        raise MasterfilesError(f"refusing to publish: {exc}") from None
    entries = build_manifest(source)
    rid = release_id(entries)
    root = Path(masterfiles_root)
    with _publish_lock(root):
        if not is_complete(root, rid):
            releases = releases_dir(root)
            staging = Path(tempfile.mkdtemp(prefix=f".staging-{rid}-", dir=releases))
            try:
                for entry in entries:
                    _copy_verified(source / entry.path, staging / entry.path, entry)
                _commit_staged(root, rid, staging, encode_manifest(entries))
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        else:
            # Republishing an old tree makes it the newest for pruning purposes.
            os.utime(manifest_path(root, rid))
        if switch:
            switch_current(root, rid)
            _prune(root, keep)
    return rid


def serve_release(masterfiles_root: Path, release: str, keep: int = KEEP_RELEASES) -> None:
    """Switch `current` to a release installed here, under the publish lock."""
    root = Path(masterfiles_root)
    with _publish_lock(root):
        switch_current(root, release)
        _prune(root, keep)


def _commit_staged(root: Path, rid: str, staging: Path, manifest: bytes) -> None:
    """Move a fully written tree into place; the manifest last, since it marks completeness."""
    os.chmod(staging, 0o755)
    target = release_dir(root, rid)
    if target.exists():
        # A tree without a manifest is a crash's leftover: never trusted, replaced whole.
        shutil.rmtree(target)
    os.rename(staging, target)
    atomic_write_bytes(manifest_path(root, rid), manifest)
    fsync_dir(releases_dir(root))


def is_complete(root: Path, rid: str) -> bool:
    """Whether a release's tree and manifest are both here (the manifest is written last)."""
    return release_dir(root, rid).is_dir() and manifest_path(root, rid).is_file()


def switch_current(masterfiles_root: Path, release: str) -> None:
    """Point `current` at a complete release, atomically (a new symlink renamed over the old)."""
    root = Path(masterfiles_root)
    if not is_complete(root, release):
        raise MasterfilesError(f"release {release} is not complete on this hub")
    link = root / CURRENT
    tmp = root / f".{CURRENT}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(f"{RELEASES}/{release}", tmp)
    os.replace(tmp, link)
    fsync_dir(root)


def current_release_id(masterfiles_root: Path) -> str | None:
    """The id `current` points at (no manifest read: cheap enough for every `master` call)."""
    try:
        target = os.readlink(Path(masterfiles_root) / CURRENT)
    except (FileNotFoundError, OSError):
        return None
    rid = os.path.basename(target.rstrip("/"))
    return rid if is_release_id(rid) else None


def current_release_since(masterfiles_root: Path) -> dt.datetime | None:
    """When `current` was last switched: every switch makes a new symlink, stamped then."""
    try:
        st = os.lstat(Path(masterfiles_root) / CURRENT)
    except OSError:
        return None
    return dt.datetime.fromtimestamp(st.st_mtime, dt.UTC)


def current_tree_hash(masterfiles_root: Path) -> tuple[str, str] | None:
    """(release id, full tree hash) of `current`, from its manifest file's bytes.

    Manifests are written in canonical form, so hashing the file is hashing the tree; one
    that does not start with its release id is corrupt and refused.
    """
    rid = current_release_id(masterfiles_root)
    if rid is None:
        return None
    path = manifest_path(masterfiles_root, rid)
    try:
        digest = file_sha256(path)
    except FileNotFoundError:
        raise MasterfilesError(f"release {rid}: no manifest at {path}") from None
    if not digest.startswith(rid):
        raise MasterfilesError(f"release {rid}: its manifest {path} hashes to {digest[:16]}")
    return rid, digest


def read_manifest(masterfiles_root: Path, release: str) -> list[ManifestEntry]:
    path = manifest_path(masterfiles_root, release)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MasterfilesError(f"release {release}: no manifest at {path}") from None
    try:
        return parse_manifest(data, expected_release=release)
    except MessageError as exc:
        raise MasterfilesError(str(exc)) from None


def current_release(masterfiles_root: Path) -> tuple[str, list[ManifestEntry]] | None:
    """(id, manifest) of the release `current` points at, or None if nothing is published."""
    rid = current_release_id(masterfiles_root)
    if rid is None:
        return None
    return rid, read_manifest(masterfiles_root, rid)


def list_releases(masterfiles_root: Path) -> list[str]:
    """Complete releases, newest first (by when they were last published)."""
    releases = releases_dir(masterfiles_root)
    found = []
    try:
        names = os.listdir(releases)
    except FileNotFoundError:
        return []
    for name in names:
        if name.endswith(MANIFEST_SUFFIX):
            rid = name[: -len(MANIFEST_SUFFIX)]
            if is_release_id(rid) and (releases / rid).is_dir():
                found.append(((releases / name).stat().st_mtime, rid))
    return [rid for _, rid in sorted(found, reverse=True)]


def _prune(root: Path, keep: int) -> None:
    releases = releases_dir(root)
    current = current_release_id(root)
    complete = list_releases(root)
    kept = set(complete[:keep]) | ({current} if current else set())
    trash = []
    for rid in complete:
        if rid not in kept:
            # Manifest first: a half-removed tree must never look complete.
            manifest_path(root, rid).unlink(missing_ok=True)
            trash.append(_to_trash(releases / rid))
    for name in os.listdir(releases):
        path = releases / name
        stale_partial = name.endswith(PARTIAL_SUFFIX) and name[: -len(PARTIAL_SUFFIX)] not in kept
        if (
            name.startswith(".staging-")
            or stale_partial
            or (is_release_id(name) and name not in kept)
        ):
            # Leftovers of a crashed publish; safe to remove while we hold the lock.
            trash.append(_to_trash(path))
        elif name.startswith(_TRASH) and path not in trash:
            trash.append(path)  # left by a process that ended before removing it
    if trash:
        # Removing a 10,000-file tree takes longer than building one from links: it is done
        # behind the switch, so the new release is live without waiting for it.
        threading.Thread(target=_remove_all, args=(trash,), daemon=True).start()


def _to_trash(path: Path) -> Path:
    """Rename out of the way at once (nothing looks at `.trash-*`), removed later."""
    target = path.with_name(f"{_TRASH}{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, target)
    except FileNotFoundError:
        pass
    return target


def _remove_all(paths: list[Path]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


async def install_release(
    masterfiles_root: Path,
    release: str,
    source: HubRelease,
    keep: int = KEEP_RELEASES,
) -> TreeFigures | None:
    """Make `release`, held by another hub (`source`), this hub's current release.

    Returns None when the release was already complete here (only `current` moved), else
    what the build cost. The manifest comes as a delta against our current release (proved
    by its hash to be `release`, and the source's tree hash); files our current release
    holds are linked from it unread, the rest come in one stream, verified as they arrive.
    The manifest is written after the tree (it marks the release complete), then `current`
    is switched.
    """
    root = Path(masterfiles_root)
    # Every file-system step runs in a thread: fsyncs must not stall hubd's event loop.
    with _publish_lock(root, wait=False):
        if await asyncio.to_thread(is_complete, root, release):
            await asyncio.to_thread(_switch_back, root, release, keep)
            return None
        base = await asyncio.to_thread(_current_tree, root)
        entries, manifest = await source.manifest(
            base[0] if base else None, base[1].entries if base else None
        )
        figures = await build_tree(
            releases_dir(root), release, entries, source.fetch, [base[1]] if base else []
        )
        await asyncio.to_thread(_complete_built, root, release, manifest, keep)
        _remember(release, entries)
    return figures


# Manifests are named by their hash: one read and proved (or built here) stays true for the
# life of the process, so a mirror does not read its 10,000-entry manifest every sync.
_PROVED: dict[str, list[ManifestEntry]] = {}
_PROVED_KEEP = 4


def _remember(release: str, entries: list[ManifestEntry]) -> None:
    _PROVED[release] = entries
    while len(_PROVED) > _PROVED_KEEP:
        del _PROVED[next(iter(_PROVED))]


def _current_tree(root: Path) -> tuple[str, LocalTree] | None:
    """Our current release and its tree, from its recorded manifest (proved by its hash)."""
    rid = current_release_id(root)
    if rid is None or not is_complete(root, rid):
        return None
    entries = _PROVED.get(rid)
    if entries is None:
        try:
            entries = load_trusted_manifest(manifest_path(root, rid).read_bytes(), rid)
        except (OSError, MessageError) as exc:
            log.warning("masterfiles: release %s here is unreadable (%s); not reusing it", rid, exc)
            return None
        _remember(rid, entries)
    return rid, LocalTree(release_dir(root, rid), entries)


def _switch_back(root: Path, release: str, keep: int) -> None:
    os.utime(manifest_path(root, release))
    switch_current(root, release)
    _prune(root, keep)


def _complete_built(root: Path, release: str, manifest: bytes, keep: int) -> None:
    """The manifest after the tree (it marks the release complete), then the switch."""
    atomic_write_bytes(manifest_path(root, release), manifest)
    fsync_dir(releases_dir(root))
    switch_current(root, release)
    _prune(root, keep)


def verify_release(masterfiles_root: Path, release: str) -> list[str]:
    """Problems found comparing a release's files with its manifest (empty = intact)."""
    try:
        entries = read_manifest(masterfiles_root, release)
    except MasterfilesError as exc:
        return [str(exc)]
    base = release_dir(masterfiles_root, release)
    problems = []
    listed = {e.path for e in entries}
    for entry in entries:
        path = base / entry.path
        if not path.is_file() or path.is_symlink():
            problems.append(f"{entry.path}: missing")
        elif file_sha256(path) != entry.sha256:
            problems.append(f"{entry.path}: content differs from the manifest")
    try:
        extra = [rel for rel, _ in _walk_files(base) if rel not in listed]
    except MasterfilesError as exc:
        problems.append(str(exc))
        extra = []
    problems.extend(f"{rel}: not in the manifest" for rel in extra)
    return problems
