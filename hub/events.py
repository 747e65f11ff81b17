"""The cluster's timeline: master changes, freezes, stepdowns, maintenance, publishes, revocations.

Events are written with majority write concern, so the timeline survives a failover; when
there is no primary the caller is told (and may buffer), never blocked.
"""

from __future__ import annotations

import datetime as dt
import socket
from typing import Any

import pymongo
from pymongo.errors import PyMongoError
from pymongo.read_preferences import SecondaryPreferred

from hub.mongo import DB_NAME, SURVIVES_FAILOVER

EVENTS = "events"


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def record_event(client: pymongo.MongoClient, kind: str, message: str, **details: Any) -> bool:
    """Store one event; returns False (and loses nothing else) when no primary takes it."""
    doc = {
        "time": now_utc(),
        "kind": kind,
        "message": message,
        "by": socket.gethostname(),
        "details": details,
    }
    coll = client[DB_NAME].get_collection(EVENTS, write_concern=SURVIVES_FAILOVER)
    try:
        coll.insert_one(doc)
    except PyMongoError:
        return False
    return True


def list_events(
    client: pymongo.MongoClient,
    since: dt.datetime | None = None,
    max_staleness: float = 90.0,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Events oldest first, read from a secondary when one is there."""
    coll = client[DB_NAME].get_collection(
        EVENTS, read_preference=SecondaryPreferred(max_staleness=int(max_staleness))
    )
    query = {"time": {"$gte": since}} if since else {}
    docs = list(coll.find(query, {"_id": 0}).sort("time", -1).limit(limit))
    return list(reversed(docs))
