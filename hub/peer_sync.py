"""Peer sync: client keys converge across hubs, and the masterfiles mirror the master's release.

One sync connects to every other hub's SSH service as a peer (the shared hub key, the peer's
host key pinned to it) and:

- keys: asks each peer `keys`, then, once all answered, applies tombstones first (a
  revocation seen anywhere revokes the key here) and adds every key not tombstoned whose
  text hashes to the SHA it was listed under; a mismatch is refused and logged;
- masterfiles: asks the master `masterfiles` (one round trip); when its tree hash equals
  this hub's current one there is nothing more to do, else the manifest (a delta against our
  release) and the changed files (one packed stream) come over the same connection and the
  release is installed and switched in (hub.masterfiles, hubcluster.release_fetch).

A peer that cannot be reached is reported and does not stop the sync with the others.
`apply_db_revocations` does the same for revocations an operator wrote to the database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from hub import release_generations as generations
from hub.config import HubConfig
from hub.key_records import revocations
from hub.keystore import KeyRevoked, KeyStore
from hub.masterfiles import (
    MasterfilesError,
    current_release_id,
    current_tree_hash,
    install_release,
    is_complete,
    switch_current,
)
from hub.release_generations import Generation
from hub.store import HubStore
from hubcluster.hub_session import HubError, HubSession, open_hub
from hubcluster.keys import KeyFileError, import_public_key, key_sha
from hubcluster.messages import KeysReply, MasterfilesReply, MessageError
from hubcluster.release_fetch import HubRelease
from hubcluster.release_tree import ReleaseTreeError

log = logging.getLogger("hubcluster.peersync")

# The most of a peer's `keys` answer we read: about 200 bytes a key, so room for 300,000
# clients and their tombstones; a longer answer is refused and that peer skipped this sync.
KEYS_ANSWER_MAX_BYTES = 64 << 20
# `masterfiles` answers a release id and a tree hash: a few hundred bytes.
MASTERFILES_ANSWER_MAX_BYTES = 64 * 1024


@dataclass
class SyncResult:
    """What one sync did, for the log, hub_state and tests."""

    peers_reached: list[str] = field(default_factory=list)
    peers_failed: dict[str, str] = field(default_factory=dict)
    keys_added: int = 0
    keys_revoked: int = 0
    keys_refused: int = 0
    mirror: str = ""  # the masterfiles decision, in words
    mirror_failed: bool = False
    release_before: str | None = None
    release_after: str | None = None
    masterfiles_commands: int = 0
    transfer_commands: int = 0  # release-manifest and release-files commands run
    files_fetched: int = 0
    files_reused: int = 0
    file_bytes: int = 0  # the size of the files fetched
    bytes_fetched: int = 0  # what the transfer read off the wire: manifest delta and stream
    command_bytes: int = 0  # what the peers' commands printed
    seconds: float = 0.0

    def summary(self) -> str:
        reached = len(self.peers_reached)
        peers = f"{reached}/{reached + len(self.peers_failed)} peers reached"
        failed = "".join(f"; {a}: {why}" for a, why in sorted(self.peers_failed.items()))
        keys = (
            f"keys {self.keys_added} added, {self.keys_revoked} revoked, "
            f"{self.keys_refused} refused"
        )
        return f"{peers}{failed}; {keys}; masterfiles {self.mirror}; {self.seconds:.2f}s"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----- keys -----------------------------------------------------------------------------------


def merge_keys(keystore: KeyStore, replies: dict[str, KeysReply], result: SyncResult) -> None:
    """Bring `keystore` to the union of the replies' keys, every tombstone winning."""
    revoked = keystore.revoked()
    # Tombstones first, from every peer, so no key is added that another peer has revoked.
    for address, reply in replies.items():
        for sha, stone in reply.revoked.items():
            if sha in revoked:
                continue
            keystore.revoke(sha, stone.reason, when=stone.time or None)
            revoked.add(sha)
            result.keys_revoked += 1
            why = f" ({stone.reason})" if stone.reason else ""
            log.info("keys: revoked %s%s, as hub %s had", sha, why, address)
    present = set(keystore.keys())  # read once: a fleet's worth of key files per reply adds up
    for address, reply in replies.items():
        added = []
        for sha, text in reply.keys.items():
            if sha in revoked or sha in present:
                continue
            try:
                key = import_public_key(text, f"key {sha} from hub {address}")
                if key_sha(key) != sha:
                    raise KeyFileError(
                        f"key listed as {sha} by hub {address} hashes to {key_sha(key)}"
                    )
                keystore.add(key)
            except KeyRevoked:
                continue
            except KeyFileError as exc:
                result.keys_refused += 1
                log.warning("keys: refused %s: %s", sha, exc)
                continue
            added.append(sha)
            present.add(sha)
        if added:
            result.keys_added += len(added)
            shown = ", ".join(s[:12] for s in added[:5]) + (", ..." if len(added) > 5 else "")
            log.info("keys: added %d keys from hub %s (%s)", len(added), address, shown)


