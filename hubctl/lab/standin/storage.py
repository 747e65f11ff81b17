"""One member's data: CRUD commands over mongomock, and the oplog entries that replicate them.

Writes are logged by effect (the whole document after the write, or its deletion), like
MongoDB's idempotent oplog, so a secondary applies them without re-evaluating operators.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import mongomock
from bson.int64 import Int64
from mongomock.store import ServerStore
from pymongo.errors import DuplicateKeyError, OperationFailure

from hubctl.lab.standin.errors import CommandError
from hubctl.lab.standin.indexed import collection

Entry = tuple  # ("put", db, coll, doc) | ("del", db, coll, _id) | ("index", ...) | ("drop", ...)

_cursor_ids = itertools.count(1_000_001)
DEFAULT_FIRST_BATCH = 101


def _sort_spec(sort: Any) -> list[tuple[str, int]] | None:
    if not sort:
        return None
    return [(k, int(v)) for k, v in sort.items()]


def _is_replacement(update: Any) -> bool:
    return isinstance(update, dict) and not any(k.startswith("$") for k in update)


def _dup_key(db: str, coll: str, exc: DuplicateKeyError, doc: Any = None) -> dict[str, Any]:
    """mongod's duplicate-key error fields: the index name in errmsg, keyPattern, keyValue."""
    details = exc.details or {}
    if "keyPattern" in details:
        index, pattern, value = details["index"], details["keyPattern"], details["keyValue"]
    else:  # mongomock's own refusal of a second `_id`
        _id = doc.get("_id") if isinstance(doc, dict) else None
        index, pattern, value = "_id_", {"_id": 1}, {"_id": _id}
    shown = ", ".join(f"{k}: {_show(v)}" for k, v in value.items())
    return {
        "code": 11000,
        "errmsg": f"E11000 duplicate key error collection: {db}.{coll} index: {index} "
        f"dup key: {{ {shown} }}",
        "keyPattern": pattern,
        "keyValue": value,
    }


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _dup_key_error(db: str, coll: str, exc: DuplicateKeyError, doc: Any = None) -> CommandError:
    fields = _dup_key(db, coll, exc, doc)
    extra = {"keyPattern": fields["keyPattern"], "keyValue": fields["keyValue"]}
    return CommandError(11000, "DuplicateKey", fields["errmsg"], extra=extra)


