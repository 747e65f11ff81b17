"""Issue 14, health endpoints: Patroni's /health, /master, /replica, /read on real hubd."""

from __future__ import annotations

import time

from hub.portal.health import HubFacts, MemberLook, judge
from tests.conftest import wait_until
from tests.portal.conftest import answer, status_of

# Election (1 s in this lab) plus the master watch's look and a little slack.
MASTER_MOVES_WITHIN = 15.0


def test_every_hub_answers_and_exactly_the_collecting_hub_is_master(portal_lab):
    master = wait_until(portal_lab.master, 30, 0.1, "a master")
    wait_until(lambda: status_of(master, "master") == 200, 20, 0.1, "/master 200 on the master")
    for hub in portal_lab.hubs:
        health = answer(hub, "health")
        assert health is not None and health.status_code == 200, hub.name
        body = health.json()
        assert body["hub"] == hub.name and body["member"] == hub.member
        assert set(body) == {"hub", "member", "state", "role", "lag_seconds", "ok", "why"}
        assert health.headers["content-type"] == "application/json"
        assert health.headers["cache-control"] == "no-store"
        if hub is master:
            assert body["state"] == "PRIMARY"
            assert status_of(hub, "replica") == 503
            assert status_of(hub, "read") == 200
            assert "collects" in answer(hub, "master").json()["why"]
        else:
            got = answer(hub, "master")
            assert got is not None and got.status_code == 503
            assert "not primary" in got.json()["why"]
            assert status_of(hub, "replica") == 200
            assert status_of(hub, "read") == 200


def test_health_endpoints_need_no_login_and_refuse_other_methods(portal_lab):
    hub = portal_lab.hubs[0]
    import httpx

    posted = httpx.post(f"{hub.portal_url}health", timeout=3.0)
    assert posted.status_code == 405
    assert "Traceback" not in posted.text
    missing = httpx.get(f"{hub.portal_url}no-such-page", timeout=3.0)
    assert missing.status_code == 404
    assert missing.headers["x-frame-options"] == "DENY"
    assert "'unsafe-inline'" not in missing.headers["content-security-policy"]


def test_master_moves_when_the_master_hub_is_killed(portal_lab):
    old = wait_until(portal_lab.master, 30, 0.1, "a master")
    wait_until(lambda: status_of(old, "master") == 200, 20, 0.1, "/master on the master")
    portal_lab.kill(old.name)
    killed = time.monotonic()
    try:
        assert status_of(old, "health") is None  # its URL is gone with it

        def new_master():
            masters = [h for h in portal_lab.hubs if status_of(h, "master") == 200]
            return masters[0] if len(masters) == 1 and masters[0] is not old else None

        new = wait_until(new_master, MASTER_MOVES_WITHIN, 0.1, "/master on another hub")
        print(f"/master moved {old.name} -> {new.name} in {time.monotonic() - killed:.1f}s")
        survivor = next(h for h in portal_lab.hubs if h not in (old, new))
        assert status_of(survivor, "master") == 503
        wait_until(lambda: status_of(survivor, "read") == 200, 10, 0.1, "reads on the standby")
    finally:
        portal_lab.revive(old.name)
    wait_until(lambda: status_of(old, "replica") == 200, 30, 0.2, "the revived hub as replica")


def facts(state, lag=0.0, is_master=False, collecting=True):
    return HubFacts("hub1", "h1:27017", MemberLook(state, lag), is_master, collecting, 90.0)


def test_a_primary_whose_collection_loop_stalled_is_not_master():
    code, body = judge("master", facts("PRIMARY", is_master=True, collecting=False))
    assert code == 503 and "collection loop" in body["why"]
    assert judge("master", facts("PRIMARY", is_master=True))[0] == 200


def test_a_lagging_secondary_serves_no_reads_and_is_no_healthy_replica():
    assert judge("read", facts("SECONDARY", lag=30.0))[0] == 200
    code, body = judge("read", facts("SECONDARY", lag=200.0))
    assert code == 503 and "over the 90s bound" in body["why"]
    assert judge("replica", facts("SECONDARY", lag=200.0))[0] == 503
    assert judge("replica", facts("SECONDARY", lag=None))[0] == 503


def test_a_hub_whose_mongod_does_not_answer_is_unhealthy():
    dead = HubFacts("hub1", "h1:27017", MemberLook(None, None, "refused"), False, True, 90.0)
    for endpoint in ("health", "master", "replica", "read"):
        code, body = judge(endpoint, dead)
        assert code == 503 and "does not answer: refused" in body["why"]
    assert judge("replica", facts("RECOVERING"))[0] == 503
