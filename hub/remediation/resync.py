"""A hub's side of the `resync_masterfiles` action: the master asks through the set, the hub
named syncs with its peers at once and writes the outcome back."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable

from hub.remediation.ledger import RESYNCS
from hub.store import HubStore


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
