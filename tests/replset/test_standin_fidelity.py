"""Shapes and codes real clients rely on, checked over pymongo (the real-client tier in
tests/standin runs mongosh and the Node.js driver on top of these)."""

from __future__ import annotations

import uuid

import pymongo
import pytest
from bson import Binary
from bson.int64 import Int64
from pymongo import WriteConcern
from pymongo.errors import (
    DuplicateKeyError,
    NotPrimaryError,
    OperationFailure,
    WriteConcernError,
)

from hub.replset import ReplicaSet
from tests.conftest import dba_client, wait_until


def _primary(client: pymongo.MongoClient) -> str:
    client.admin.command("ping")
    return "{}:{}".format(*client.primary)


def _direct(cluster, host: str, user: str | None = "operator") -> pymongo.MongoClient:
    """Straight to `host`, as `user` (None: no login, the localhost exception's client)."""
    return cluster.client(user, member=host)


def test_cursor_ids_are_int64(replset, set_client):
    coll = set_client.get_database("cfreport", write_concern=WriteConcern("majority")).c
    coll.insert_many([{"i": i} for i in range(5)])
    reply = set_client.cfreport.command("find", "c", batchSize=2)
    assert type(reply["cursor"]["id"]) is Int64 and reply["cursor"]["id"] != 0
    more = set_client.cfreport.command("getMore", reply["cursor"]["id"], collection="c")
    assert type(more["cursor"]["id"]) is Int64
    done = set_client.cfreport.command("find", "c")
    assert type(done["cursor"]["id"]) is Int64 and done["cursor"]["id"] == 0


def test_duplicate_key_names_index_pattern_and_value(replset, set_client):
    coll = set_client.get_database("cfreport", write_concern=WriteConcern("majority")).users
    coll.create_index([("name", 1)], unique=True, name="name_unique")
    coll.insert_one({"_id": 1, "name": "ann"})
    with pytest.raises(DuplicateKeyError) as err:
        coll.insert_one({"name": "ann"})
    details = err.value.details
    assert details["keyPattern"] == {"name": 1} and details["keyValue"] == {"name": "ann"}
    assert "index: name_unique dup key" in details["errmsg"]
    with pytest.raises(DuplicateKeyError) as err:
        coll.insert_one({"_id": 1, "name": "bob"})
    assert err.value.details["keyPattern"] == {"_id": 1}
    assert "index: _id_ dup key" in err.value.details["errmsg"]
    with pytest.raises(DuplicateKeyError) as err:
        coll.find_one_and_update({"_id": 2}, {"$set": {"name": "ann"}}, upsert=True)
    assert err.value.details["keyValue"] == {"name": "ann"}


def test_stepdown_on_a_secondary_is_not_writable_primary(replset, set_client):
    primary = _primary(set_client)
    secondary = next(h for h in replset.hosts if h != primary)
    with _direct(replset, secondary) as client, pytest.raises(NotPrimaryError) as err:
        client.admin.command("replSetStepDown", 60)
    assert err.value.details["code"] == 10107
    assert err.value.details["codeName"] == "NotWritablePrimary"


def test_unacknowledged_writes_are_applied(replset, set_client):
    coll = set_client.get_database("cfreport", write_concern=WriteConcern(w=0)).quiet
    coll.insert_one({"_id": "w0"})
    acked = set_client.cfreport.quiet
    wait_until(lambda: acked.count_documents({"_id": "w0"}) == 1, what="the w:0 insert")


def test_unsatisfiable_write_concern_fails_at_once_with_code_100(replset, set_client):
    coll = set_client.get_database("cfreport", write_concern=WriteConcern(w=5)).c
    with pytest.raises(WriteConcernError) as err:
        coll.insert_one({"w": 5})
    assert err.value.code == 100
    unknown = set_client.get_database("cfreport", write_concern=WriteConcern(w="nosuchmode")).c
    with pytest.raises(WriteConcernError) as err:
        unknown.insert_one({"w": "nosuchmode"})
    assert err.value.code == 79


def test_transactions_are_refused_and_nothing_applies(standin_set):
    with standin_set.client() as client:
        coll = client.get_database("cfreport", write_concern=WriteConcern("majority")).tx
        with client.start_session() as session:
            with pytest.raises(OperationFailure) as err:
                with session.start_transaction():
                    coll.insert_one({"in": "transaction"}, session=session)
        assert err.value.code == 115
        assert "does not support multi-document transactions" in str(err.value)
        assert coll.count_documents({}) == 0


def test_server_status_db_stats_coll_stats(replset, set_client):
    coll = set_client.get_database("cfreport", write_concern=WriteConcern("majority")).stats
    coll.insert_many([{"i": i} for i in range(10)])
    # serverStatus, dbStats and collStats are no hubcluster user's: a DBA's
    with dba_client(replset) as dba:
        status = dba.admin.command("serverStatus")
        db_stats = dba.cfreport.command("dbStats")
        coll_stats = dba.cfreport.command("collStats", "stats")
    assert status["host"] and status["version"] and status["uptime"] >= 0
    assert status["connections"]["current"] >= 1
    assert status["repl"]["setName"] == replset.set_name
    assert status["opcounters"]["insert"] >= 10
    assert db_stats["objects"] >= 10 and db_stats["collections"] >= 1
    assert coll_stats["count"] == 10 and coll_stats["nindexes"] == 1
    assert coll_stats["ns"] == "cfreport.stats" and coll_stats["size"] > 0


