"""The database's users and roles: each holds exactly the actions its work needs.

Actions are mongod's names (replSetFreeze and replSetStepDown are both the action
replSetStateChange; replSetReconfig and replSetInitiate are replSetConfigure). Roles and
users live in the admin database, where hubd and hubctl authenticate (authSource=admin).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.mongo import DB_NAME

ROLE_DB = "admin"
HUBD_ROLE = "hubclusterHubd"
OPERATOR_ROLE = "hubclusterOperator"
READER_ROLE = "hubclusterReader"

# hubd: the collector, peer sync and state writes read and write cfreport (the fence is a
# document there); it creates its indexes at start and drops the pre-epoch one once.
HUBD_DATA_ACTIONS = [
    "find",
    "insert",
    "update",
    "remove",
    "createCollection",
    "createIndex",
    "dropIndex",
    "listIndexes",
    "listCollections",
]
# Who is primary, who lags, which member is which hub (hub_directory, status, check).
HUBD_CLUSTER_ACTIONS = ["replSetGetStatus", "replSetGetConfig"]
# freeze/unfreeze/stepdown, and reconfig/initiate (init-replset, member add/remove/replace).
OPERATOR_CLUSTER_ACTIONS = ["replSetStateChange", "replSetConfigure"]
READER_DATA_ACTIONS = ["find"]


def _data(actions: list[str]) -> dict[str, Any]:
    return {"resource": {"db": DB_NAME, "collection": ""}, "actions": list(actions)}


def _cluster(actions: list[str]) -> dict[str, Any]:
    return {"resource": {"cluster": True}, "actions": list(actions)}


# role name -> (privileges, roles it inherits)
ROLES: dict[str, tuple[list[dict[str, Any]], list[dict[str, str]]]] = {
    HUBD_ROLE: ([_data(HUBD_DATA_ACTIONS), _cluster(HUBD_CLUSTER_ACTIONS)], []),
    OPERATOR_ROLE: (
        [_cluster(OPERATOR_CLUSTER_ACTIONS)],
        [{"role": HUBD_ROLE, "db": ROLE_DB}],
    ),
    READER_ROLE: ([_data(READER_DATA_ACTIONS)], []),
}


@dataclass(frozen=True)
class DbUser:
    name: str
    roles: tuple[str, ...]  # in ROLE_DB
    purpose: str


# The user administrator is the first user, made through the localhost exception; it can
# only manage users and roles (mongod's userAdminAnyDatabase), nothing in cfreport.
ADMIN_USER = DbUser("hubcluster-admin", ("userAdminAnyDatabase",), "creates the others")
USERS = (
    DbUser("hubd", (HUBD_ROLE,), "each hub's daemon"),
    DbUser("operator", (OPERATOR_ROLE,), "hubctl for the operator"),
    DbUser("reader", (READER_ROLE,), "queries and the portal"),
)


def role_refs(user: DbUser) -> list[dict[str, str]]:
    return [{"role": role, "db": ROLE_DB} for role in user.roles]


def _actions(role: str) -> str:
    if role not in ROLES:
        return "users and roles only (mongod's built-in role)"
    privileges, inherits = ROLES[role]
    parts = []
    for privilege in privileges:
        resource = privilege["resource"]
        where = "cluster" if resource.get("cluster") else resource["db"]
        parts.append(f"{where}: {', '.join(privilege['actions'])}")
    inherited = "".join(f"`{ref['role']}`'s, plus " for ref in inherits)
    return inherited + "; ".join(parts)


def users_table() -> list[str]:
    """The README's table of users, roles and actions, made from the definitions above (a
    test keeps the README's copy equal to it)."""
    rows = ["| User | Role | Used by | mongod actions |", "|---|---|---|---|"]
    for user in (ADMIN_USER, *USERS):
        for role in user.roles:
            rows.append(f"| `{user.name}` | `{role}` | {user.purpose} | {_actions(role)} |")
    return rows
