"""Changing who is in the replica set: add a hub's member, remove one, replace a dead one.

Each change is one replSetReconfig on the primary (mongod allows one voting member added or
removed per reconfig), checked first the way an operator would check it: a change that
would leave fewer healthy voting members than a majority, or remove the primary, is
refused before anything is sent. A new member joins with priority 0 and gets its priority
only once it is a caught-up secondary, so it cannot be elected while it still lacks data.
"""

from __future__ import annotations

import time
from typing import Any

from pymongo.errors import PyMongoError

from hub.replset import (
    DEFAULT_MAX_LAG,
    HUB_TAG,
    ReplicaSet,
    ReplsetError,
    Topology,
    explain_failure,
    hub_tags,
)


def _current_config(rs: ReplicaSet, primary: str) -> dict[str, Any]:
    try:
        return rs.member_command(primary, "replSetGetConfig")["config"]
    except PyMongoError as exc:
        raise explain_failure(exc, f"replSetGetConfig on {primary}") from None


def _reconfig(rs: ReplicaSet, primary: str, config: dict[str, Any], what: str) -> None:
    new = {**config, "version": int(config["version"]) + 1}
    new.pop("term", None)
    try:
        rs.member_command(primary, "replSetReconfig", new)
    except PyMongoError as exc:
        raise explain_failure(exc, what) from None


def _majority_problem(voters: list[str], healthy: set[str]) -> str | None:
    """Why a set whose voting members are `voters` would have no majority, or None."""
    up = [v for v in voters if v in healthy]
    need = len(voters) // 2 + 1
    if len(up) >= need:
        return None
    return (
        f"it would leave {len(up)} healthy voting member(s) of {len(voters)}, fewer than "
        f"the {need} a majority needs"
    )


def _healthy(topo: Topology) -> set[str]:
    return {m.name for m in topo.members if m.health}


def _voters(config: dict[str, Any]) -> list[str]:
    return [c["host"] for c in config["members"] if c.get("votes", 1)]


def _primary(topo: Topology) -> str:
    if topo.primary is None:
        raise ReplsetError("there is no primary: the set cannot be reconfigured now")
    return topo.primary


def _reachable(rs: ReplicaSet, host: str) -> bool:
    try:
        rs.member_command(host, "ping", timeout=min(rs.timeout, 2.0))
    except PyMongoError:
        return False
    return True


def add_member(
    rs: ReplicaSet,
    hub: str,
    host: str,
    priority: float = 1.0,
    catch_up_timeout: float = 60.0,
    max_lag: float = DEFAULT_MAX_LAG,
) -> list[str]:
    """Add `host` as hub `hub`'s member: priority 0 first, `priority` once caught up."""
    topo = rs.topology()
    primary = _primary(topo)
    config = _current_config(rs, primary)
    hosts = {c["host"] for c in config["members"]}
    names = hub_tags(config)
    if host in hosts:
        raise ReplsetError(f"{host} is already a member of the set")
    if hub in names.values():
        raise ReplsetError(f"the name {hub} is already taken by {_host_of(names, hub)}")
    if not _reachable(rs, host):
        raise ReplsetError(f"refusing to add {hub} ({host}): it does not answer")
    healthy = _healthy(topo) | {host}
    problem = _majority_problem(_voters(config) + [host], healthy)
    if problem:
        raise ReplsetError(f"refusing to add {hub} ({host}): {problem}")
    entry = {
        "_id": max((int(c["_id"]) for c in config["members"]), default=-1) + 1,
        "host": host,
        "priority": 0,
        "tags": {HUB_TAG: hub},
    }
    _reconfig(rs, primary, {**config, "members": [*config["members"], entry]}, f"adding {host}")
    steps = [f"added {hub} ({host}) with priority 0 until it has caught up"]
    rs.event("member-add", f"{hub} ({host}) added to the set", member=host, hub=hub)
    _wait_caught_up(rs, host, catch_up_timeout, max_lag)
    steps.append(f"{hub} ({host}) is a caught-up secondary")
    if priority > 0:
        _set_priority(rs, host, priority)
        steps.append(f"{hub} ({host}) may now be elected (priority {priority:g})")
    return steps


def _host_of(names: dict[str, str], hub: str) -> str:
    return next(h for h, n in names.items() if n == hub)


def _wait_caught_up(rs: ReplicaSet, host: str, timeout: float, max_lag: float) -> None:
    deadline = time.monotonic() + timeout
    seen = "not seen yet"
    while time.monotonic() < deadline:
        try:
            view = rs.topology().member(host)
        except ReplsetError as exc:
            seen = str(exc)
        else:
            seen = f"{view.state}, lag {view.lag_seconds}"
            if view.state == "SECONDARY" and (view.lag_seconds or 0.0) <= max_lag:
                return
        time.sleep(0.2)
    raise ReplsetError(
        f"{host} was added with priority 0 but has not caught up within {timeout:g}s "
        f"({seen}); it stays unelectable until it does"
    )


def _set_priority(rs: ReplicaSet, host: str, priority: float) -> None:
    primary = _primary(rs.topology())
    config = _current_config(rs, primary)
    members = [{**c, "priority": priority} if c["host"] == host else c for c in config["members"]]
    _reconfig(rs, primary, {**config, "members": members}, f"raising the priority of {host}")


def remove_member(rs: ReplicaSet, member: str) -> list[str]:
    """Remove the member named by hub name or address; never the primary."""
    topo = rs.topology()
    primary = _primary(topo)
    view = topo.member(member)
    if view.name == primary:
        raise ReplsetError(
            f"refusing to remove {view.label}: it is the primary; move it first "
            f"(hubctl stepdown --to another member)"
        )
    config = _current_config(rs, primary)
    voters = [v for v in _voters(config) if v != view.name]
    problem = _majority_problem(voters, _healthy(topo))
    if problem:
        raise ReplsetError(f"refusing to remove {view.label}: {problem}")
    members = [c for c in config["members"] if c["host"] != view.name]
    _reconfig(rs, primary, {**config, "members": members}, f"removing {view.name}")
    rs.event("member-remove", f"{view.label} removed from the set", member=view.name)
    return [f"removed {view.label}"]


def replace_member(
    rs: ReplicaSet,
    old: str,
    hub: str,
    host: str,
    catch_up_timeout: float = 60.0,
    max_lag: float = DEFAULT_MAX_LAG,
) -> list[str]:
    """Replace member `old` by `host` for hub `hub`: add the new one, then remove the old.

    Adding first keeps a majority through a replacement of a dead member; the new member
    takes the old one's priority once it has caught up.
    """
    topo = rs.topology()
    view = topo.member(old)
    if view.name == _primary(topo):
        raise ReplsetError(
            f"refusing to replace {view.label}: it is the primary; move it first "
            f"(hubctl stepdown --to another member)"
        )
    # The old member's hub name may be reused by its replacement, once the old one is gone.
    reuse = view.hub == hub
    steps = add_member(
        rs,
        f"{hub}.new" if reuse else hub,
        host,
        priority=0,
        catch_up_timeout=catch_up_timeout,
        max_lag=max_lag,
    )
    steps += remove_member(rs, view.name)
    primary = _primary(rs.topology())
    config = _current_config(rs, primary)
    members = [
        {**c, "priority": view.priority, "tags": {**(c.get("tags") or {}), HUB_TAG: hub}}
        if c["host"] == host
        else c
        for c in config["members"]
    ]
    _reconfig(rs, primary, {**config, "members": members}, f"naming {host} {hub}")
    steps.append(f"{hub} ({host}) took over priority {view.priority:g}")
    return steps
