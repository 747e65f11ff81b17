"""`hubctl init-replset --create-users DIR`: initiate, then create the roles and users.

Before any user exists only the localhost exception lets anyone in, so the first run
initiates with no credentials, creates the user administrator through the exception, then
the roles and users as that administrator. A later run logs in as the administrator and
updates passwords and roles to match DIR and hub.db_roles. What follows (the event, the
status shown) runs as the operator user.
"""

from __future__ import annotations

from collections.abc import Callable

from pymongo.errors import OperationFailure, PyMongoError

from hub.db_roles import ADMIN_USER
from hub.db_users import (
    AUTHENTICATION_FAILED,
    DbUsersError,
    create_first_user,
    ensure_roles_and_users,
)
from hub.mongo import current_access, use_access
from hub.mongo_access import MongoAccess
from hub.replset import ReplicaSet

OPERATOR_USER = "operator"


def _as(user: str | None, passwords: dict[str, str], tls: MongoAccess | None) -> MongoAccess:
    ca = tls.tls_ca_file if tls else None
    if user is None:
        return MongoAccess(tls_ca_file=ca)
    return MongoAccess(user, passwords[user], tls_ca_file=ca)


def _users_exist(rs: ReplicaSet, member: str) -> bool:
    """Whether the administrator logs in on `member` (current access): with no user yet,
    mongod answers AuthenticationFailed."""
    try:
        rs.member_command(member, "ping")
    except OperationFailure as exc:
        if exc.code == AUTHENTICATION_FAILED:
            return False
        raise
    return True


def initiate_with_users(
    uri: str,
    timeout: float,
    passwords: dict[str, str],
    initiate: Callable[[ReplicaSet, bool], str],
    members: list[str],
    name: str,
) -> tuple[str, list[str]]:
    """Run `initiate(rs, record)` and create the users; leaves the operator's access set.

    Returns the initiate outcome and what changed among roles and users.
    """
    tls = current_access()
    use_access(_as(ADMIN_USER.name, passwords, tls))
    rs = ReplicaSet(uri, timeout)
    try:
        try:
            exist = _users_exist(rs, members[0])
        except PyMongoError as exc:
            raise DbUsersError(f"cannot reach {members[0]}: {exc}") from None
        if exist:
            use_access(_as(OPERATOR_USER, passwords, tls))
            outcome = initiate(rs, True)
        else:
            use_access(_as(None, passwords, tls))
            outcome = initiate(rs, False)
            if not create_first_user(uri, passwords[ADMIN_USER.name], timeout):
                raise DbUsersError(
                    "users exist but none was made by this run: "
                    f"is {ADMIN_USER.name}'s password file the one it was created with?"
                )
    finally:
        rs.close()
    use_access(_as(ADMIN_USER.name, passwords, tls))
    changes = ensure_roles_and_users(uri, passwords, timeout)
    use_access(_as(OPERATOR_USER, passwords, tls))
    if not exist and outcome == "initiated":
        recorder = ReplicaSet(uri, timeout)
        try:
            recorder.event("initiate", f"replica set {name} initiated", members=members)
        finally:
            recorder.close()
    return outcome, changes
