"""Unique indexes and `_id` lookups keep MongoDB's meaning on the stand-in's fast paths."""

from __future__ import annotations

import pytest
from pymongo import WriteConcern
from pymongo.errors import DuplicateKeyError


@pytest.fixture
def coll(replset, set_client):
    db = set_client.get_database("cfreport", write_concern=WriteConcern("majority", wtimeout=5000))
    c = db["c"]
    c.create_index([("host", 1), ("seq", 1)], unique=True, name="host_seq")
    return c


def test_second_key_refused_first_kept(coll):
    coll.insert_one({"_id": 1, "host": "a", "seq": 1})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": 2, "host": "a", "seq": 1})
    with pytest.raises(DuplicateKeyError):
        coll.update_one({"_id": 3}, {"$set": {"host": "a", "seq": 1}}, upsert=True)
    assert [d["_id"] for d in coll.find({"host": "a"})] == [1]
    coll.insert_one({"_id": 4, "host": "a", "seq": 2})  # another key is fine


def test_deleted_key_can_be_reused(coll):
    coll.insert_one({"_id": 1, "host": "a", "seq": 1})
    coll.delete_one({"_id": 1})
    coll.insert_one({"_id": 2, "host": "a", "seq": 1})
    assert coll.count_documents({"host": "a", "seq": 1}) == 1


def test_key_moved_by_update_is_enforced_at_its_new_value(coll):
    coll.insert_one({"_id": 1, "host": "a", "seq": 1})
    coll.update_one({"_id": 1}, {"$set": {"seq": 5}})
    coll.insert_one({"_id": 2, "host": "a", "seq": 1})  # the old key is free again
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": 3, "host": "a", "seq": 5})
    coll.update_many({"host": "a"}, {"$set": {"host": "b"}})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": 4, "host": "b", "seq": 5})


def test_recreated_index_sees_documents_written_without_it(coll):
    coll.insert_one({"_id": 1, "host": "z", "seq": 9})
    coll.drop_index("host_seq")  # dropIndex: hubd's own action (the pre-epoch index)
    coll.delete_many({})
    coll.insert_one({"_id": 2, "host": "z", "seq": 9})
    coll.create_index([("host", 1), ("seq", 1)], unique=True, name="host_seq")
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": 3, "host": "z", "seq": 9})


def test_id_lookups_by_value_and_in(coll):
    coll.insert_many([{"_id": f"h/{i}", "host": "h", "seq": i} for i in range(50)])
    assert coll.find_one({"_id": "h/7"})["seq"] == 7
    assert coll.find_one({"_id": "h/99"}) is None
    got = coll.find({"_id": {"$in": ["h/3", "h/3", "h/1", "nope"]}})
    assert sorted(d["seq"] for d in got) == [1, 3]
    # a regex on _id is not plain equality and still matches as MongoDB does
    assert coll.count_documents({"_id": {"$regex": "^h/4"}}) == 1 + 10


def test_array_keys_collide_per_element(coll):
    coll.insert_one({"_id": 1, "host": ["a", "b"], "seq": 1})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": 2, "host": "b", "seq": 1})
    coll.insert_one({"_id": 3, "host": "c", "seq": 1})


def test_booleans_are_not_numbers(coll):
    coll.insert_one({"_id": 3, "host": "c", "seq": 1})
    coll.insert_one({"_id": 4, "host": "c", "seq": True})
    assert coll.count_documents({"host": "c"}) == 2
