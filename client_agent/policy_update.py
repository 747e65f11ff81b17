"""Bring `inputs/` to a hub's release, fetching only files whose content changed.

The agent asks the hub for the release's manifest as a delta against the release in force
(whose manifest it recorded beside the tree, `inputs.d/<release>.manifest.json`), so one
changed file costs a few hundred bytes of manifest. The new tree is built by the shared
release-tree builder (hubcluster.release_tree) in `inputs.d/<release>.partial/`: files the
tree in force holds are linked from it, the rest come in one packed stream
(hubcluster.release_fetch), each verified against the manifest. Only a complete, verified
tree with a valid promises file becomes `inputs.d/<release>/` and is switched in by renaming
a new `inputs` symlink over the old, so a reader that resolves `inputs` once sees one
release whole. A transfer cut half way leaves the old policy in force and its progress in
the partial tree for the next run.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from client_agent import policy_generation
from client_agent.state import ClientState
from hubcluster.atomic import atomic_write_bytes, fsync_dir
from hubcluster.hub_session import HubSession
from hubcluster.messages import MANIFEST_SUFFIX, MessageError
from hubcluster.promises_grammar import PromisesError, load_promises
from hubcluster.release_fetch import HubRelease
from hubcluster.release_tree import LocalTree, ReleaseTreeError, build_tree, remove
from hubcluster.release_wire import load_trusted_manifest

log = logging.getLogger("hubcluster.agent")

PROMISES_FILE = "promises.toml"
KEEP_TREES = 2


class PolicyUpdateError(Exception):
    """The update did not complete; the policy in force is unchanged."""


@dataclass
class UpdateResult:
    release: str
    changed: bool
    files_fetched: int = 0
    files_reused: int = 0
    bytes_moved: int = 0


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


def _check_promises(tree: Path) -> None:
    # Strict, like publish: a release with any promise this agent refuses does not replace the
    # policy in force. (A policy already in force is run leniently: see run_promises.)
    try:
        load_promises(tree / PROMISES_FILE)
    except PromisesError as exc:
        raise PolicyUpdateError(f"its promises file is bad: {exc}") from None


def _switch_inputs(state: ClientState, release: str) -> None:
    if state.inputs.exists() and not state.inputs.is_symlink():
        raise PolicyUpdateError(f"{state.inputs} is a real directory, not a symlink; move it away")
    tmp = state.workdir / f".inputs.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(f"{state.inputs_store.name}/{release}", tmp)
    os.replace(tmp, state.inputs)
    fsync_dir(state.workdir)


def _prune(store: Path, keep: set[str]) -> None:
    kept = keep | {name + MANIFEST_SUFFIX for name in keep}
    for path in store.iterdir():
        if path.name.startswith(".update.lock"):
            continue
        if path.name not in kept:
            remove(path)


def _tree_in_force(store: Path, release: str | None) -> LocalTree | None:
    """The tree in force and its recorded manifest (proved by its hash), if both are here."""
    if release is None or not (store / release).is_dir():
        return None
    try:
        data = (store / (release + MANIFEST_SUFFIX)).read_bytes()
        return LocalTree(store / release, load_trusted_manifest(data, release))
    except (OSError, MessageError) as exc:
        log.info("policy: no usable manifest of release %s here (%s); fetching whole", release, exc)
        return None


async def update_policy(
    state: ClientState, session: HubSession, release: str, generation: int | None = None
) -> UpdateResult:
    """Make `inputs/` the hub's `release`; raises PolicyUpdateError leaving the old one in force.

    A release of a lower `generation` than the one in force is refused (hub.release_generations).
    """
    current_release = state.current_release()
    if current_release == release and (state.inputs_store / release).is_dir():
        policy_generation.record(state, release, generation)
        return UpdateResult(release, changed=False)
    going_back = policy_generation.refusal(state, release, generation)
    if going_back:
        raise PolicyUpdateError(going_back)
    store = state.inputs_store
    store.mkdir(parents=True, exist_ok=True)
    keeping = f"kept release {current_release}" if current_release else "no policy yet"
    with _update_lock(store):
        try:
            updated = await _update(state, session, release, current_release)
            policy_generation.record(state, release, generation)
            return updated
        except (PolicyUpdateError, ReleaseTreeError) as exc:
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
    state: ClientState, session: HubSession, release: str, current_release: str | None
) -> UpdateResult:
    store = state.inputs_store
    base = await asyncio.to_thread(_tree_in_force, store, current_release)
    source = HubRelease(session, release)
    entries, manifest = await source.manifest(
        current_release if base else None, base.entries if base else None
    )
    figures = await build_tree(
        store, release, entries, source.fetch, [base] if base else [], check=_check_promises
    )
    # After the tree, before the switch: a manifest here means its tree is complete.
    atomic_write_bytes(store / (release + MANIFEST_SUFFIX), manifest)
    _switch_inputs(state, release)
    _prune(store, {release, current_release or release, ".update.lock"})
    result = UpdateResult(
        release,
        changed=True,
        files_fetched=figures.files_fetched,
        files_reused=figures.files_reused,
        bytes_moved=source.transfer.wire_bytes,
    )
    log.info(
        "policy: switched to release %s (%d files fetched, %d reused, %d bytes moved)",
        release,
        result.files_fetched,
        result.files_reused,
        result.bytes_moved,
    )
    return result
