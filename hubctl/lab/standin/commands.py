"""Which code answers each command a member receives."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from hubctl.lab.standin import admin, reconfig, stats
from hubctl.lab.standin.errors import CommandError
from hubctl.lab.standin.storage import READS, WRITES

if TYPE_CHECKING:
    from hubctl.lab.standin.server import MemberServer

VERSION = "7.0.0-standin"
BUILD_INFO = {
    "version": VERSION,
    "versionArray": [7, 0, 0, 0],
    "gitVersion": "standin",
    "bits": 64,
    "maxBsonObjectSize": 16 * 1024 * 1024,
    "ok": 1,
}
# Not code 20: drivers rewrite IllegalOperation into a misleading retryable-writes message.
_NO_TRANSACTIONS = CommandError(
    115,
    "CommandNotSupported",
    "the replica-set stand-in does not support multi-document transactions "
    "(it cannot roll back a write); run them against a real mongod",
)


def dispatch(server: MemberServer, request: Any) -> dict[str, Any]:
    cmd = request.doc
    name = request.command_name.lower()
    db = request.namespace or "admin"
    model = server.model
    if name in ("hello", "ismaster"):
        return admin.awaitable_hello(server, cmd, legacy=(name == "ismaster"))
    if "startTransaction" in cmd or "autocommit" in cmd:
        raise _NO_TRANSACTIONS
    with model.lock:
        m = model.member(server.name)
        if name == "ping":
            return {"ok": 1}
        if name == "buildinfo":
            return dict(BUILD_INFO)
        if name == "serverstatus":
            return stats.server_status(server, VERSION)
        if name in ("committransaction", "aborttransaction"):
            raise _NO_TRANSACTIONS
        if name == "replsetinitiate":
            return reconfig.initiate(model, m, cmd.get("replSetInitiate"))
        if name == "replsetreconfig":
            return reconfig.reconfig(model, m, cmd)
        if name == "replsetgetstatus":
            return admin.get_status(model, m)
        if name == "replsetgetconfig":
            return admin.get_config(model, m)
        if name == "replsetfreeze":
            return admin.freeze(model, m, cmd.get("replSetFreeze"))
        if name == "replsetstepdown":
            return admin.step_down(model, m, cmd)
        if name == "endsessions":
            return {"ok": 1}
        if name == "killcursors":
            return m.store.kill_cursors(cmd)
        if name == "listdatabases":
            return m.store.list_databases()
        secondary_ok = bool(request.slave_ok)
        if db == "local":
            m.store.publish_local(admin.config_doc(model) if admin.in_config(model, m) else None)
        if name == "getmore":
            model.readable(server.name, secondary_ok=True)
            return m.store.get_more(db, cmd)
        if name == "dbstats":
            return stats.db_stats(model.readable(server.name, secondary_ok).store, db, cmd)
        if name == "collstats":
            return stats.coll_stats(model.readable(server.name, secondary_ok).store, db, cmd)
        if name == "aggregate" and stats.is_coll_stats(cmd):
            member = model.readable(server.name, secondary_ok)
            return stats.coll_stats_stage(member.store, db, cmd, member.host)
        if name in READS:
            member = model.readable(server.name, secondary_ok)
            return READS[name](member.store, db, cmd)
        write_concern = cmd.get("writeConcern")
        if name in WRITES:
            op = WRITES[name]
            txn = _retryable(cmd)
            return model.write(server.name, lambda store: op(store, db, cmd), write_concern, txn)
        if name == "dropdatabase":
            return model.write(server.name, lambda store: store.drop_database(db), write_concern)
    raise CommandError(59, "CommandNotFound", f"no such command: '{request.command_name}'")


def _retryable(cmd: dict[str, Any]) -> tuple | None:
    """A retryable write's (session id, txnNumber), which mongod keeps to answer a retry."""
    lsid = cmd.get("lsid")
    if "txnNumber" not in cmd or not isinstance(lsid, dict) or "id" not in lsid:
        return None
    session = lsid["id"]
    return (session.bytes if isinstance(session, uuid.UUID) else bytes(session), cmd["txnNumber"])
