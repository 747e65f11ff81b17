"""Which privileges each command needs, and which a role grants: mongod's action names.

A privilege is a resource and an action: ("db", DB, COLL) where "" means any, or
("cluster", "", ""). Only the commands the stand-in serves are listed.
"""

from __future__ import annotations

from typing import Any

Need = tuple[str, str, str, str]  # kind, db, collection, action

# Commands mongod runs for anyone, logged in or not (the handshake and the login itself).
NO_AUTH = frozenset(
    {
        "hello",
        "ismaster",
        "ping",
        "buildinfo",
        "saslstart",
        "saslcontinue",
        "logout",
        "endsessions",
        "connectionstatus",
    }
)
# Commands any logged-in user may run: they act on that user's own cursors.
ANY_USER = frozenset({"getmore", "killcursors", "listdatabases"})

_COLLECTION_ACTIONS = {
    "find": ("find",),
    "count": ("find",),
    "distinct": ("find",),
    "aggregate": ("find",),
    "listindexes": ("listIndexes",),
    "collstats": ("collStats",),
    "insert": ("insert",),
    "delete": ("remove",),
    "createindexes": ("createIndex",),
    "dropindexes": ("dropIndex",),
    "drop": ("dropCollection",),
    "create": ("createCollection",),
}
_DATABASE_ACTIONS = {
    "listcollections": ("listCollections",),
    "dbstats": ("dbStats",),
    "dropdatabase": ("dropDatabase",),
    "createuser": ("createUser", "grantRole"),
    "createrole": ("createRole", "grantRole"),
    "updateuser": ("changePassword", "grantRole", "revokeRole"),
    "updaterole": ("grantRole", "revokeRole"),
    "usersinfo": ("viewUser",),
    "rolesinfo": ("viewRole",),
    "dropuser": ("dropUser",),
}
CLUSTER_ACTIONS = {
    "replsetgetstatus": "replSetGetStatus",
    "replsetgetconfig": "replSetGetConfig",
    "serverstatus": "serverStatus",
    "replsetfreeze": "replSetStateChange",
    "replsetstepdown": "replSetStateChange",
    "replsetreconfig": "replSetConfigure",
    "replsetinitiate": "replSetConfigure",
}

_READ = ["find", "listCollections", "listIndexes", "collStats", "dbStats"]
_READ_WRITE = _READ + [
    "insert",
    "update",
    "remove",
    "createIndex",
    "dropIndex",
    "createCollection",
    "dropCollection",
]
_USER_ADMIN = [
    "createUser",
    "createRole",
    "dropUser",
    "dropRole",
    "grantRole",
    "revokeRole",
    "viewUser",
    "viewRole",
    "changePassword",
]


def builtin_role(name: str, db: str) -> list[dict[str, Any]] | None:
    """The privileges of mongod's built-in role `name`@`db`; None if not one the stand-in
    knows. Only admin's roles reach every database, as in mongod."""
    any_db = "" if db == "admin" else db
    roles = {
        "read": [{"resource": {"db": db, "collection": ""}, "actions": _READ}],
        "readWrite": [{"resource": {"db": db, "collection": ""}, "actions": _READ_WRITE}],
        "userAdmin": [{"resource": {"db": db, "collection": ""}, "actions": _USER_ADMIN}],
    }
    if db == "admin":
        roles["userAdminAnyDatabase"] = [
            {"resource": {"db": any_db, "collection": ""}, "actions": _USER_ADMIN}
        ]
        roles["clusterMonitor"] = [
            {
                "resource": {"cluster": True},
                "actions": ["replSetGetStatus", "replSetGetConfig", "serverStatus"],
            }
        ]
        roles["root"] = [{"resource": {"anyResource": True}, "actions": ["anyAction"]}]
    return roles.get(name)


def needs(name: str, db: str, cmd: dict[str, Any]) -> list[Need]:
    """The privileges command `name` (lower case) on `db` needs; [] for none beyond login."""
    if name in CLUSTER_ACTIONS:
        return [("cluster", "", "", CLUSTER_ACTIONS[name])]
    coll = cmd.get(next(iter(cmd))) if cmd else None
    coll = coll if isinstance(coll, str) else ""
    if name in _COLLECTION_ACTIONS:
        return [("db", db, coll, a) for a in _COLLECTION_ACTIONS[name]]
    if name == "update":
        upsert = any(u.get("upsert") for u in cmd.get("updates", []) if isinstance(u, dict))
        return [("db", db, coll, "update")] + ([("db", db, coll, "insert")] if upsert else [])
    if name == "findandmodify":
        actions = ["find", "remove"] if cmd.get("remove") else ["find", "update"]
        actions += ["insert"] if cmd.get("upsert") else []
        return [("db", db, coll, a) for a in actions]
    if name in _DATABASE_ACTIONS:
        return [("db", db, "", a) for a in _DATABASE_ACTIONS[name]]
    return []


def grants(privilege: dict[str, Any], need: Need) -> bool:
    kind, db, coll, action = need
    actions = privilege.get("actions", [])
    if action not in actions and "anyAction" not in actions:
        return False
    resource = privilege.get("resource", {})
    if resource.get("anyResource"):
        return True
    if kind == "cluster":
        return bool(resource.get("cluster"))
    if resource.get("cluster") or "db" not in resource:
        return False
    return resource["db"] in ("", db) and resource.get("collection", "") in ("", coll)
