"""The hello handshake and the replSet* admin commands, answered as mongod answers them."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from bson import ObjectId
from bson.int64 import Int64

from hubctl.lab.standin.errors import CommandError, not_yet_initialized
from hubctl.lab.standin.model import (
    DOWN,
    PRIMARY,
    SECONDARY,
    STATE_STR,
    Member,
    ReplicaSetModel,
    _date,
    _optime_doc,
)

if TYPE_CHECKING:
    from hubctl.lab.standin.server import MemberServer

MAX_WIRE_VERSION = 21  # MongoDB 7.0; pymongo 4.20 refuses servers below 9
MAX_AWAIT_SECONDS = 600.0  # a hello never waits longer than this, whatever it asks


def election_id(term: int) -> ObjectId:
    # mongod's electionId is 7fffffff followed by the term, so newer terms compare greater.
    return ObjectId(f"7fffffff{term:016x}")


def in_config(model: ReplicaSetModel, m: Member) -> bool:
    return model.config is not None and m.in_config


def awaitable_hello(server: MemberServer, cmd: dict[str, Any], legacy: bool) -> dict[str, Any]:
    """hello, which waits up to maxAwaitTimeMS for a topology change when the client's
    topologyVersion is current, so a streaming driver monitor learns of an election at once."""
    model = server.model
    known = cmd.get("topologyVersion")
    max_wait = cmd.get("maxAwaitTimeMS")
    with model.lock:
        m = model.member(server.name)
        if isinstance(known, dict) and isinstance(max_wait, int) and max_wait >= 0:
            if known.get("processId") == server.process_id:
                deadline = time.monotonic() + min(max_wait / 1000.0, MAX_AWAIT_SECONDS)
                while (
                    model.topology_version == int(known.get("counter", -1))
                    and m.alive
                    and not model.closed
                    and server.running
                ):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    model.changed.wait(min(left, 0.5))  # releases the lock while it waits
        doc = hello(model, m, legacy)
        doc["topologyVersion"] = {
            "processId": server.process_id,
            "counter": Int64(model.topology_version),
        }
        doc["connectionId"] = server.stats.total
        return doc


def hello(model: ReplicaSetModel, m: Member, legacy: bool) -> dict[str, Any]:
    now = time.time()
    writable = "ismaster" if legacy else "isWritablePrimary"
    doc: dict[str, Any] = {
        writable: False,
        "secondary": False,
        "maxBsonObjectSize": 16 * 1024 * 1024,
        "maxMessageSizeBytes": 48_000_000,
        "maxWriteBatchSize": 100_000,
        "localTime": _date(now),
        "logicalSessionTimeoutMinutes": 30,
        "connectionId": 1,
        "minWireVersion": 0,
        "maxWireVersion": MAX_WIRE_VERSION,
        "readOnly": False,
        "helloOk": True,
        "ok": 1,
    }
    cfg = model.config
    if cfg is None or not m.in_config:
        doc.update(isreplicaset=True, info="Does not have a valid replica set config")
        return doc
    members = cfg["members"]
    visible = [c for c in members if not c.get("hidden")]
    doc.update(
        setName=cfg["_id"],
        setVersion=cfg["version"],
        hosts=[c["host"] for c in visible if _priority(c) > 0],
        me=m.host,
    )
    passives = [c["host"] for c in visible if _priority(c) == 0]
    if passives:
        doc["passives"] = passives
    primary = model.primary_seen_by(m)
    if primary is not None:
        doc["primary"] = primary.host
    if m.state == PRIMARY:
        doc[writable] = True
        doc["electionId"] = election_id(m.election_term)
    elif m.state == SECONDARY:
        doc["secondary"] = True
    if m.tags:
        doc["tags"] = dict(m.tags)
    # A primary writes a no-op every 10 s when idle, so its lastWriteDate is always recent; a
    # caught-up secondary matches it. Only a member that missed writes reports an old date.
    caught_up = primary is not None and m.last_optime >= primary.last_optime
    last = now if (m.state == PRIMARY or caught_up) else m.last_wall
    entry = m.oplog[-1] if m.oplog else None
    doc["lastWrite"] = {
        "opTime": _optime_doc(entry),
        "lastWriteDate": _date(last),
        "majorityOpTime": _optime_doc(entry),
        "majorityWriteDate": _date(last),
    }
    return doc


def _priority(c: dict[str, Any]) -> float:
    return float(c.get("priority", 1))


def config_doc(model: ReplicaSetModel) -> dict[str, Any]:
    """The config as replSetGetConfig shows it: every member field mongod fills in."""
    cfg = model.config
    assert cfg is not None
    members = [
        {
            "_id": c["_id"],
            "host": c["host"],
            "arbiterOnly": False,
            "buildIndexes": True,
            "hidden": bool(c.get("hidden", False)),
            "priority": c.get("priority", 1),
            "tags": dict(c.get("tags") or {}),
            "secondaryDelaySecs": Int64(c.get("secondaryDelaySecs", 0)),
            "votes": c.get("votes", 1),
        }
        for c in cfg["members"]
    ]
    settings = {
        "chainingAllowed": True,
        "heartbeatIntervalMillis": 2000,
        "heartbeatTimeoutSecs": 10,
        "catchUpTimeoutMillis": -1,
        "catchUpTakeoverDelayMillis": 30000,
        "getLastErrorModes": {},
        "getLastErrorDefaults": {"w": 1, "wtimeout": 0},
        **(cfg.get("settings") or {}),
        "electionTimeoutMillis": int(model.election_timeout * 1000),
        "replicaSetId": cfg["replicaSetId"],
    }
    return {
        "_id": cfg["_id"],
        "version": cfg["version"],
        "term": model.term,
        "protocolVersion": Int64(1),
        "writeConcernMajorityJournalDefault": True,
        "members": members,
        "settings": settings,
    }


def get_config(model: ReplicaSetModel, m: Member) -> dict[str, Any]:
    if not in_config(model, m):
        raise not_in_set(model)
    return {"config": config_doc(model), "ok": 1}


def not_in_set(model: ReplicaSetModel) -> CommandError:
    if model.config is None:
        return not_yet_initialized()
    return CommandError(
        93,
        "InvalidReplicaSetConfig",
        "Our replica set config is invalid or we are not a member of it",
    )


def get_status(model: ReplicaSetModel, m: Member) -> dict[str, Any]:
    cfg = model.config
    if cfg is None or not m.in_config:
        raise not_in_set(model)
    now = time.time()
    ids = {c["host"]: c["_id"] for c in cfg["members"]}
    primary = model.primary_seen_by(m)
    rows = []
    for x in model.members:
        if not x.in_config:
            continue
        seen = model.sees(m, x)
        entry = x.oplog[-1] if (seen and x.oplog) else None
        optime = _optime_doc(entry)
        wall = _date(entry.wall if entry else 0)
        row: dict[str, Any] = {
            "_id": ids.get(x.host, x.index),
            "name": x.host,
            "health": 1.0 if seen else 0.0,
            "state": x.state if seen else DOWN,
            "stateStr": STATE_STR[x.state] if seen else STATE_STR[DOWN],
            "uptime": int(now - x.started_at) if seen else 0,
            "optime": optime,
            "optimeDurable": optime,
            "optimeDate": wall,
            "optimeDurableDate": wall,
            "lastAppliedWallTime": wall,
            "lastDurableWallTime": wall,
            "syncSourceHost": primary.host if (seen and primary and x is not primary) else "",
            "configVersion": cfg["version"],
            "configTerm": model.term,
        }
        if x is m:
            row["self"] = True
        else:
            row["lastHeartbeat"] = _date(now)
            row["pingMs"] = Int64(0)
        if seen and x.state == PRIMARY:
            row["electionTime"] = _optime_doc(entry)["ts"]
            row["electionDate"] = _date(x.election_time)
        rows.append(row)
    voters = len(model.voters())
    return {
        "set": cfg["_id"],
        "date": _date(now),
        "myState": m.state,
        "term": model.term,
        "syncSourceHost": primary.host if (primary and primary is not m) else "",
        "heartbeatIntervalMillis": Int64(2000),
        "majorityVoteCount": voters // 2 + 1,
        "writeMajorityCount": voters // 2 + 1,
        "votingMembersCount": voters,
        "writableVotingMembersCount": voters,
        "members": rows,
        "ok": 1,
    }


def freeze(model: ReplicaSetModel, m: Member, seconds: Any) -> dict[str, Any]:
    if not in_config(model, m):
        raise not_in_set(model)
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        raise CommandError(
            2, "BadValue", f"replSetFreeze takes a number of seconds, got {seconds!r}"
        )
    if m.state == PRIMARY:
        raise CommandError(
            95,
            "NotSecondary",
            "cannot freeze node when primary or running for election. state: Primary",
        )
    if seconds == 0:
        m.frozen_until = 0.0
        return {"info": "unfreezing", "ok": 1}
    m.frozen_until = time.time() + float(seconds)
    doc: dict[str, Any] = {"ok": 1}
    if seconds == 1:
        doc["warning"] = "you really want to freeze for only 1 second?"
    return doc


def step_down(model: ReplicaSetModel, m: Member, cmd: dict[str, Any]) -> dict[str, Any]:
    if not in_config(model, m):
        raise not_in_set(model)
    seconds = float(cmd.get("replSetStepDown") or 60)
    catch_up = float(cmd.get("secondaryCatchUpPeriodSecs", 10))
    if catch_up >= seconds:
        raise CommandError(
            2, "BadValue", "stepdown period must be longer than secondaryCatchUpPeriodSecs"
        )
    if m.state != PRIMARY:
        raise CommandError(10107, "NotWritablePrimary", "not primary so can't step down")
    deadline = time.time() + catch_up
    while True:
        now = time.time()
        ready = [
            x
            for x in model.component(m)
            if x is not m and model._electable(x, now) and x.last_optime >= m.last_optime
        ]
        if ready or cmd.get("force"):
            break
        if now >= deadline:
            raise CommandError(
                262,
                "ExceededTimeLimit",
                f"No electable secondaries caught up as of {_date(now).isoformat()}Z. Please use "
                "the replSetStepDown command with the argument {force: true} to force node to "
                "step down.",
            )
        model.changed.wait(0.02)
        if m.state != PRIMARY:
            raise CommandError(10107, "NotWritablePrimary", "not primary so can't step down")
    m.stepdown_until = time.time() + seconds
    model._step_down(m, f"replSetStepDown for {seconds:g}s")
    # mongod hands off to a caught-up secondary at once instead of waiting for a timeout.
    model.tick(time.time(), handoff=True)
    return {"ok": 1}
