"""Bring `inputs/` to a hub's release, fetching only files whose content changed.

The new tree is built beside the old one in `inputs.d/<release>.partial/`: files whose
SHA-256 matches the release's manifest are linked from the tree in force (or kept from an
earlier, interrupted attempt), the rest are fetched over SFTP, and every file is verified
against the manifest. Only a complete, verified tree with a valid promises file is renamed
to `inputs.d/<release>/` and switched in by renaming a new `inputs` symlink over the old,
so a reader that resolves `inputs` once sees one release whole. A transfer cut half way
leaves the old policy in force and its progress in the partial tree for the next run.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from client_agent.promises import PromisesError, load_promises
from client_agent.state import ClientState
from hubcluster.atomic import fsync_dir
from hubcluster.messages import MANIFEST_SUFFIX, ManifestEntry, MessageError, parse_manifest

log = logging.getLogger("hubcluster.agent")

PROMISES_FILE = "promises.toml"
KEEP_TREES = 2
FETCH_CONCURRENCY = 16
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
_CHUNK = 1 << 20


class PolicyUpdateError(Exception):
    """The update did not complete; the policy in force is unchanged."""


@dataclass
class UpdateResult:
    release: str
    changed: bool
    files_fetched: int = 0
    files_reused: int = 0
    bytes_moved: int = 0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _matches(path: Path, entry: ManifestEntry) -> bool:
    try:
        st = path.lstat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == entry.size and _sha256(path) == entry.sha256


@contextmanager
def _update_lock(store: Path) -> Iterator[None]:
    with open(store / ".update.lock", "a") as guard:
        try:
            fcntl.flock(guard, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PolicyUpdateError("another agent run is updating the policy now") from None
        try:
            yield
        finally:
            fcntl.flock(guard, fcntl.LOCK_UN)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _clear_strays(partial: Path, entries: list[ManifestEntry]) -> None:
    """Remove from a partial tree anything the release does not list (so the rename is exact)."""
    files = {e.path for e in entries}
    dirs = {str(Path(p).parent) for p in files} | {"."}
    for p in list(files):
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
                _remove(base / name)
                dirnames.remove(name)
        for name in filenames:
            if str(rel_base / name) not in files:
                _remove(base / name)


def _place_local(
    partial: Path, entries: list[ManifestEntry], current: Path | None
) -> tuple[list[ManifestEntry], int]:
    """Fill the partial tree from local copies; returns what must be fetched and how many reused."""
    _clear_strays(partial, entries)
    missing: list[ManifestEntry] = []
    reused = 0
    for entry in entries:
        target = partial / entry.path
        if _matches(target, entry):
            os.chmod(target, entry.mode)
            reused += 1
            continue
        source = current / entry.path if current is not None else None
        if source is not None and _matches(source, entry):
            _remove(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                if os.stat(source).st_mode & 0o7777 != entry.mode:
                    raise OSError("a different mode; a link would change the tree in force")
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
                os.chmod(target, entry.mode)
            reused += 1
            continue
        missing.append(entry)
    return missing, reused


async def _read_manifest(sftp: asyncssh.SFTPClient, release: str) -> bytes:
    async with sftp.open(release + MANIFEST_SUFFIX, "rb") as handle:
        data = await handle.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        raise PolicyUpdateError(
            f"manifest of release {release} is larger than {MAX_MANIFEST_BYTES}"
        )
    return data


async def _fetch(
    sftp: asyncssh.SFTPClient,
    release: str,
    entry: ManifestEntry,
    partial: Path,
    scratch: Path,
    index: int,
) -> None:
    tmp = scratch / str(index)
    try:
        await sftp.get(f"{release}/{entry.path}", str(tmp))
    except asyncssh.SFTPError as exc:
        raise PolicyUpdateError(f"fetching {entry.path}: {exc.reason}") from None
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    if tmp.stat().st_size != entry.size or _sha256(tmp) != entry.sha256:
        tmp.unlink(missing_ok=True)
        raise PolicyUpdateError(f"{entry.path}: fetched content does not match the manifest")
    os.chmod(tmp, entry.mode)
    target = partial / entry.path
    _remove(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)


def _switch_inputs(state: ClientState, release: str) -> None:
    if state.inputs.exists() and not state.inputs.is_symlink():
        raise PolicyUpdateError(f"{state.inputs} is a real directory, not a symlink; move it away")
    tmp = state.workdir / f".inputs.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(f"{state.inputs_store.name}/{release}", tmp)
    os.replace(tmp, state.inputs)
    fsync_dir(state.workdir)


def _prune(store: Path, keep: set[str]) -> None:
    for path in store.iterdir():
        if path.name.startswith(".update.lock"):
            continue
        if path.name not in keep:
            _remove(path)


async def update_policy(
    state: ClientState, sftp: asyncssh.SFTPClient, release: str
) -> UpdateResult:
    """Make `inputs/` the hub's `release`; raises PolicyUpdateError leaving the old one in force."""
    current_release = state.current_release()
    if current_release == release and (state.inputs_store / release).is_dir():
        return UpdateResult(release, changed=False)
    store = state.inputs_store
    store.mkdir(parents=True, exist_ok=True)
    keeping = f"kept release {current_release}" if current_release else "no policy yet"
    with _update_lock(store):
        try:
            return await _update(state, sftp, release, current_release)
        except PolicyUpdateError as exc:
            raise PolicyUpdateError(
                f"update to release {release} failed: {exc}; {keeping}"
            ) from None
        except (OSError, asyncssh.Error, MessageError) as exc:
            what = str(exc) or type(exc).__name__
            raise PolicyUpdateError(
                f"update to release {release} failed: {what}; {keeping}, and what was fetched "
                "is kept for the next run"
            ) from None


async def _update(
    state: ClientState, sftp: asyncssh.SFTPClient, release: str, current_release: str | None
) -> UpdateResult:
    store = state.inputs_store
    manifest = await _read_manifest(sftp, release)
    entries = parse_manifest(manifest, expected_release=release)
    result = UpdateResult(release, changed=True, bytes_moved=len(manifest))
    final = store / release
    partial = store / f"{release}.partial"
    if final.is_dir() and not partial.exists():
        # Complete but never switched to (a crash at the last step): verify it like a partial.
        os.rename(final, partial)
    _remove(final)
    partial.mkdir(exist_ok=True)
    current = state.inputs_root()
    missing, result.files_reused = await asyncio.to_thread(_place_local, partial, entries, current)
    scratch = store / f".fetch-{release}"
    _remove(scratch)
    scratch.mkdir()
    try:
        limit = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def fetch_one(index: int, entry: ManifestEntry) -> None:
            async with limit:
                await _fetch(sftp, release, entry, partial, scratch, index)
                result.files_fetched += 1
                result.bytes_moved += entry.size

        tasks = [asyncio.create_task(fetch_one(i, e)) for i, e in enumerate(missing)]
        try:
            # Every fetch runs to its end, so one missing file does not waste the others:
            # what arrived stays in the partial tree for the next run.
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
        _remove(scratch)
    try:
        load_promises(partial / PROMISES_FILE)
    except PromisesError as exc:
        raise PolicyUpdateError(f"its promises file is bad: {exc}") from None
    os.rename(partial, final)
    fsync_dir(store)
    _switch_inputs(state, release)
    _prune(store, {release, current_release or release, ".update.lock"})
    log.info(
        "policy: switched to release %s (%d files fetched, %d reused, %d bytes moved)",
        release,
        result.files_fetched,
        result.files_reused,
        result.bytes_moved,
    )
    return result
