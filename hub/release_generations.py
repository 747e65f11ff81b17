"""Release generations: the order of publishes, kept in the replica set, that only grows.

Every publish takes the next generation (an old tree published again takes a new one), and
the record `{_id: generation, release, tree_hash, hub, time}` is written with a majority
write before any hub serves the release, so it survives a failover (`publish_seconds` is
added once the publish is durable). The newest record is the release every hub converges
to; a hub never switches to a lower generation than the one it holds, and clients (told the
generation by `master`) never move to a lower one either.

Each hub keeps the generation of its `current` release beside it, in
`masterfiles/generation.json`, written before `current` is switched.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError, PyMongoError

from hub.masterfiles import MasterfilesError, file_sha256, manifest_path
from hub.store import HubStore
from hubcluster.atomic import atomic_write_bytes

GENERATIONS = "release_generations"
GENERATION_FILE = "generation.json"
# Set on a generation's record once its publish is durable: seconds from install to then.
PUBLISH_SECONDS = "publish_seconds"
# Two publishes racing for the same number: the loser takes the next, this many times.
ALLOCATE_ATTEMPTS = 20


@dataclass(frozen=True)
class Generation:
    number: int
    release: str
    tree_hash: str | None = None

    def describe(self) -> str:
        return f"release {self.release} (generation {self.number})"


def latest(store: HubStore) -> Generation | None:
    """The newest generation the replica set holds (read from the primary), or None."""
    doc = store.db[GENERATIONS].find_one(sort=[("_id", DESCENDING)])
    if doc is None:
        return None
    return Generation(int(doc["_id"]), doc["release"], doc.get("tree_hash"))


def record(store: HubStore, release: str, tree_hash: str | None, hub: str) -> Generation:
    """Take the next generation for `release`; majority-written before this returns."""
    for _ in range(ALLOCATE_ATTEMPTS):
        newest = latest(store)
        number = (newest.number if newest else 0) + 1
        doc: dict[str, Any] = {
            "_id": number,
            "release": release,
            "tree_hash": tree_hash,
            "hub": hub,
            "time": dt.datetime.now(dt.UTC),
        }
        try:
            store.db[GENERATIONS].insert_one(doc)
        except DuplicateKeyError:
            continue
        return Generation(number, release, tree_hash)
    raise RuntimeError(f"could not take a release generation in {ALLOCATE_ATTEMPTS} attempts")


def record_publish_seconds(store: HubStore, generation: Generation, seconds: float) -> bool:
    """Note how long the publish of `generation` took until durable (a majority held it).

    False when the set did not take the note: the release is no less durable for that.
    """
    try:
        store.db[GENERATIONS].update_one(
            {"_id": generation.number}, {"$set": {PUBLISH_SECONDS: round(seconds, 3)}}
        )
    except PyMongoError:
        return False
    return True


def publish_seconds(store: HubStore, number: int) -> float | None:
    """The publish duration recorded on generation `number`; None until its publish is
    durable (or for a publish by an older hubctl)."""
    doc = store.db[GENERATIONS].find_one({"_id": number}, {PUBLISH_SECONDS: 1})
    value = None if doc is None else doc.get(PUBLISH_SECONDS)
    return float(value) if isinstance(value, int | float) else None


def tree_hash_of(masterfiles_root: Path, release: str) -> str:
    """The full tree hash of a complete release here (manifests are stored canonical)."""
    return file_sha256(manifest_path(masterfiles_root, release))


# ----- this hub's generation, beside `current` ------------------------------------------------


def _path(masterfiles_root: Path) -> Path:
    return Path(masterfiles_root) / GENERATION_FILE


def held(masterfiles_root: Path) -> Generation | None:
    """The generation this hub last switched to (its release may be older than `current`
    only within a switch), or None for a hub that never took a generation."""
    try:
        doc = json.loads(_path(masterfiles_root).read_bytes())
        return Generation(int(doc["generation"]), str(doc["release"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return None


def served_generation(masterfiles_root: Path, current: str | None) -> int | None:
    """The generation of the release `current` names, when this hub knows it."""
    mine = held(masterfiles_root)
    return mine.number if mine is not None and mine.release == current else None


def hold(masterfiles_root: Path, generation: Generation) -> None:
    """Record that this hub now holds `generation` (before switching `current` to it)."""
    mine = held(masterfiles_root)
    if mine is not None and mine.number > generation.number:
        raise MasterfilesError(
            f"refusing to go back from generation {mine.number} to {generation.number}"
        )
    data = json.dumps({"generation": generation.number, "release": generation.release})
    atomic_write_bytes(_path(masterfiles_root), data.encode())
