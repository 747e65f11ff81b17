"""Gathering what `hubctl check` judges (hub.health_check), from the cluster itself.

One gathering for both readers: `hubctl check`, and the master's remediation, whose `check`
trigger acts on a failed check item.
"""

from __future__ import annotations

import datetime as dt

from pymongo.errors import PyMongoError

from hub.health_check import Snapshot, Thresholds, judge
from hub.mongo import connect
from hub.remediation.ledger import Ledger
from hub.replset import ReplicaSet
from hub.store import GAPS, HOSTS, LAST_SEEN, HubStore, lost_by_host
from hub.topology import ReplsetError


def gather_snapshot(uri: str, timeout: float, gap_window: float) -> Snapshot:
    rs = ReplicaSet(uri, timeout)
    try:
        topology = rs.topology()
        if not topology.initiated:
            raise ReplsetError("the replica set is not initiated")
    finally:
        rs.close()
    client = connect(uri, timeout)
    try:
        store = HubStore(client)
        rounds = store.last_rounds(1)
        states = store.hub_states()
        seen = {d["_id"]: d.get("latest") for d in store.reading(LAST_SEEN).find()}
        hosts = [
            d["_id"] for d in store.reading(HOSTS).find({"revoked": {"$ne": True}}, {"_id": 1})
        ]
        recent = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=gap_window)
        lost = lost_by_host(store.reading(GAPS), recent)
        breakers = Ledger(store).open_breakers()
    except PyMongoError as exc:
        raise ReplsetError(f"cannot read the cluster's state: {str(exc).split(',')[0]}") from None
    finally:
        client.close()
    return Snapshot(
        topology=topology,
        now=dt.datetime.now(dt.UTC),
        last_round=rounds[0] if rounds else None,
        hub_states=states,
        last_seen=[seen.get(h) for h in hosts],
        lost=lost,
        breakers=breakers,
    )


def failed_items(uri: str, limits: Thresholds, timeout: float = 5.0) -> list[str]:
    """The items `hubctl check` would call CRITICAL or WARNING now, one sentence each."""
    return judge(gather_snapshot(uri, timeout, limits.gap_window), limits).items
