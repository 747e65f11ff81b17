"""The stand-in as an unmodified pymongo client sees it: discovery, CRUD, errors, replication."""

from __future__ import annotations

import pytest
from bson import ObjectId
from pymongo import ReadPreference, WriteConcern
from pymongo.errors import DuplicateKeyError, NotPrimaryError, OperationFailure

from tests.conftest import dba_client, wait_until


def test_uninitiated_member_says_so(standin):
    # No user exists before initiation: only the localhost exception's client gets in.
    with standin.client(None, member=0, serverSelectionTimeoutMS=2000) as client:
        hello = client.admin.command("hello")
        assert hello["isWritablePrimary"] is False
        assert hello["info"] == "Does not have a valid replica set config"
        with pytest.raises(OperationFailure) as err:
            client.admin.command("replSetGetStatus")
        assert err.value.code == 13  # as mongod: status is not in the localhost exception


def test_discovery_follows_primary_and_hello_fields(replset, set_client):
    set_client.admin.command("ping")
    primary = "{}:{}".format(*set_client.primary)
    assert primary in replset.hosts
    # Each member has its own monitor: the secondaries may be discovered after the primary.
    secondaries = set(replset.hosts) - {primary}
    wait_until(
        lambda: {"{}:{}".format(*s) for s in set_client.secondaries} == secondaries,
        10,
        what="pymongo discovering both secondaries",
    )
    with replset.client(member=primary) as direct:
        hello = direct.admin.command("hello")
    assert hello["setName"] == "CFEngineNova"
    assert sorted(hello["hosts"]) == sorted(replset.hosts)
    assert hello["me"] == primary and hello["primary"] == primary
    assert isinstance(hello["electionId"], ObjectId)
    assert hello["setVersion"] >= 1
    assert hello["maxWireVersion"] >= 9


def test_crud_through_pymongo(replset, set_client):
    db = set_client.get_database("cfreport", write_concern=WriteConcern("majority", wtimeout=5000))
    coll = db.reports
    coll.create_index([("host", 1), ("seq", 1)], unique=True, name="host_seq")
    assert "host_seq" in coll.index_information()
    assert "reports" in db.list_collection_names()
    coll.insert_many([{"host": "a", "seq": i, "ok": i % 2 == 0} for i in range(250)])
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"host": "a", "seq": 3})
    result = coll.update_one({"host": "b", "seq": 1}, {"$set": {"ok": True}}, upsert=True)
    assert result.upserted_id is not None
    result = coll.update_one({"host": "b", "seq": 1}, {"$set": {"ok": True}}, upsert=True)
    assert result.upserted_id is None and result.matched_count == 1
    assert coll.update_many({"host": "a"}, {"$inc": {"n": 1}}).modified_count == 250
    # find with filter, projection, sort, limit, and a getMore past the first batch
    docs = list(coll.find({"host": "a"}, {"_id": 0, "seq": 1}).sort("seq", -1))
    assert [d["seq"] for d in docs] == list(range(249, -1, -1))
    assert docs[0] == {"seq": 249}
    assert [d["seq"] for d in coll.find({"host": "a"}).sort("seq", 1).limit(3)] == [0, 1, 2]
    assert coll.count_documents({"ok": True}) == 126
    assert coll.estimated_document_count() == 251
    assert sorted(coll.distinct("host")) == ["a", "b"]
    grouped = list(
        coll.aggregate([{"$group": {"_id": "$host", "n": {"$sum": 1}}}, {"$sort": {"_id": 1}}])
    )
    assert grouped == [{"_id": "a", "n": 250}, {"_id": "b", "n": 1}]
    doc = coll.find_one_and_update({"host": "b"}, {"$set": {"x": 1}}, return_document=True)
    assert doc["x"] == 1
    assert coll.delete_many({"seq": {"$gte": 200}}).deleted_count == 50
    with dba_client(replset) as dba:  # hubcluster's users may not drop collections
        dba.cfreport.reports.drop()
    assert "reports" not in db.list_collection_names()


def test_writes_replicate_and_secondaries_serve_reads(replset, set_client):
    coll = set_client.get_database("cfreport", write_concern=WriteConcern("majority")).hosts
    coll.insert_many([{"_id": i} for i in range(20)])
    for host in set(replset.hosts) - {"{}:{}".format(*set_client.primary)}:
        with replset.client(member=host) as direct:
            secondary = direct.get_database(
                "cfreport", read_preference=ReadPreference.SECONDARY_PREFERRED
            )
            wait_until(
                lambda s=secondary: s.hosts.count_documents({}) == 20, what=f"{host} replicated"
            )


def test_secondary_refuses_writes_with_retryable_label(replset, set_client):
    set_client.admin.command("ping")
    secondary = next(iter(set(replset.hosts) - {"{}:{}".format(*set_client.primary)}))
    with replset.client(member=secondary) as direct:
        with pytest.raises(NotPrimaryError) as err:
            direct.cfreport.hosts.insert_one({"_id": 1})
    assert err.value.details["code"] == 10107
    assert "RetryableWriteError" in err.value.details.get("errorLabels", [])


def test_unknown_command_uses_mongo_error(standin_set):
    with standin_set.client(serverSelectionTimeoutMS=5000) as client:
        with pytest.raises(OperationFailure) as err:
            client.admin.command("noSuchCommand")
    assert err.value.code == 59
