"""Creating the database's roles and users (hub.db_roles), idempotently.

The first user, the user administrator, can only be made through mongod's localhost
exception: with no user yet, a loopback connection may create one. Everything after is done
logged in as that administrator. Both run against the primary, as the current access
(hub.mongo.use_access) of the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pymongo.errors import OperationFailure, PyMongoError

from hub.db_roles import ADMIN_USER, ROLE_DB, ROLES, USERS, role_refs
from hub.mongo import connect, connect_member
from hub.mongo_access import read_password_file

UNAUTHORIZED = 13
AUTHENTICATION_FAILED = 18


class DbUsersError(RuntimeError):
    """The users could not be created; the message says why in one line."""


def user_names() -> list[str]:
    return [ADMIN_USER.name] + [u.name for u in USERS]


def read_user_passwords(directory: str | Path) -> dict[str, str]:
    """One password file per user in `directory`, named for the user, each mode 0600.

    Raises hub.mongo_access.AccessError naming a file that is missing or too open.
    """
    return {name: read_password_file(Path(directory) / name) for name in user_names()}


def _primary(uri: str, timeout: float) -> str:
    """The primary's address; a driver finds it with hello, which needs no login."""
    with connect(uri, timeout) as client:
        primary = client.admin.command("hello").get("primary")  # also through a direct URI
    if not primary:
        raise DbUsersError("no primary to create the users on")
    return str(primary)


def create_first_user(uri: str, password: str, timeout: float) -> bool:
    """Create the user administrator through the localhost exception; False when users
    exist already (the exception is closed, so mongod refuses with code 13).

    mongod grants the exception only to a connection from loopback, so this goes to the
    primary's port on 127.0.0.1 and must run on the primary's host.
    """
    try:
        primary = _primary(uri, timeout)
        local = f"127.0.0.1:{primary.rsplit(':', 1)[1]}"
        with connect_member(uri, local, timeout) as client:
            hello = client.admin.command("hello")
            if not hello.get("isWritablePrimary") or hello.get("me") != primary:
                raise DbUsersError(
                    f"the first user can only be made on the primary's host (mongod's "
                    f"localhost exception): run this on the host of {primary}"
                )
            client.admin.command(
                "createUser", ADMIN_USER.name, pwd=password, roles=role_refs(ADMIN_USER)
            )
    except OperationFailure as exc:
        if exc.code == UNAUTHORIZED:
            return False
        raise DbUsersError(f"cannot create {ADMIN_USER.name}: {exc}") from None
    except PyMongoError as exc:
        raise DbUsersError(f"cannot create {ADMIN_USER.name}: {exc}") from None
    return True


def ensure_roles_and_users(uri: str, passwords: Mapping[str, str], timeout: float) -> list[str]:
    """Make every role and user of hub.db_roles exist exactly as defined (a changed password
    or role list is updated), logged in as the user administrator. Returns what changed."""
    done: list[str] = []
    try:
        with connect(uri, timeout) as client:
            admin = client[ROLE_DB]
            for role, (privileges, inherits) in ROLES.items():
                exists = admin.command("rolesInfo", role)["roles"]
                verb = "updateRole" if exists else "createRole"
                admin.command(verb, role, privileges=privileges, roles=inherits)
                done.append(f"role {role} {'updated' if exists else 'created'}")
            for user in USERS:
                exists = admin.command("usersInfo", user.name)["users"]
                verb = "updateUser" if exists else "createUser"
                admin.command(verb, user.name, pwd=passwords[user.name], roles=role_refs(user))
                done.append(f"user {user.name} {'updated' if exists else 'created'}")
    except OperationFailure as exc:
        if exc.code == AUTHENTICATION_FAILED:
            raise DbUsersError(
                f"{ADMIN_USER.name} cannot log in: its password file does not match the "
                "database's (mongod says: Authentication failed)"
            ) from None
        raise DbUsersError(f"cannot create roles and users: {exc}") from None
    except PyMongoError as exc:
        raise DbUsersError(f"cannot create roles and users: {exc}") from None
    return done
