"""The resync_masterfiles action through the replica set: the master asks, the hub named runs
its peer sync and answers; the master waits for that answer. Over the wire to the stand-in."""

from __future__ import annotations

import asyncio

from hub.remediation.actions import Actions
from hub.remediation.ledger import DONE, RESYNCS
from hub.remediation.resync import answer_resyncs
from hub.remediation.rules import RemediationSettings
from hub.store import HubStore


def test_a_resync_ask_is_answered_by_the_hub_it_names(standin_set):
    client = standin_set.client("operator")
    store = HubStore(client)
    synced: list[str] = []

    async def sync() -> str:
        synced.append("hub3")
        return "hub3 synced with its peers"

    async def scenario() -> tuple[str, str]:
        actions = Actions(store, RemediationSettings(action_timeout=20), None, lambda sha: None)  # type: ignore[arg-type]
        asked = asyncio.create_task(actions.resync("hub3", "diverged/hub3/a not b"))
        for _ in range(100):
            await asyncio.sleep(0.1)
            await answer_resyncs(store, "hub2", sync)  # not named: does nothing
            await answer_resyncs(store, "hub3", sync)
            if asked.done():
                break
        return await asyncio.wait_for(asked, 10)

    try:
        status, result = asyncio.run(scenario())
        assert (status, result) == (DONE, "hub3 synced with its peers")
        assert synced == ["hub3"]  # once, though asked every tenth of a second
        doc = store.db[RESYNCS].find_one({"_id": "diverged/hub3/a not b"})
        assert doc["hub"] == "hub3" and doc["ok"] is True
    finally:
        client.close()
