"""serverStatus, dbStats, collStats and $collStats in mongod's shapes.

Sizes are estimates: the BSON size of the documents, with storage and index sizes derived
from it, since mongomock keeps no pages on disk.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import bson
from bson.int64 import Int64

from hubctl.lab.standin import admin
from hubctl.lab.standin.errors import CommandError
from hubctl.lab.standin.indexed import collection
from hubctl.lab.standin.model import _date

if TYPE_CHECKING:
    from hubctl.lab.standin.server import MemberServer
    from hubctl.lab.standin.storage import MemberStore

_INDEX_ENTRY_BYTES = 32  # a rough size of one key in one index


def server_status(server: MemberServer, version: str) -> dict[str, Any]:
    model = server.model
    m = model.member(server.name)
    now = time.time()
    uptime = now - server.stats.started
    repl = admin.hello(model, m, legacy=False)
    for field in ("ok", "maxBsonObjectSize", "maxMessageSizeBytes", "maxWriteBatchSize"):
        repl.pop(field, None)
    repl["rbid"] = 1
    return {
        "host": m.host,
        "version": version,
        "process": "mongod",
        "pid": Int64(os.getpid()),
        "uptime": float(int(uptime)),
        "uptimeMillis": Int64(int(uptime * 1000)),
        "uptimeEstimate": Int64(int(uptime)),
        "localTime": _date(now),
        "connections": server.stats.connections(),
        "repl": repl,
        "opcounters": server.stats.opcounters(),
        "opcountersRepl": {
            k: Int64(0) for k in ("insert", "query", "update", "delete", "getmore", "command")
        },
        "mem": {"bits": 64, "resident": 0, "virtual": 0, "supported": False},
        "ok": 1,
    }


def _sizes(store: MemberStore, db: str, name: str) -> dict[str, Any]:
    coll = collection(store.client, db, name)
    docs = list(coll.find({}))
    size = sum(len(bson.encode(d)) for d in docs)
    indexes = coll.index_information()
    index_sizes = {n: max(4096, _INDEX_ENTRY_BYTES * len(docs)) for n in indexes}
    return {
        "count": len(docs),
        "size": size,
        "storageSize": max(4096, size),
        "indexSizes": index_sizes,
        "nindexes": len(indexes),
    }


def _avg(size: int, count: int) -> int:
    return size // count if count else 0


def db_stats(store: MemberStore, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
    scale = int(cmd.get("scale") or 1)
    names = store.client[db].list_collection_names()
    each = [_sizes(store, db, n) for n in names]
    objects = sum(s["count"] for s in each)
    data = sum(s["size"] for s in each)
    storage = sum(s["storageSize"] for s in each)
    index = sum(sum(s["indexSizes"].values()) for s in each)
    return {
        "db": db,
        "collections": Int64(len(names)),
        "views": Int64(0),
        "objects": Int64(objects),
        "avgObjSize": float(_avg(data, objects)),
        "dataSize": float(data // scale),
        "storageSize": float(storage // scale),
        "indexes": Int64(sum(s["nindexes"] for s in each)),
        "indexSize": float(index // scale),
        "totalSize": float((storage + index) // scale),
        "scaleFactor": Int64(scale),
        "fsUsedSize": float(0),
        "fsTotalSize": float(0),
        "ok": 1,
    }


def _storage_stats(store: MemberStore, db: str, name: str, scale: int) -> dict[str, Any]:
    if name not in store.client[db].list_collection_names():
        raise CommandError(26, "NamespaceNotFound", f"Collection [{db}.{name}] not found.")
    s = _sizes(store, db, name)
    index_total = sum(s["indexSizes"].values())
    return {
        "size": s["size"] // scale,
        "count": s["count"],
        "avgObjSize": _avg(s["size"], s["count"]),
        "storageSize": s["storageSize"] // scale,
        "freeStorageSize": 0,
        "capped": False,
        "nindexes": s["nindexes"],
        "indexSizes": {n: v // scale for n, v in s["indexSizes"].items()},
        "totalIndexSize": index_total // scale,
        "totalSize": (s["storageSize"] + index_total) // scale,
        "scaleFactor": scale,
    }


def coll_stats(store: MemberStore, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
    name = cmd["collStats"]
    doc = _storage_stats(store, db, name, int(cmd.get("scale") or 1))
    return {"ns": f"{db}.{name}", **doc, "ok": 1}


def is_coll_stats(cmd: dict[str, Any]) -> bool:
    pipeline = cmd.get("pipeline") or []
    return bool(pipeline) and isinstance(pipeline[0], dict) and "$collStats" in pipeline[0]


def coll_stats_stage(store: MemberStore, db: str, cmd: dict[str, Any], host: str) -> dict:
    """aggregate([{$collStats: ...}]), which mongosh's db.coll.stats() runs."""
    name = cmd["aggregate"]
    pipeline = cmd["pipeline"]
    if len(pipeline) > 1:
        raise CommandError(
            40324, "Location40324", "the stand-in runs $collStats only as the whole pipeline"
        )
    spec = pipeline[0]["$collStats"] or {}
    doc: dict[str, Any] = {"ns": f"{db}.{name}", "host": host, "localTime": _date(time.time())}
    if "storageStats" in spec:
        scale = int((spec["storageStats"] or {}).get("scale") or 1)
        doc["storageStats"] = _storage_stats(store, db, name, scale)
    if "count" in spec:
        doc["count"] = _storage_stats(store, db, name, 1)["count"]
    return {"cursor": {"id": Int64(0), "ns": f"{db}.{name}", "firstBatch": [doc]}, "ok": 1}
