"""replSetInitiate and replSetReconfig: mongod's validation, codes and messages.

The stand-in can only hold members it serves, so a host it does not serve fails the quorum
check as an unreachable mongod would. Arbiters and delayed members are refused: the model
has neither.
"""

from __future__ import annotations

import random
import time
from typing import Any

from bson import ObjectId

from hubctl.lab.standin.admin import in_config, not_in_set
from hubctl.lab.standin.errors import CommandError
from hubctl.lab.standin.model import DOWN, PRIMARY, REMOVED, SECONDARY, Member, ReplicaSetModel

MAX_VOTING = 7
_LOCALHOST = ("localhost", "127.0.0.1", "[::1]", "::1")
MAX_MEMBERS = 50


def _invalid(errmsg: str) -> CommandError:
    return CommandError(93, "InvalidReplicaSetConfig", errmsg)


def _incompatible(errmsg: str) -> CommandError:
    return CommandError(103, "NewReplicaSetConfigurationIncompatible", errmsg)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _validate_member(i: int, c: Any) -> dict[str, Any]:
    if not isinstance(c, dict):
        raise CommandError(14, "TypeMismatch", f"members.{i} must be a document")
    if not isinstance(c.get("_id"), int) or isinstance(c.get("_id"), bool):
        raise _invalid(f"members.{i}._id must be an integer, got {c.get('_id')!r}")
    if not isinstance(c.get("host"), str) or ":" not in c["host"]:
        raise _invalid(f"members.{i}.host must be a HOST:PORT string, got {c.get('host')!r}")
    votes = c.get("votes", 1)
    priority = c.get("priority", 1)
    if not _number(votes) or votes not in (0, 1):
        raise _invalid(f"members.{i}.votes field value is {votes} but must be 0 or 1")
    if not _number(priority) or not 0 <= priority <= 1000:
        raise _invalid(f"members.{i}.priority field value of {priority} is out of range")
    if votes == 0 and priority != 0:
        raise _invalid(f"members.{i}: priority must be 0 when non-voting (votes:0)")
    if c.get("hidden") and priority != 0:
        raise _invalid(f"members.{i}: priority must be 0 when hidden=true")
    if c.get("arbiterOnly"):
        raise _invalid(f"members.{i}: the stand-in does not run arbiters")
    if c.get("secondaryDelaySecs") or c.get("slaveDelay"):
        raise _invalid(f"members.{i}: the stand-in does not run delayed members")
    tags = c.get("tags") or {}
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise _invalid(f"members.{i}.tags must map names to strings, got {tags!r}")
    return {
        "_id": c["_id"],
        "host": c["host"],
        "priority": priority,
        "votes": int(votes),
        "hidden": bool(c.get("hidden", False)),
        "tags": dict(tags),
    }


def _validate(model: ReplicaSetModel, config: Any) -> list[dict[str, Any]]:
    if not isinstance(config, dict) or not isinstance(config.get("members"), list):
        raise _invalid("the config document needs a members array")
    members = [_validate_member(i, c) for i, c in enumerate(config["members"])]
    for field in ("_id", "host"):
        seen: dict[Any, int] = {}
        for i, c in enumerate(members):
            if c[field] in seen:
                raise _invalid(
                    f"Found two member configurations with same {field} field, "
                    f"members.{seen[c[field]]}.{field} == members.{i}.{field} == {c[field]}"
                )
            seen[c[field]] = i
    local = sum(1 for c in members if c["host"].rsplit(":", 1)[0] in _LOCALHOST)
    if local not in (0, len(members)):
        raise CommandError(
            2,
            "BadValue",
            "Either all host names in a replica set configuration must be localhost "
            f"references, or none must be; found {local} out of {len(members)}",
        )
    voting = sum(c["votes"] for c in members)
    if not members or len(members) > MAX_MEMBERS or not 1 <= voting <= MAX_VOTING:
        raise _invalid(
            f"Replica set configuration contains {voting} voting members, but must be at "
            f"least 1 and no more than {MAX_VOTING}"
        )
    return members


def _resolve(model: ReplicaSetModel, members: list[dict[str, Any]]) -> dict[str, Member | None]:
    found: dict[str, Member | None] = {}
    for c in members:
        try:
            found[c["host"]] = model.member(c["host"])
        except KeyError:
            found[c["host"]] = None
    return found


def _self_in(m: Member, found: dict[str, Member | None], version: int, set_name: str) -> None:
    if m not in found.values():
        raise CommandError(
            74,
            "NodeNotFound",
            f"No host described in new configuration with version {version} for replica set "
            f"{set_name} maps to this node",
        )


def _apply(model: ReplicaSetModel, members: list[dict[str, Any]], now: float) -> None:
    by_member = {model.member(c["host"]): c for c in members}
    for x in model.members:
        c = by_member.get(x)
        if c is None:
            if x.in_config:
                x.in_config, x.votes, x.priority = False, 0, 0.0
                x.state = REMOVED if x.alive else DOWN
            continue
        x.host, x.votes, x.priority, x.tags = c["host"], c["votes"], float(c["priority"]), c["tags"]
        if not x.in_config:
            x.in_config = True
            x.state = SECONDARY if x.alive else DOWN
            x.primary_seen_at = now