class MemberStore:
    """The data one member holds, with the cursors opened on it."""

    def __init__(self) -> None:
        self.client: mongomock.MongoClient[dict[str, Any]] = mongomock.MongoClient(
            _store=ServerStore()
        )
        self.cursors: dict[int, tuple[str, list[dict]]] = {}

    def wipe(self) -> None:
        self.client = mongomock.MongoClient(_store=ServerStore())
        self.cursors.clear()

    # ----- replication ------------------------------------------------------------------
    def apply(self, entries: list[Entry]) -> None:
        for entry in entries:
            kind, db, coll = entry[0], entry[1], entry[2]
            target = collection(self.client, db, coll)
            if kind == "put":
                target.replace_one({"_id": entry[3]["_id"]}, entry[3], upsert=True)
            elif kind == "del":
                target.delete_one({"_id": entry[3]})
            elif kind == "index":
                target.create_index(entry[3], **entry[4])
            elif kind == "drop":
                target.drop()
            elif kind == "dropdb":
                self.client.drop_database(db)
            elif kind == "create":
                if coll not in self.client[db].list_collection_names():
                    self.client[db].create_collection(coll)
            elif kind == "dropindex":
                target.drop_index(entry[3])

    # ----- reads ------------------------------------------------------------------------
    def _cursor_reply(
        self, ns: str, docs: list[dict], batch: int | None, single: bool = False
    ) -> dict[str, Any]:
        size = DEFAULT_FIRST_BATCH if not batch else batch
        first, rest = docs[:size], docs[size:]
        cursor_id = 0
        if rest and not single:
            cursor_id = next(_cursor_ids)
            self.cursors[cursor_id] = (ns, rest)
        # BSON int64, as mongod sends it: mongosh and the Node driver read no other type.
        return {"cursor": {"id": Int64(cursor_id), "ns": ns, "firstBatch": first}, "ok": 1}

    def find(self, db: str, cmd: dict) -> dict:
        coll = cmd["find"]
        cursor = collection(self.client, db, coll).find(
            cmd.get("filter") or {}, cmd.get("projection")
        )
        sort = _sort_spec(cmd.get("sort"))
        if sort:
            cursor = cursor.sort(sort)
        if cmd.get("skip"):
            cursor = cursor.skip(int(cmd["skip"]))
        limit = int(cmd.get("limit") or 0)
        if limit:
            cursor = cursor.limit(abs(limit))
        docs = list(cursor)
        return self._cursor_reply(
            f"{db}.{coll}", docs, cmd.get("batchSize"), bool(cmd.get("singleBatch"))
        )

    def get_more(self, db: str, cmd: dict) -> dict:
        cursor_id = int(cmd["getMore"])
        if cursor_id not in self.cursors:
            raise CommandError(43, "CursorNotFound", f"cursor id {cursor_id} not found")
        ns, docs = self.cursors.pop(cursor_id)
        size = int(cmd.get("batchSize") or 0) or len(docs)
        batch, rest = docs[:size], docs[size:]
        next_id = 0
        if rest:
            next_id = cursor_id
            self.cursors[cursor_id] = (ns, rest)
        return {"cursor": {"id": Int64(next_id), "ns": ns, "nextBatch": batch}, "ok": 1}

    def kill_cursors(self, cmd: dict) -> dict:
        asked = [Int64(c) for c in cmd.get("cursors", [])]
        killed = [c for c in asked if self.cursors.pop(int(c), None)]
        missing = [c for c in asked if c not in killed]
        return {
            "cursorsKilled": killed,
            "cursorsNotFound": missing,
            "cursorsAlive": [],
            "cursorsUnknown": [],
            "ok": 1,
        }

    def publish_local(self, config: dict | None) -> None:
        """local.system.replset, which the shell's replication helpers read; never replicated."""
        replset = self.client["local"]["system.replset"]
        replset.delete_many({})
        if config is not None:
            replset.insert_one(dict(config))

    def aggregate(self, db: str, cmd: dict) -> dict:
        coll = cmd["aggregate"]
        try:
            docs = list(collection(self.client, db, coll).aggregate(cmd.get("pipeline", [])))
        except (OperationFailure, NotImplementedError, KeyError, TypeError) as exc:
            raise CommandError(40324, "Location40324", f"aggregate failed: {exc}") from None
        return self._cursor_reply(f"{db}.{coll}", docs, (cmd.get("cursor") or {}).get("batchSize"))

    def count(self, db: str, cmd: dict) -> dict:
        coll = collection(self.client, db, cmd["count"])
        kwargs = {k: int(cmd[k]) for k in ("skip", "limit") if cmd.get(k)}
        return {"n": coll.count_documents(cmd.get("query") or {}, **kwargs), "ok": 1}

    def distinct(self, db: str, cmd: dict) -> dict:
        values = collection(self.client, db, cmd["distinct"]).distinct(
            cmd["key"], cmd.get("query") or {}
        )
        return {"values": values, "ok": 1}

    def list_collections(self, db: str, cmd: dict) -> dict:
        names = self.client[db].list_collection_names()
        wanted = (cmd.get("filter") or {}).get("name")
        docs = [
            {"name": n, "type": "collection", "options": {}, "info": {"readOnly": False}}
            for n in sorted(names)
            if wanted is None or n == wanted
        ]
        return self._cursor_reply(f"{db}.$cmd.listCollections", docs, None)

    def list_indexes(self, db: str, cmd: dict) -> dict:
        coll = cmd["listIndexes"]
        if coll not in self.client[db].list_collection_names():
            raise CommandError(26, "NamespaceNotFound", f"ns does not exist: {db}.{coll}")
        docs = []
        for name, info in collection(self.client, db, coll).index_information().items():
            doc = {"v": 2, "key": dict(info["key"]), "name": name}
            if info.get("unique"):
                doc["unique"] = True
            docs.append(doc)
        return self._cursor_reply(f"{db}.{coll}", docs, None)

    def list_databases(self) -> dict:
        names = self.client.list_database_names()
        dbs = [{"name": n, "sizeOnDisk": 0, "empty": False} for n in names]
        return {"databases": dbs, "totalSize": 0, "ok": 1}

    # ----- writes: each returns (reply, oplog entries) ------------------------------------
    def insert(self, db: str, cmd: dict) -> tuple[dict, list[Entry]]:
        coll_name = cmd["insert"]
        coll = collection(self.client, db, coll_name)
        ordered = cmd.get("ordered", True)
        entries: list[Entry] = []
        errors, n = [], 0
        for index, doc in enumerate(cmd.get("documents", [])):
            try:
                coll.insert_one(doc)
            except DuplicateKeyError as exc:
                errors.append({"index": index, **_dup_key(db, coll_name, exc, doc)})
                if ordered:
                    break
                continue
            n += 1
            entries.append(("put", db, coll_name, doc))
        reply: dict[str, Any] = {"n": n, "ok": 1}
        if errors:
            reply["writeErrors"] = errors
        return reply, entries

    def _post_images(self, db: str, coll_name: str, ids: list[Any]) -> list[Entry]:
        coll = collection(self.client, db, coll_name)
        return [("put", db, coll_name, doc) for doc in coll.find({"_id": {"$in": ids}})]

    def update(self, db: str, cmd: dict) -> tuple[dict, list[Entry]]:
        coll_name = cmd["update"]
        coll = collection(self.client, db, coll_name)
        ordered = cmd.get("ordered", True)
        entries: list[Entry] = []
        errors, upserted = [], []
        matched = modified = 0
        for index, stmt in enumerate(cmd.get("updates", [])):
            query, change = stmt.get("q") or {}, stmt.get("u")
            upsert, multi = bool(stmt.get("upsert")), bool(stmt.get("multi"))
            try:
                if multi:
                    ids = [d["_id"] for d in coll.find(query, {"_id": 1})]
                    result = coll.update_many(query, change, upsert=upsert)
                else:
                    first = coll.find_one(query, {"_id": 1})
                    ids = [first["_id"]] if first else []
                    if _is_replacement(change):
                        result = coll.replace_one(query, change, upsert=upsert)
                    else:
                        result = coll.update_one(query, change, upsert=upsert)
            except DuplicateKeyError as exc:
                errors.append({"index": index, **_dup_key(db, coll_name, exc)})
                if ordered:
                    break
                continue
            except (OperationFailure, ValueError, TypeError) as exc:
                errors.append({"index": index, "code": 9, "errmsg": f"failed to parse: {exc}"})
                if ordered:
                    break
                continue
            if result.upserted_id is not None:
                ids.append(result.upserted_id)
                upserted.append({"index": index, "_id": result.upserted_id})
            else:
                matched += result.matched_count
                modified += result.modified_count
            entries.extend(self._post_images(db, coll_name, ids))
        reply: dict[str, Any] = {"n": matched + len(upserted), "nModified": modified, "ok": 1}
        if upserted:
            reply["upserted"] = upserted
        if errors:
            reply["writeErrors"] = errors
        return reply, entries

    def delete(self, db: str, cmd: dict) -> tuple[dict, list[Entry]]:
        coll_name = cmd["delete"]
        coll = collection(self.client, db, coll_name)
        entries: list[Entry] = []
        n = 0
        for stmt in cmd.get("deletes", []):
            query = stmt.get("q") or {}
            found = coll.find(query, {"_id": 1})
            if stmt.get("limit") == 1:
                found = found.limit(1)
            ids = [d["_id"] for d in found]
            if ids:
                coll.delete_many({"_id": {"$in": ids}})
            n += len(ids)
            entries.extend(("del", db, coll_name, _id) for _id in ids)
        return {"n": n, "ok": 1}, entries

    def find_and_modify(self, db: str, cmd: dict) -> tuple[dict, list[Entry]]:
        name = next(iter(cmd))
        coll_name = cmd[name]
        coll = collection(self.client, db, coll_name)
        query, sort = cmd.get("query") or {}, _sort_spec(cmd.get("sort"))
        fields, upsert = cmd.get("fields"), bool(cmd.get("upsert"))
        before = coll.find_one(query, sort=sort)
        if cmd.get("remove"):
            if before is None:
                return {"value": None, "lastErrorObject": {"n": 0}, "ok": 1}, []
            coll.delete_one({"_id": before["_id"]})
            return (
                {"value": _project(before, fields), "lastErrorObject": {"n": 1}, "ok": 1},
                [("del", db, coll_name, before["_id"])],
            )
        change = cmd.get("update")
        try:
            if before is not None:
                if _is_replacement(change):
                    coll.replace_one({"_id": before["_id"]}, change)
                else:
                    coll.update_one({"_id": before["_id"]}, change)
                doc_id, upserted_id = before["_id"], None
            elif upsert:
                if _is_replacement(change):
                    result = coll.replace_one(query, change, upsert=True)
                else:
                    result = coll.update_one(query, change, upsert=True)
                doc_id = upserted_id = result.upserted_id
            else:
                return {
                    "value": None,
                    "lastErrorObject": {"n": 0, "updatedExisting": False},
                    "ok": 1,
                }, []
        except DuplicateKeyError as exc:
            raise _dup_key_error(db, coll_name, exc) from None
        after = coll.find_one({"_id": doc_id})
        value = after if cmd.get("new") else before
        last = {"n": 1, "updatedExisting": before is not None}
        if upserted_id is not None:
            last["upserted"] = upserted_id
        return (
            {"value": _project(value, fields), "lastErrorObject": last, "ok": 1},
            [("put", db, coll_name, after)],
        )

    def create_indexes(self, db: str, cmd: dict) -> tuple[dict, list[Entry]]:
        coll_name = cmd["createIndexes"]
        coll = collection(self.client, db, coll_name)
        existed = coll_name in self.client[db].list_collection_names()
        before = len(coll.index_information()) if existed else 1
        entries: list[Entry] = []
        for spec in cmd.get("indexes", []):
            keys = list(spec["key"].items())
            kwargs = {"name": spec.get("name")}
            if spec.get("unique"):
                kwargs["unique"] = True
            try:
                coll.create_index(keys, **kwargs)
            except DuplicateKeyError as exc:
                raise _dup_key_error(db, coll_name, exc) from None
            entries.append(("index", db, coll_name, keys, kwargs))
        after = len(coll.index_information())
        return {
            "createdCollectionAutomatically": not existed,
            "numIndexesBefore": before,
            "numIndexesAfter": after,
            "ok": 1,
        }, entries

    def drop(self, db: str, cmd: dict) -> tuple[dict, list[Entry]]:
        coll_name = cmd["drop"]
        if coll_name not in self.client[db].list_collection_names():
            raise CommandError(26, "NamespaceNotFound", "ns not found")
        collection(self.client, db, coll_name).drop()
        return {"ns": f"{db}.{coll_name}", "nIndexesWas": 1, "ok": 1}, [("drop", db, coll_name)]

    def create(self, db: str, cmd: dict) -> tuple[dict, list[Entry]]:
        coll_name = cmd["create"]
        if not isinstance(coll_name, str) or not coll_name:
            raise CommandError(73, "InvalidNamespace", f"Invalid namespace specified '{db}.'")
        if coll_name in self.client[db].list_collection_names():
            raise CommandError(
                48, "NamespaceExists", f"Collection {db}.{coll_name} already exists."
            )
        if cmd.get("capped") or cmd.get("viewOn") or cmd.get("timeseries"):
            raise CommandError(
                115, "CommandNotSupported", "the stand-in creates plain collections only"
            )
        self.client[db].create_collection(coll_name)
        return {"ok": 1}, [("create", db, coll_name)]

    def drop_indexes(self, db: str, cmd: dict) -> tuple[dict, list[Entry]]:
        coll_name = cmd["dropIndexes"]
        if coll_name not in self.client[db].list_collection_names():
            raise CommandError(26, "NamespaceNotFound", f"ns not found {db}.{coll_name}")
        coll = collection(self.client, db, coll_name)
        info = coll.index_information()
        wanted = cmd.get("index")
        if wanted == "*":
            names = [n for n in info if n != "_id_"]
        elif isinstance(wanted, dict):
            key = list(wanted.items())
            names = [n for n, i in info.items() if list(i["key"]) == key]
            if not names:
                raise CommandError(27, "IndexNotFound", f"can't find index with key: {wanted}")
        else:
            names = [wanted] if isinstance(wanted, str) else list(wanted or [])
            for name in names:
                if name not in info:
                    raise CommandError(27, "IndexNotFound", f"index not found with name [{name}]")
        if "_id_" in names:
            raise CommandError(72, "InvalidOptions", "cannot drop _id index")
        for name in names:
            coll.drop_index(name)
        reply = {"nIndexesWas": len(info), "ok": 1}
        return reply, [("dropindex", db, coll_name, name) for name in names]

    def drop_database(self, db: str) -> tuple[dict, list[Entry]]:
        self.client.drop_database(db)
        return {"dropped": db, "ok": 1}, [("dropdb", db, "")]


def _project(doc: dict | None, fields: dict | None) -> dict | None:
    if doc is None or not fields:
        return doc
    include = {k for k, v in fields.items() if v}
    if include:
        keep = include | ({"_id"} if fields.get("_id", 1) else set())
        return {k: v for k, v in doc.items() if k in keep}
    return {k: v for k, v in doc.items() if k not in fields}


READS = {
    "find": MemberStore.find,
    "aggregate": MemberStore.aggregate,
    "count": MemberStore.count,
    "distinct": MemberStore.distinct,
    "listcollections": MemberStore.list_collections,
    "listindexes": MemberStore.list_indexes,
}
WRITES = {
    "insert": MemberStore.insert,
    "update": MemberStore.update,
    "delete": MemberStore.delete,
    "findandmodify": MemberStore.find_and_modify,
    "createindexes": MemberStore.create_indexes,
    "drop": MemberStore.drop,
    "create": MemberStore.create,
    "dropindexes": MemberStore.drop_indexes,
}
