"""The hello handshake and the replSet* admin commands, answered as mongod answers them."""

from __future__ import annotations

import time
from typing import Any

from bson import ObjectId

from hubctl.lab.standin.errors import CommandError, not_yet_initialized
from hubctl.lab.standin.model import (
    DOWN,
    PRIMARY,
    SECONDARY,
    STARTUP,
    STATE_STR,
    Member,
    ReplicaSetModel,
    _date,
    _optime_doc,
)

MAX_WIRE_VERSION = 21  # MongoDB 7.0; pymongo 4.20 refuses servers below 9


def election_id(term: int) -> ObjectId:
    # mongod's electionId is 7fffffff followed by the term, so newer terms compare greater.
    return ObjectId(f"7fffffff{term:016x}")


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
    if model.config is None:
        doc.update(isreplicaset=True, info="Does not have a valid replica set config")
        return doc
    members = model.config["members"]
    doc.update(
        setName=model.config["_id"],
        setVersion=model.config["version"],
        hosts=[c["host"] for c in members if c.get("priority", 1) > 0],
        me=m.name,
    )
    passives = [c["host"] for c in members if c.get("priority", 1) == 0]
    if passives:
        doc["passives"] = passives
    primary = model.primary_seen_by(m)
    if primary is not None:
        doc["primary"] = primary.name
    if m.state == PRIMARY:
        doc[writable] = True
        doc["electionId"] = election_id(m.election_term)
    elif m.state == SECONDARY:
        doc["secondary"] = True
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


def _config_doc(model: ReplicaSetModel) -> dict[str, Any]:
    cfg = model.config
    assert cfg is not None
    members = []
    for c in cfg["members"]:
        members.append(
            {
                "_id": c["_id"],
                "host": c["host"],
                "arbiterOnly": False,
                "buildIndexes": True,
                "hidden": False,
                "priority": c.get("priority", 1),
                "tags": {},
                "secondaryDelaySecs": 0,
                "votes": c.get("votes", 1),
            }
        )
    settings = {
        "electionTimeoutMillis": int(model.election_timeout * 1000),
        "heartbeatIntervalMillis": 2000,
    }
    return {
        "_id": cfg["_id"],
        "version": cfg["version"],
        "term": model.term,
        "protocolVersion": 1,
        "members": members,
        "settings": settings,
    }


def initiate(model: ReplicaSetModel, m: Member, config: Any) -> dict[str, Any]:
    if model.config is not None:
        raise CommandError(23, "AlreadyInitialized", "already initialized")
    if not isinstance(config, dict) or not isinstance(config.get("members"), list):
        raise CommandError(
            93, "InvalidReplicaSetConfig", "replSetInitiate needs a config document with members"
        )
    if config.get("_id") != model.set_name:
        raise CommandError(
            93,
            "InvalidReplicaSetConfig",
            f"Attempting to initiate a replica set with name {config.get('_id')}, but command "
            f"line reports {model.set_name}; rejecting",
        )
    hosts = [c.get("host") for c in config["members"]]
    if m.name not in hosts:
        raise CommandError(
            93,
            "InvalidReplicaSetConfig",
            f"No host described in new configuration with version 1 for replica set "
            f"{model.set_name} maps to this node",
        )
    known = {x.name: x for x in model.members}
    failed = [h for h in hosts if h not in known or not model.sees(m, known[h])]
    if failed:
        detail = "; ".join(f"{h} failed with Connection refused" for h in failed)
        raise CommandError(
            74,
            "NodeNotFound",
            "replSetInitiate quorum check failed because not all proposed set members "
            f"responded affirmatively: {detail}",
        )
    if len(set(hosts)) != len(hosts):
        raise CommandError(
            103, "NewReplicaSetConfigurationIncompatible", "duplicate host in members"
        )
    settings = config.get("settings") or {}
    if "electionTimeoutMillis" in settings:
        model.election_timeout = float(settings["electionTimeoutMillis"]) / 1000.0
    model.config = {"_id": config["_id"], "version": 1, "members": config["members"]}
    now = time.time()
    for c in config["members"]:
        x = known[c["host"]]
        x.priority = float(c.get("priority", 1))
        x.votes = int(c.get("votes", 1))
        x.state = SECONDARY if x.alive else DOWN
        x.primary_seen_at = now
    for x in model.members:
        if x.name not in hosts:
            x.state = STARTUP
    model.tick(now, handoff=True)
    return {"ok": 1}


def get_config(model: ReplicaSetModel) -> dict[str, Any]:
    if model.config is None:
        raise not_yet_initialized()
    return {"config": _config_doc(model), "ok": 1}


def get_status(model: ReplicaSetModel, m: Member) -> dict[str, Any]:
    if model.config is None:
        raise not_yet_initialized()
    now = time.time()
    rows = []
    for x in model.members:
        if x.state == STARTUP:
            continue
        seen = model.sees(m, x)
        entry = x.oplog[-1] if (seen and x.oplog) else None
        row: dict[str, Any] = {
            "_id": x.index,
            "name": x.name,
            "health": 1.0 if seen else 0.0,
            "state": x.state if seen else DOWN,
            "stateStr": STATE_STR[x.state] if seen else STATE_STR[DOWN],
            "uptime": int(now - x.started_at) if seen else 0,
            "optime": _optime_doc(entry),
            "optimeDate": _date(entry.wall if entry else 0),
            "configVersion": 1,
        }
        if x is m:
            row["self"] = True
        else:
            row["lastHeartbeat"] = _date(now)
        if seen and x.state == PRIMARY:
            row["electionTime"] = _optime_doc(entry)["ts"]
            row["electionDate"] = _date(x.election_time)
        rows.append(row)
    return {
        "set": model.config["_id"],
        "date": _date(now),
        "myState": m.state,
        "term": model.term,
        "heartbeatIntervalMillis": 2000,
        "members": rows,
        "ok": 1,
    }


def freeze(model: ReplicaSetModel, m: Member, seconds: Any) -> dict[str, Any]:
    if model.config is None:
        raise not_yet_initialized()
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
    if model.config is None:
        raise not_yet_initialized()
    seconds = float(cmd.get("replSetStepDown") or 60)
    catch_up = float(cmd.get("secondaryCatchUpPeriodSecs", 10))
    if catch_up >= seconds:
        raise CommandError(
            2, "BadValue", "stepdown period must be longer than secondaryCatchUpPeriodSecs"
        )
    if m.state != PRIMARY:
        raise CommandError(189, "PrimarySteppedDown", "not primary so can't step down")
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
            raise CommandError(189, "PrimarySteppedDown", "not primary so can't step down")
    m.stepdown_until = time.time() + seconds
    model._step_down(m, f"replSetStepDown for {seconds:g}s")
    # mongod hands off to a caught-up secondary at once instead of waiting for a timeout.
    model.tick(time.time(), handoff=True)
    return {"ok": 1}
