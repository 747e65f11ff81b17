"""A hub's side of the `resync_masterfiles` action: the master asks through the set, the hub
named syncs with its peers at once and writes the outcome back.

A forced re-sync does one thing the periodic sync does not: the periodic sync compares
generations only, so a hub whose `current` link was moved by hand (a rollback on one hub,
a restored directory) while its generation file still names the set's newest generation
looks "in sync" to it forever. restore_current points such a link back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path

from hub import release_generations as generations
from hub.masterfiles import current_release_id, is_complete, switch_current
from hub.remediation.ledger import RESYNCS
from hub.store import HubStore


def restore_current(root: Path, newest: generations.Generation | None) -> str | None:
    """Switch `current` back to the set's newest generation when this hub holds it complete
    but points elsewhere; what was done, or None when there was nothing to do here."""
    mine = generations.held(root)
    if newest is None or mine is None or mine.number != newest.number:
        return None  # not held here: taking it from a peer is the periodic sync's work
    was = current_release_id(root)
    if was == mine.release or mine.release != newest.release:
        return None
    if not is_complete(root, mine.release):
        return None
    switch_current(root, mine.release)
    return f"current moved back from {was or 'nothing'} to {newest.describe()}"


async def answer_resyncs(store: HubStore, hub: str, sync: Callable[[], Awaitable[str]]) -> None:
    """Run `sync` once for the open asks naming `hub`, and mark them answered."""
    coll = store.db[RESYNCS]
    asks = await asyncio.to_thread(lambda: list(coll.find({"hub": hub, "done": None})))
    if not asks:
        return
    try:
        result, ok = await sync(), True
    except Exception as exc:  # noqa: BLE001 - the master is told, in one line, whatever it was
        result, ok = f"{type(exc).__name__}: {exc}"[:200], False
    done = {"done": dt.datetime.now(dt.UTC), "ok": ok, "result": result}
    ids = [a["_id"] for a in asks]
    await asyncio.to_thread(coll.update_many, {"_id": {"$in": ids}}, {"$set": done})
