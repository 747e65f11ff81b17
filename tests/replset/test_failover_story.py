"""The scripted failover story of issue 2, then the partition cases only the stand-in can play."""

from __future__ import annotations

import pymongo
import pytest
from pymongo import WriteConcern
from pymongo.errors import PyMongoError, WriteConcernError

from hub.replset import ReplicaSet
from tests.conftest import wait_until


def test_failover_story(replset):
    rs = ReplicaSet(replset.uri)
    client = replset.client(heartbeatFrequencyMS=500, serverSelectionTimeoutMS=10000)
    reports = client.get_database(
        "cfreport", write_concern=WriteConcern("majority", wtimeout=5000)
    ).reports
    try:
        first = rs.wait_for_primary(10)
        reports.insert_one({"step": "initiated"})
        # planned: stepdown --to the last member
        target = [h for h in replset.hosts if h != first][-1]
        rs.switchover(target, seconds=30, catch_up=5, timeout=20)
        assert rs.topology().primary == target
        reports.insert_one({"step": "switched"})
        # unplanned: freeze one secondary and kill the primary, so the other one wins
        frozen, winner = [h for h in replset.hosts if h != target]
        rs.freeze(frozen, 60)
        replset.kill(target)
        assert rs.wait_for_primary(20, exclude=target) == winner
        reports.insert_one({"step": "after kill"})
        # the old primary comes back as a secondary with every write
        replset.revive(target)
        wait_until(lambda: rs.topology().member(target).state == "SECONDARY", 30, what="revived")
        with replset.client(member=target) as direct:
            coll = direct.get_database(
                "cfreport", read_preference=pymongo.ReadPreference.SECONDARY_PREFERRED
            ).reports
            wait_until(lambda: coll.count_documents({}) == 3, 20, what="revived member caught up")
        assert rs.topology().primary == winner
        # majority lost: no primary, and writes are refused
        rs.unfreeze(frozen)
        replset.kill(frozen)
        replset.kill(target)
        wait_until(lambda: rs.topology().primary is None, 30, what="primary to step down")
        with pytest.raises(PyMongoError):
            replset.client(serverSelectionTimeoutMS=1500).cfreport.reports.insert_one({"x": 1})
        assert rs.topology().health_code() == 2
    finally:
        client.close()
        rs.close()


def test_isolated_primary_cannot_commit_and_steps_down(standin_set):
    rs = ReplicaSet(standin_set.uri)
    old = rs.wait_for_primary(10)
    with standin_set.client(member=old) as direct:
        coll = direct.get_database(
            "cfreport", write_concern=WriteConcern("majority", wtimeout=300)
        ).reports
        standin_set.isolate(old)
        with pytest.raises(WriteConcernError) as err:
            coll.insert_one({"lost": True})
        assert err.value.code == 64
        # the majority side elects a new primary, and the isolated one steps down
        new = wait_until(
            lambda: standin_set.primary() not in (None, old) and standin_set.primary(),
            10,
            what="new primary on the majority side",
        )
        wait_until(
            lambda: not direct.admin.command("hello")["isWritablePrimary"],
            10,
            what="isolated primary stepping down",
        )
    standin_set.heal(old)
    # the write the isolated primary took alone is rolled back on rejoin
    with standin_set.client(member=old) as direct:
        coll = direct.get_database(
            "cfreport", read_preference=pymongo.ReadPreference.SECONDARY_PREFERRED
        ).reports
        wait_until(lambda: coll.count_documents({"lost": True}) == 0, 10, what="rollback")
    assert rs.wait_for_primary(5) == new
    rs.close()


def test_priority_takeover_returns_to_preferred_member(standin):
    standin.initiate(priorities={standin.hosts[0]: 2}, election_timeout_ms=500)
    rs = ReplicaSet(standin.uri)
    assert rs.topology().primary == standin.hosts[0]
    rs.stepdown(seconds=2, catch_up=1)
    assert rs.wait_for_primary(5, exclude=standin.hosts[0]) != standin.hosts[0]
    assert rs.wait_for_primary(15, expected=standin.hosts[0]) == standin.hosts[0]
    rs.close()
