"""mongomock with the two lookups a real mongod answers from an index, not a scan.

mongomock finds every document, even by `_id`, by testing each one against the filter, and
checks a unique index the same way on every insert. A member holding 10,000 reports then
spends milliseconds per upsert, which made the stand-in, not the product, the bottleneck of
a 1,000-client lab. Here `_id` lookups read the collection's dict directly, and unique
indexes are checked against a hash of their keys. mongomock calls the unique check for
every document an insert or update writes, so each document is hashed under every key it
has held. The hash is a cache, never the truth: candidates are re-read from the documents
before they count, so a stale entry (a key since changed, a deleted document, a dropped
and recreated index) can only be ignored, not believed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mongomock
import mongomock.collection
from bson import ObjectId
from mongomock import DuplicateKeyError, helpers

_MISSING = object()


def _hashable(value: Any) -> bool:
    return (
        isinstance(value, str | int | float | bytes) or value is None or isinstance(value, ObjectId)
    )


def _normal(value: Any) -> Any:
    # Python holds True == 1; MongoDB does not, so booleans get a key of their own.
    return ("$bool", value) if isinstance(value, bool) else value


def _plain_id(spec: Any) -> list[Any] | None:
    """The `_id`s a filter names, when it is only `{_id: v}` or `{_id: {$in: [...]}}`."""
    if not isinstance(spec, dict) or list(spec) != ["_id"]:
        return None
    wanted = spec["_id"]
    if isinstance(wanted, dict):
        if list(wanted) != ["$in"] or not isinstance(wanted["$in"], list | tuple):
            return None
        values = list(wanted["$in"])
    else:
        values = [wanted]
    # Only values whose equality is plain equality; a regex, a list or a subdocument match
    # differently in MongoDB and take the scan.
    plain = all(_hashable(v) and not isinstance(v, bool) and v is not None for v in values)
    return values if plain else None


def _key_of(doc: dict, fields: list[str]) -> tuple | None:
    values = []
    for field in fields:
        try:
            value = helpers.get_value_by_dot(doc, field)
        except KeyError:
            value = None
        if not _hashable(value):
            return None
        values.append(_normal(value))
    return tuple(values)


# mongomock's own class: its stub presents `mongomock.Collection` as pymongo's, which has
# none of the internals (`_store`, `_iter_documents`) this class builds on.
class IndexedCollection(mongomock.collection.Collection):
    """A mongomock collection whose `_id` lookups and unique checks do not scan."""

    def _iter_documents(self, filter: Any) -> Iterator[dict]:  # noqa: A002 - mongomock's name
        ids = _plain_id(filter)
        store = self._store
        if ids is None or store._ttl_indexes:
            return super()._iter_documents(filter)
        documents = store._documents
        found = [documents[i] for i in dict.fromkeys(ids) if i in documents]
        return iter(found)

    def _ensure_uniques(self, new_data: dict) -> None:
        for name, index in self._store.indexes.items():
            fields = [key for key, _ in index["key"]]
            if not index.get("unique") or fields == ["_id"]:
                continue  # the collection's own dict already refuses a second `_id`
            key = _key_of(new_data, fields)
            if index.get("sparse") and key is not None and set(key) == {None}:
                continue
            table = self._hash(name, index, fields)
            if key is None:
                # An array or subdocument: MongoDB's multikey matching, by mongomock's scan.
                table.setdefault(None, set()).add(new_data["_id"])
            if (
                key is None
                or index.get("partialFilterExpression") is not None
                or any(self._holds(i, fields, None) for i in table.get(None, ()))
            ):
                self._ensure_unique_by_scan(name, new_data, index, fields)
                continue
            holders = table.setdefault(key, set())
            holders.add(new_data["_id"])
            live = [i for i in holders if self._holds(i, fields, key)]
            holders.intersection_update(live)
            if len(live) > 1:
                raise _duplicate(name, index, new_data)

    # ----- the hash of unique keys ---------------------------------------------------------
    def _hash(self, name: str, index: dict, fields: list[str]) -> dict[tuple | None, set]:
        caches = self._store.__dict__.setdefault("_unique_hashes", {})
        cached = caches.get(name)
        if cached is None or cached[0] is not index:
            table: dict[tuple | None, set] = {}
            for doc in self._store._documents.values():
                table.setdefault(_key_of(doc, fields), set()).add(doc["_id"])
            cached = caches[name] = (index, table)
        return cached[1]

    def _holds(self, doc_id: Any, fields: list[str], key: tuple | None) -> bool:
        doc = self._store._documents.get(doc_id, _MISSING)
        return doc is not _MISSING and _key_of(doc, fields) == key

    def _ensure_unique_by_scan(
        self, name: str, new_data: dict, index: dict, fields: list[str]
    ) -> None:
        # mongomock's own rule, for keys a hash cannot hold (arrays, subdocuments, partial).
        spec: dict[str, Any] = {}
        for field in fields:
            try:
                spec[field] = helpers.get_value_by_dot(new_data, field)
            except KeyError:
                spec[field] = None
        if index.get("partialFilterExpression") is not None:
            spec = {"$and": [index["partialFilterExpression"], spec]}
        if len(list(super()._iter_documents(spec))) > 1:
            raise _duplicate(name, index, new_data)


def _duplicate(name: str, index: dict, doc: dict) -> DuplicateKeyError:
    """The error with what mongod names in it: the index, its key pattern, the clashing key."""
    pattern = {key: direction for key, direction in index["key"]}
    value = {}
    for field in pattern:
        try:
            value[field] = helpers.get_value_by_dot(doc, field)
        except KeyError:
            value[field] = None
    details = {"index": name, "keyPattern": pattern, "keyValue": value}
    return DuplicateKeyError("E11000 Duplicate Key Error", 11000, details)


def collection(client: mongomock.MongoClient, db: str, name: str) -> IndexedCollection:
    database = client[db]
    return IndexedCollection(database, name, _db_store=database._store)
