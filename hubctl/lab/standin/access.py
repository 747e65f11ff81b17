"""Access control for the stand-in: users, roles, SCRAM logins and mongod's refusals.

Users and roles belong to the cluster (one AccessControl shared by every member), as the
replicated admin.system.users/roles are to mongod; changing them needs the primary.
Each connection is served by its own thread (server.py), so a connection's logins live in
a thread-local.

The localhost exception: while no user and no role exists, a connection from loopback
(every stand-in connection: members listen on 127.0.0.1 only) may create the first user or
role in admin. The stand-in also lets it run replSetInitiate and replSetGetConfig, which
the documented bootstrap (initiate, then create the first user) needs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bson import Binary

from hubctl.lab.standin.errors import CommandError, not_primary
from hubctl.lab.standin.privileges import ANY_USER, NO_AUTH, builtin_role, grants, needs
from hubctl.lab.standin.scram import (
    MECHANISM,
    ScramConversation,
    ScramCredential,
    ScramFailed,
    make_credential,
)

if TYPE_CHECKING:
    from hubctl.lab.standin.server import MemberServer

Dispatch = Callable[["MemberServer", Any], dict[str, Any]]
_LOCALHOST_EXCEPTION = frozenset(
    {"createuser", "createrole", "replsetinitiate", "replsetgetconfig"}
)
_USER_ADMIN = frozenset(
    {"saslstart", "saslcontinue", "logout", "connectionstatus"}
    | {"createuser", "createrole", "updateuser", "updaterole", "usersinfo", "rolesinfo"}
    | {"dropuser"}
)


def _auth_failed() -> CommandError:
    return CommandError(18, "AuthenticationFailed", "Authentication failed.")


def _unauthorized(errmsg: str) -> CommandError:
    return CommandError(13, "Unauthorized", errmsg)


class _Connection(threading.local):
    def __init__(self) -> None:
        self.users: set[tuple[str, str]] = set()  # (db, user) logged in on this connection
        self.conversation: ScramConversation | None = None
        self.conversation_db = ""


class AccessControl:
    """Users and roles of one stand-in cluster, and the check of every command."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users: dict[tuple[str, str], dict[str, Any]] = {}
        self.roles: dict[tuple[str, str], dict[str, Any]] = {}
        self._conn = _Connection()

    # ----- the hook: every command a member receives passes here -------------------------
    def answer(self, server: MemberServer, request: Any, dispatch: Dispatch) -> dict[str, Any]:
        name = request.command_name.lower()
        db = request.namespace or "admin"
        cmd = dict(request.doc)
        if name in _USER_ADMIN:
            if name not in NO_AUTH:
                self._check(name, db, cmd)
            return self._user_admin(server, name, db, cmd)
        if name not in NO_AUTH:
            self._check(name, db, cmd)
        reply = dispatch(server, request)
        if name in ("hello", "ismaster") and reply.get("ok") == 1:
            self._handshake(cmd, reply)
        return reply

    def _handshake(self, cmd: dict[str, Any], reply: dict[str, Any]) -> None:
        """What a connection's first hello may carry: drivers without a configured mechanism
        pick one from saslSupportedMechs, and every current driver starts its login inside
        the hello (speculativeAuthenticate), finishing with saslContinue."""
        if isinstance(cmd.get("saslSupportedMechs"), str):
            user_db, _, user = cmd["saslSupportedMechs"].partition(".")
            with self.lock:
                if (user_db, user) in self.users:
                    reply["saslSupportedMechs"] = [MECHANISM]
        start = cmd.get("speculativeAuthenticate")
        if isinstance(start, dict) and start.get("saslStart"):
            try:
                first = self._sasl_start(str(start.get("db", "admin")), start)
            except CommandError:
                return  # as mongod: no speculative answer, the driver runs saslStart itself
            first.pop("ok")
            reply["speculativeAuthenticate"] = first

    def _check(self, name: str, db: str, cmd: dict[str, Any]) -> None:
        users = self._conn.users
        if not users:
            if self.localhost_exception() and name in _LOCALHOST_EXCEPTION:
                if name in ("createuser", "createrole") and db != "admin":
                    raise _unauthorized(f"not authorized on {db} to execute command {name}")
                return
            raise _unauthorized(f"Command {next(iter(cmd), name)} requires authentication")
        if name in ANY_USER:
            return
        privileges = [p for user in users for p in self._privileges_of(user)]
        for need in needs(name, db, cmd):
            if not any(grants(p, need) for p in privileges):
                target = f"{db}.{need[2]}" if need[2] else db
                raise _unauthorized(
                    f"not authorized on {db} to execute command "
                    f"{{ {next(iter(cmd))}: {target!r} }} (needs action {need[3]})"
                )

    def localhost_exception(self) -> bool:
        with self.lock:
            return not self.users and not self.roles

    def _privileges_of(self, user: tuple[str, str]) -> list[dict[str, Any]]:
        with self.lock:
            doc = self.users.get(user)
            if doc is None:
                return []
            return self._expand(doc["roles"], set())

    def _expand(self, roles: list[dict[str, str]], seen: set[tuple[str, str]]) -> list[dict]:
        privileges: list[dict[str, Any]] = []
        for ref in roles:
            key = (ref["db"], ref["role"])
            if key in seen:
                continue
            seen.add(key)
            builtin = builtin_role(ref["role"], ref["db"])
            if builtin is not None:
                privileges.extend(builtin)
            elif key in self.roles:
                role = self.roles[key]
                privileges.extend(role["privileges"])
                privileges.extend(self._expand(role["roles"], seen))
        return privileges

    # ----- login and user administration -------------------------------------------------
    def _user_admin(
        self, server: MemberServer, name: str, db: str, cmd: dict[str, Any]
    ) -> dict[str, Any]:
        if name == "saslstart":
            return self._sasl_start(db, cmd)
        if name == "saslcontinue":
            return self._sasl_continue(cmd)
        if name == "logout":
            self._conn.users = {u for u in self._conn.users if u[0] != db}
            return {"ok": 1}
        if name == "connectionstatus":
            users = [{"user": u, "db": d} for d, u in sorted(self._conn.users)]
            return {"authInfo": {"authenticatedUsers": users}, "ok": 1}
        if name == "usersinfo":
            return self._users_info(db, cmd)
        if name == "rolesinfo":
            return self._roles_info(db, cmd)
        with server.model.lock:
            if server.model.member(server.name).state != 1:
                raise not_primary()
        with self.lock:
            if name == "createuser":
                return self._create_user(db, cmd)
            if name == "updateuser":
                return self._update_user(db, cmd)
            if name == "dropuser":
                if self.users.pop((db, cmd["dropUser"]), None) is None:
                    raise CommandError(
                        11, "UserNotFound", f"User '{cmd['dropUser']}@{db}' not found"
                    )
                return {"ok": 1}
            if name == "createrole":
                return self._create_role(db, cmd)
            return self._update_role(db, cmd)

    def _sasl_start(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        if cmd.get("mechanism") != MECHANISM:
            raise CommandError(
                2,
                "BadValue",
                f"Unsupported mechanism {cmd.get('mechanism')!r}; the stand-in speaks {MECHANISM}",
            )
        conversation = ScramConversation(lambda user: self._credential(db, user))
        try:
            server_first = conversation.first(bytes(cmd.get("payload", b"")))
        except ScramFailed:
            raise _auth_failed() from None
        self._conn.conversation = conversation
        self._conn.conversation_db = db
        return {"conversationId": 1, "done": False, "payload": Binary(server_first), "ok": 1}

    def _sasl_continue(self, cmd: dict[str, Any]) -> dict[str, Any]:
        conversation, self._conn.conversation = self._conn.conversation, None
        if conversation is None:
            raise CommandError(17, "ProtocolError", "No SASL session state found")
        try:
            server_final = conversation.final(bytes(cmd.get("payload", b"")))
        except ScramFailed:
            raise _auth_failed() from None
        self._conn.users.add((self._conn.conversation_db, conversation.username))
        # skipEmptyExchange (every current driver asks for it) ends the exchange here.
        return {"conversationId": 1, "done": True, "payload": Binary(server_final), "ok": 1}

    def _credential(self, db: str, user: str) -> ScramCredential | None:
        with self.lock:
            doc = self.users.get((db, user))
            return None if doc is None else doc["credential"]

    def _role_refs(self, db: str, roles: Any) -> list[dict[str, str]]:
        refs = []
        for role in roles or []:
            ref = {"role": role, "db": db} if isinstance(role, str) else dict(role)
            key = (ref.get("db", db), ref.get("role", ""))
            if builtin_role(key[1], key[0]) is None and key not in self.roles:
                raise CommandError(31, "RoleNotFound", f"Could not find role: {key[1]}@{key[0]}")
            refs.append({"role": key[1], "db": key[0]})
        return refs

    def _create_user(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        user = cmd["createUser"]
        if (db, user) in self.users:
            raise CommandError(51003, "Location51003", f'User "{user}@{db}" already exists')
        if not isinstance(cmd.get("pwd"), str) or not cmd["pwd"]:
            raise CommandError(2, "BadValue", "Must provide a 'pwd' field for all user documents")
        self.users[(db, user)] = {
            "user": user,
            "db": db,
            "credential": make_credential(cmd["pwd"]),
            "roles": self._role_refs(db, cmd.get("roles")),
        }
        return {"ok": 1}

    def _update_user(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        doc = self.users.get((db, cmd["updateUser"]))
        if doc is None:
            raise CommandError(11, "UserNotFound", f"User '{cmd['updateUser']}@{db}' not found")
        if "roles" in cmd:
            doc["roles"] = self._role_refs(db, cmd["roles"])
        if "pwd" in cmd:
            doc["credential"] = make_credential(cmd["pwd"])
        return {"ok": 1}

    def _create_role(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        role = cmd["createRole"]
        if (db, role) in self.roles or builtin_role(role, db) is not None:
            raise CommandError(51002, "Location51002", f'Role "{role}@{db}" already exists')
        self.roles[(db, role)] = {
            "privileges": [dict(p) for p in cmd.get("privileges", [])],
            "roles": self._role_refs(db, cmd.get("roles")),
        }
        return {"ok": 1}

    def _update_role(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        role = self.roles.get((db, cmd["updateRole"]))
        if role is None:
            raise CommandError(31, "RoleNotFound", f"Role '{cmd['updateRole']}@{db}' not found")
        if "privileges" in cmd:
            role["privileges"] = [dict(p) for p in cmd["privileges"]]
        if "roles" in cmd:
            role["roles"] = self._role_refs(db, cmd["roles"])
        return {"ok": 1}

    def _users_info(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        wanted = cmd["usersInfo"]
        with self.lock:
            docs = [
                {
                    "_id": f"{d}.{u}",
                    "user": u,
                    "db": d,
                    "roles": list(doc["roles"]),
                    "mechanisms": [MECHANISM],
                }
                for (d, u), doc in sorted(self.users.items())
                if d == db and (wanted == 1 or wanted in (u, {"user": u, "db": d}))
            ]
        return {"users": docs, "ok": 1}

    def _roles_info(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        wanted = cmd["rolesInfo"]
        with self.lock:
            docs = [
                {
                    "_id": f"{d}.{r}",
                    "role": r,
                    "db": d,
                    "isBuiltin": False,
                    "roles": list(doc["roles"]),
                    "privileges": list(doc["privileges"]),
                }
                for (d, r), doc in sorted(self.roles.items())
                if d == db and (wanted == 1 or wanted in (r, {"role": r, "db": d}))
            ]
        return {"roles": docs, "ok": 1}