def apply_db_revocations(store: HubStore, keystore: KeyStore) -> list[str]:
    """Tombstone here every key revoked in the database; returns the SHAs newly revoked."""
    revoked = keystore.revoked()
    applied = []
    for row in revocations(store):
        sha = row["_id"]
        if sha in revoked:
            continue
        when = row.get("time")
        if isinstance(when, dt.datetime) and when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)  # pymongo hands back naive UTC by default
        stamp = when.isoformat(timespec="seconds") if isinstance(when, dt.datetime) else None
        keystore.revoke(sha, row.get("reason") or "", when=stamp)
        applied.append(sha)
        name = row.get("hostname") or "an unnamed host"
        log.info(
            "keys: revoked %s (%s) as the operator's revocation in the database asks", sha, name
        )
    return applied


# ----- masterfiles ----------------------------------------------------------------------------


async def _ask_masterfiles(session: HubSession, result: SyncResult) -> MasterfilesReply:
    text = await session.run("masterfiles", MASTERFILES_ANSWER_MAX_BYTES)
    result.masterfiles_commands += 1
    result.command_bytes += len(text.encode())
    try:
        return MasterfilesReply.from_json(text)
    except MessageError as exc:
        raise MasterfilesError(f"hub {session.address}: {exc}") from None


async def _mirror(
    session: HubSession,
    root: Path,
    result: SyncResult,
    answer: MasterfilesReply | None = None,
    target: Generation | None = None,
) -> None:
    """Install the release `session`'s hub serves (`answer`, asked if not given); with a
    `target` generation, only that generation's release, recorded as held once switched."""
    if answer is None:
        answer = await _ask_masterfiles(session, result)
    if target is not None and answer.release != target.release:
        raise MasterfilesError(
            f"hub {session.address} serves {answer.release}, not {target.describe()}"
        )
    if answer.release is None or answer.tree_hash is None:
        result.mirror = "not mirrored: the master has published nothing yet"
        log.info("masterfiles: the master %s has published nothing; kept ours", session.address)
        return
    rid = answer.release
    try:
        local = await asyncio.to_thread(current_tree_hash, root)
    except MasterfilesError as exc:
        log.warning("masterfiles: our current release is unreadable (%s); installing again", exc)
        local = None
    if local is not None and local[1] == answer.tree_hash:
        if target is not None:
            await asyncio.to_thread(generations.hold, root, target)
        result.mirror = f"in sync at release {rid}"
        log.debug("masterfiles: in sync with the master's release %s", rid)
        return
    source = HubRelease(session, rid, answer.tree_hash)
    try:
        figures = await install_release(root, rid, source)
    finally:
        result.transfer_commands += source.transfer.commands
        result.bytes_fetched += source.transfer.wire_bytes
    if target is not None:
        await asyncio.to_thread(generations.hold, root, target)
    if figures is None:
        result.mirror = f"switched {result.release_before} -> {rid} (already here)"
        log.info("masterfiles: switched back to release %s, already here, as the master did", rid)
        return
    result.files_fetched += figures.files_fetched
    result.files_reused += figures.files_reused
    result.file_bytes += figures.bytes_fetched
    result.mirror = (
        f"switched {result.release_before} -> {rid} ({figures.files_fetched} files, "
        f"{source.transfer.wire_bytes} bytes moved; {figures.files_reused} reused)"
    )
    log.info(
        "masterfiles: switched to the master's release %s (was %s): fetched %d files "
        "(%d bytes on the wire), reused %d",
        rid,
        result.release_before,
        figures.files_fetched,
        source.transfer.wire_bytes,
        figures.files_reused,
    )


async def _needed(root: Path, target: Generation, result: SyncResult) -> Generation | None:
    """`target` when this hub must still take it from a peer; None when it holds it (or a
    newer one), or had it here already and switched to it."""
    mine = await asyncio.to_thread(generations.held, root)
    if mine is not None and mine.number >= target.number:
        if mine.number > target.number:
            result.mirror = f"kept {mine.describe()}: newer than the set's {target.number}"
            log.warning("masterfiles: %s", result.mirror)
        else:
            result.mirror = f"in sync at {target.describe()}"
        return None
    if await asyncio.to_thread(is_complete, root, target.release):
        await asyncio.to_thread(_switch_to_held, root, target)
        result.mirror = f"switched {result.release_before} -> {target.describe()} (already here)"
        log.info("masterfiles: switched to %s, already here", target.describe())
        return None
    result.mirror = f"not mirrored: no reachable hub serves {target.describe()}"
    return target