def initiate(model: ReplicaSetModel, m: Member, config: Any) -> dict[str, Any]:
    if model.config is not None:
        raise CommandError(23, "AlreadyInitialized", "already initialized")
    if not isinstance(config, dict) or not config:
        # rs.initiate() with no config (mongod takes any non-document so): a one-member set
        # of this member, as mongod builds it.
        config = {"_id": model.set_name, "members": [{"_id": 0, "host": m.name}]}
    if isinstance(config, dict) and config.get("_id") != model.set_name:
        raise _invalid(
            f"Attempting to initiate a replica set with name {config.get('_id')}, but command "
            f"line reports {model.set_name}; rejecting"
        )
    members = _validate(model, config)
    found = _resolve(model, members)
    _self_in(m, found, 1, model.set_name)
    failed = [h for h, x in found.items() if x is None or not model.sees(m, x)]
    if failed:
        detail = "; ".join(f"{h} failed with Connection refused" for h in failed)
        raise CommandError(
            74,
            "NodeNotFound",
            "replSetInitiate quorum check failed because not all proposed set members "
            f"responded affirmatively: {detail}",
        )
    settings = dict(config.get("settings") or {})
    if "electionTimeoutMillis" in settings:
        model.election_timeout = float(settings["electionTimeoutMillis"]) / 1000.0
    settings.pop("replicaSetId", None)
    model.config = {
        "_id": config["_id"],
        "version": 1,
        "members": members,
        "settings": settings,
        "replicaSetId": ObjectId(),
    }
    now = time.time()
    _apply(model, members, now)
    model.tick(now, handoff=True)
    return {"ok": 1}


def reconfig(model: ReplicaSetModel, m: Member, cmd: dict[str, Any]) -> dict[str, Any]:
    if not in_config(model, m):
        raise not_in_set(model)
    old = model.config
    assert old is not None
    new, force = cmd.get("replSetReconfig"), bool(cmd.get("force"))
    if not force and m.state != PRIMARY:
        raise CommandError(
            10107,
            "NotWritablePrimary",
            "replSetReconfig should only be run on a writable PRIMARY. Current state "
            f"{'SECONDARY' if m.state == SECONDARY else m.state};",
        )
    if not isinstance(new, dict):
        raise CommandError(14, "TypeMismatch", "replSetReconfig takes a config document")
    if new.get("_id") != old["_id"]:
        raise _incompatible(
            "New and old configurations differ in replica set name; old was "
            f"{old['_id']}, and new is {new.get('_id')}"
        )
    settings = dict(new.get("settings") or {})
    if settings.get("replicaSetId", old["replicaSetId"]) != old["replicaSetId"]:
        raise _incompatible("New and old configurations differ in replica set ID")
    version = new.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _invalid(f"version field must be an integer, got {version!r}")
    if force:
        version = old["version"] + random.randint(10_000, 100_000)
    elif version <= old["version"]:
        raise _incompatible(
            f"New replica set configuration version must be greater than old, but {version} "
            f"is not greater than {old['version']} for replica set {old['_id']}"
        )
    members = _validate(model, new)
    found = _resolve(model, members)
    _self_in(m, found, version, old["_id"])
    if not force:
        _check_compatible(model, old, members, found, m)
    if "electionTimeoutMillis" in settings:
        model.election_timeout = float(settings["electionTimeoutMillis"]) / 1000.0
    settings.pop("replicaSetId", None)
    model.config = {**old, "version": version, "members": members, "settings": settings}
    now = time.time()
    _apply(model, members, now)
    if m.state == PRIMARY and m.priority == 0:
        model._step_down(m, "new config makes it unelectable")
    model._event(f"reconfigured to version {version}")
    model.tick(now, handoff=m.state != PRIMARY)
    return {"ok": 1}


def _check_compatible(
    model: ReplicaSetModel,
    old: dict[str, Any],
    members: list[dict[str, Any]],
    found: dict[str, Member | None],
    m: Member,
) -> None:
    old_ids = {model.member(c["host"]): c["_id"] for c in old["members"]}
    for c in members:
        x = found[c["host"]]
        if x is not None and x in old_ids and old_ids[x] != c["_id"]:
            raise _incompatible(
                f"New and old configurations both have members with host of {c['host']} but "
                f"in the new configuration the _id field is {c['_id']} and in the old "
                f"configuration it is {old_ids[x]} for replica set {old['_id']}"
            )
    old_voters = {model.member(c["host"]) for c in old["members"] if c.get("votes", 1)}
    new_voters = {found[c["host"]] for c in members if c["votes"]}
    if len(old_voters ^ new_voters) > 1:
        raise _incompatible(
            "Non force replica set reconfig can only add or remove at most 1 voting member."
        )
    unknown = [h for h, x in found.items() if x is None]
    if unknown:
        detail = "; ".join(f"{h} failed with Connection refused" for h in unknown)
        raise CommandError(
            74,
            "NodeNotFound",
            "Quorum check failed because not all proposed set members responded "
            f"affirmatively: {detail}",
        )
    responded = [x for x in new_voters if x is not None and model.sees(m, x)]
    need = len(new_voters) // 2 + 1
    if len(responded) < need:
        names = ", ".join(sorted(x.host for x in responded))
        missing = ", ".join(
            sorted(x.host for x in new_voters if x is not None and x not in responded)
        )
        raise CommandError(
            74,
            "NodeNotFound",
            f"Quorum check failed because not enough voting nodes responded; required {need} "
            f"but only the following {len(responded)} voting nodes responded: {names}; the "
            f"following nodes did not respond affirmatively: {missing} failed with "
            "Connection refused",
        )
