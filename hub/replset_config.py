"""The replica set's config as member changes read and send it: one replSetReconfig each.

mongod takes a new config only on the primary and only with the version one past the
current one; the term is mongod's own to set.
"""

from __future__ import annotations

from typing import Any

from pymongo.errors import PyMongoError

from hub.replset import ReplicaSet
from hub.topology import ReplsetError, Topology, explain_failure


def primary_of(topo: Topology) -> str:
    if topo.primary is None:
        raise ReplsetError("there is no primary: the set cannot be reconfigured now")
    return topo.primary


def read_config(rs: ReplicaSet, primary: str) -> dict[str, Any]:
    try:
        return rs.member_command(primary, "replSetGetConfig")["config"]
    except PyMongoError as exc:
        raise explain_failure(exc, f"replSetGetConfig on {primary}") from None


def send_config(
    rs: ReplicaSet, primary: str, config: dict[str, Any], members: list[dict[str, Any]], what: str
) -> None:
    """`config` with `members` and the version bumped, to the primary; ReplsetError saying
    `what` failed and mongod's reason."""
    new = {**config, "members": members, "version": int(config["version"]) + 1}
    new.pop("term", None)
    try:
        rs.member_command(primary, "replSetReconfig", new)
    except PyMongoError as exc:
        raise explain_failure(exc, what) from None