def test_create_and_drop_indexes(replset, set_client):
    db = set_client.get_database("cfreport", write_concern=WriteConcern("majority"))
    db.command("create", "made")
    with pytest.raises(OperationFailure) as err:
        db.command("create", "made")
    assert err.value.code == 48
    db.made.create_index([("k", 1)], name="k_1")
    db.made.create_index([("j", 1)], name="j_1")
    assert db.command("dropIndexes", "made", index="k_1")["nIndexesWas"] == 3
    with pytest.raises(OperationFailure) as err:
        db.command("dropIndexes", "made", index="k_1")
    assert err.value.code == 27
    with pytest.raises(OperationFailure) as err:
        db.command("dropIndexes", "made", index="_id_")
    assert err.value.code == 72
    db.command("dropIndexes", "made", index="*")
    assert list(db.made.index_information()) == ["_id_"]


def test_hello_has_topology_version_and_config_keeps_tags(standin):
    hubs = {h: f"hub{i + 1}" for i, h in enumerate(standin.hosts)}
    standin.initiate(hub_names=hubs)
    rs = ReplicaSet(standin.uri)
    try:
        rs.wait_for_primary(10)
    finally:
        rs.close()
    with standin.client() as client:
        hello = client.admin.command("hello")
        config = client.admin.command("replSetGetConfig")["config"]
    assert set(hello["topologyVersion"]) == {"processId", "counter"}
    assert {m["host"]: m["tags"].get("hub") for m in config["members"]} == hubs


def test_initiate_without_config_then_reconfig_rules(standin):
    first = standin.hosts[0]
    with _direct(standin, first, None) as bare:
        bare.admin.command("replSetInitiate")  # through the localhost exception
        wait_until(lambda: bare.admin.command("hello")["isWritablePrimary"], what="primary")
    standin.credentials.create_users(standin.direct_uri(first))
    with _direct(standin, first) as client:
        config = client.admin.command("replSetGetConfig")["config"]
        assert [m["host"] for m in config["members"]] == [first]

        def reconfig(members: list[dict], version: int, **extra) -> dict:
            new = {**config, "version": version, "members": members}
            return client.admin.command("replSetReconfig", new, **extra)

        def refused(members: list[dict], version: int) -> int:
            with pytest.raises(OperationFailure) as err:
                reconfig(members, version)
            return err.value.code

        me = config["members"][0]
        local = "localhost:" + standin.hosts[1].split(":")[1]
        assert refused([me, {"_id": 1, "host": local}], 1) == 103  # version not greater
        assert refused([me, {"_id": 0, "host": local}], 2) == 93  # duplicate _id
        assert refused([me, {"_id": 1, "host": "127.0.0.1:1"}], 2) == 74  # nobody there
        two_new = [me, {"_id": 1, "host": local}, {"_id": 2, "host": standin.hosts[2]}]
        assert refused(two_new, 2) == 103  # two voters at once
        assert refused([me, {"_id": 1, "host": local, "votes": 0}], 2) == 93  # priority 1
        assert reconfig([me, {"_id": 1, "host": local}], 2)["ok"] == 1
        assert reconfig(two_new, 3)["ok"] == 1
        hello = client.admin.command("hello")
    assert sorted(hello["hosts"]) == sorted([first, local, standin.hosts[2]])
    with standin.client(member=local, serverSelectionTimeoutMS=5000) as other:
        assert other.admin.command("hello")["me"] == local


def test_a_retried_write_is_answered_not_redone_even_on_the_next_primary(standin_set):
    session = {"id": Binary(uuid.uuid4().bytes, 4)}
    insert = {"documents": [{"_id": "once", "n": 0}], "writeConcern": {"w": "majority"}}
    bump = {"updates": [{"q": {"_id": "once"}, "u": {"$inc": {"n": 1}}}]}
    with standin_set.client() as client:
        first = client.cfreport.command("insert", "c", lsid=session, txnNumber=Int64(1), **insert)
        again = client.cfreport.command("insert", "c", lsid=session, txnNumber=Int64(1), **insert)
        assert first == again == {"n": 1, "ok": 1}
        client.cfreport.command("update", "c", lsid=session, txnNumber=Int64(2), **bump)
        old = _primary(client)
        with _direct(standin_set, old) as direct:
            direct.admin.command("replSetStepDown", 30)
        wait_until(lambda: standin_set.primary() not in (None, old), what="a new primary")
        retry = client.cfreport.command("update", "c", lsid=session, txnNumber=Int64(2), **bump)
        assert retry["n"] == 1 and _primary(client) != old
        assert list(client.cfreport.c.find()) == [{"_id": "once", "n": 1}]


def test_localhost_and_host_names_do_not_mix(standin):
    with _direct(standin, standin.hosts[0], None) as client, pytest.raises(OperationFailure) as err:
        port = standin.hosts[1].split(":")[1]
        members = [{"_id": 0, "host": standin.hosts[0]}, {"_id": 1, "host": f"hub2:{port}"}]
        client.admin.command("replSetInitiate", {"_id": standin.set_name, "members": members})
    assert err.value.code == 2 and "must be localhost references" in str(err.value)