def _switch_to_held(root: Path, target: Generation) -> None:
    switch_current(root, target.release)
    generations.hold(root, target)


async def _take(session: HubSession, root: Path, result: SyncResult, need: Generation) -> None:
    """Take `need` from this peer if it serves it and no other peer gave it already."""
    mine = generations.held(root)
    if mine is not None and mine.number >= need.number:
        return
    answer = await _ask_masterfiles(session, result)
    if answer.release != need.release:
        log.debug("masterfiles: %s serves %s, not %s", session.address, answer.release, need)
        return
    await _mirror(session, root, result, answer, need)


# ----- one sync -------------------------------------------------------------------------------


async def sync_with_peers(
    config: HubConfig,
    keystore: KeyStore,
    hub_key: asyncssh.SSHKey,
    master_service: str | None,
    timeout: float,
    target: Generation | None = None,
) -> SyncResult:
    """Sync keys with every other hub and bring the masterfiles to the cluster's release.

    With `target` (the newest release generation in the replica set), this hub takes that
    release from any peer serving it (the master first) unless it already holds that
    generation or a newer one: it never goes back. Without one (a cluster whose publishes
    predate generations) it mirrors `master_service`, the master hub's SSH service address
    (None when there is no master; when it is this hub, the masterfiles are left alone).
    `timeout` bounds each connection attempt; commands by the hub session's own limit.
    """
    started = time.monotonic()
    root = config.masterfiles
    result = SyncResult(release_before=current_release_id(root))
    me = config.me.service
    addresses = [h.service for h in config.hubs if h.service != me]
    mirror_from = master_service if master_service not in (None, me) else None
    if mirror_from is not None and mirror_from not in addresses:
        addresses.append(mirror_from)
    if master_service is None:
        result.mirror = "not mirrored: no master now"
    elif mirror_from is None:
        result.mirror = "not mirrored: this hub is the master"
    need = None if target is None else await _needed(root, target, result)
    if target is not None:
        mirror_from = None  # the generation decides, not who is master
        # The master first: it is where a new release starts.
        addresses.sort(key=lambda a: a != master_service)
    if mirror_from is None and need is None:
        log.debug("masterfiles: %s; keeping release %s", result.mirror, result.release_before)
    replies: dict[str, KeysReply] = {}
    taking = asyncio.Lock()
    answered = {address: asyncio.Event() for address in addresses}
    merged = asyncio.Event()

    async def visit(address: str) -> None:
        try:
            async with open_hub(address, hub_key, hub_key, timeout) as session:
                text = await session.run("keys", KEYS_ANSWER_MAX_BYTES)
                result.command_bytes += len(text.encode())
                try:
                    replies[address] = KeysReply.from_json(text)
                except MessageError as exc:
                    raise HubError(f"hub {address}: {exc}") from None
                result.peers_reached.append(address)
                answered[address].set()
                if address == mirror_from or need is not None:
                    await merged.wait()
                    try:
                        if need is None:
                            await _mirror(session, root, result)
                        else:
                            async with taking:
                                await _take(session, root, result, need)
                    except (
                        HubError,
                        MasterfilesError,
                        ReleaseTreeError,
                        OSError,
                        asyncssh.Error,
                    ) as exc:
                        result.mirror = f"failed: {exc}"
                        result.mirror_failed = True
                        log.warning(
                            "masterfiles: could not take a release from %s: %s; kept %s",
                            address,
                            exc,
                            result.release_before,
                        )
        except HubError as exc:
            result.peers_failed[address] = str(exc)
            log.warning("peer sync: %s; syncing with the others", exc)
            if address == mirror_from:
                result.mirror = f"not mirrored: the master is unreachable ({exc})"
                result.mirror_failed = True
        finally:
            answered[address].set()

    tasks = [asyncio.create_task(visit(a)) for a in addresses]
    try:
        await asyncio.gather(*(event.wait() for event in answered.values()))
        await asyncio.to_thread(merge_keys, keystore, replies, result)
        merged.set()
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    result.release_after = current_release_id(root)
    result.seconds = time.monotonic() - started
    return result
