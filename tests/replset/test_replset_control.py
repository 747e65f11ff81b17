"""hub.replset against a live set: topology, initiate, freeze, stepdown, switchover, maintenance."""

from __future__ import annotations

import logging

import pytest

from hub.maintenance_window import close_maintenance, open_maintenance
from hub.replset import ReplicaSet
from hub.topology import ReplsetError
from tests.conftest import wait_until


@pytest.fixture
def rs(replset):
    handle = ReplicaSet(replset.uri)
    wait_until(handle.primary, what="a primary")
    yield handle
    handle.close()


def secondaries(rs):
    return [m.name for m in rs.topology().members if m.state == "SECONDARY"]


def test_topology_names_every_member(replset, rs):
    topo = rs.topology()
    assert topo.set_name == "CFEngineNova"
    assert sorted(m.name for m in topo.members) == sorted(replset.hosts)
    assert topo.primary in replset.hosts
    assert [m.state for m in topo.members].count("PRIMARY") == 1
    assert all(m.health and m.priority == 1 for m in topo.members)
    assert all(m.lag_seconds is not None and m.lag_seconds < 5 for m in topo.members)
    assert topo.health_code() == 0


def test_initiate_again_is_idempotent_and_refuses_other_members(replset, rs):
    assert rs.initiate(replset.hosts, "CFEngineNova") == "already initiated"
    with pytest.raises(ReplsetError, match=f"it also has {replset.hosts[2]}"):
        rs.initiate(replset.hosts[:2], "CFEngineNova")
    with pytest.raises(ReplsetError, match="set name is 'CFEngineNova', not 'Other'"):
        rs.initiate(replset.hosts, "Other")


def test_initiate_with_priorities(standin):
    rs = ReplicaSet(standin.uri)
    try:
        outcome = standin.initiate(priorities={standin.hosts[2]: 5}, hub_names={})
        assert outcome == "initiated"
        topo = rs.topology()
        assert topo.primary == standin.hosts[2]
        assert topo.member(standin.hosts[2]).priority == 5
        with pytest.raises(ReplsetError, match="not a --member"):
            rs.initiate(standin.hosts, "CFEngineNova", {"127.0.0.1:1": 2})
    finally:
        rs.close()


def test_freeze_shows_in_topology_and_unfreeze_clears_it(rs):
    target = secondaries(rs)[0]
    rs.freeze(target, 120)
    frozen = rs.topology().member(target).frozen_until
    assert frozen is not None
    rs.unfreeze(target)
    assert rs.topology().member(target).frozen_until is None


def test_freezing_the_primary_is_refused_with_mongods_message(rs):
    primary = rs.topology().primary
    with pytest.raises(ReplsetError, match="cannot freeze node when primary"):
        rs.freeze(primary, 60)


def test_unknown_member_is_named(rs):
    with pytest.raises(ReplsetError, match="127.0.0.1:1 is not a member"):
        rs.freeze("127.0.0.1:1", 60)


def test_stepdown_elects_another(rs):
    old = rs.topology().primary
    assert rs.stepdown(seconds=30, catch_up=5) == old
    new = rs.wait_for_primary(15, exclude=old)
    assert new != old


def test_stepdown_with_no_electable_secondary_fails_clearly(rs):
    for name in secondaries(rs):
        rs.freeze(name, 60)
    with pytest.raises(ReplsetError, match="No electable secondaries caught up"):
        rs.stepdown(seconds=10, catch_up=1)
    assert rs.topology().primary is not None


def test_switchover_to_a_named_member(rs):
    topo = rs.topology()
    view = [m for m in topo.members if m.name != topo.primary][-1]
    steps = rs.switchover(view.hub, seconds=30, catch_up=5, timeout=20)
    assert steps[-1].startswith("unfroze")
    assert f"{view.hub} ({view.name}) is primary" in steps
    after = rs.topology()
    assert after.primary == view.name
    assert all(m.frozen_until is None for m in after.members)


def test_maintenance_freezes_secondaries_and_end_lifts_it(rs):
    primary = rs.topology().primary
    steps = open_maintenance(rs, primary, 3600)
    assert len([s for s in steps if s.startswith("froze")]) == 2
    topo = rs.topology()
    assert topo.maintenance["member"] == primary
    assert all(m.frozen_until for m in topo.members if m.name != primary)
    with pytest.raises(ReplsetError, match="No electable secondaries"):
        rs.stepdown(seconds=10, catch_up=1)
    close_maintenance(rs)
    topo = rs.topology()
    assert topo.maintenance is None
    assert all(m.frozen_until is None for m in topo.members)
    rs.stepdown(seconds=10, catch_up=2)
    assert rs.wait_for_primary(10, exclude=primary) != primary


def test_a_config_that_cannot_be_read_is_an_error_not_default_priorities(standin_set):
    """The member that answered replSetGetStatus dies before it gives its config: the caller
    is told, instead of every priority showing as 1 and every hub name missing."""
    rs = ReplicaSet(standin_set.uri, timeout=1.0)
    try:
        status = rs.client.admin.command("replSetGetStatus")
        me = next(m["name"] for m in status["members"] if m.get("self"))
        standin_set.kill(me)
        with pytest.raises(ReplsetError, match=f"replSetGetConfig on {me}"):
            rs._config_from(status)
    finally:
        rs.close()


def test_an_event_no_primary_takes_is_a_warning(standin_set, caplog):
    primary = standin_set.primary()
    left, other = [h for h in standin_set.hosts if h != primary]
    standin_set.kill(primary)
    standin_set.kill(other)
    rs = ReplicaSet(standin_set.uri, timeout=1.0)
    try:
        wait_until(lambda: rs.topology().primary is None, 15, 0.2, "no primary")
        with caplog.at_level(logging.WARNING, logger="hub.replset"):
            rs.freeze(left, 30)
    finally:
        rs.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("timeline event 'freeze' not recorded" in w for w in warnings), warnings
    assert any(f"freeze of {left} not recorded" in w for w in warnings), warnings
