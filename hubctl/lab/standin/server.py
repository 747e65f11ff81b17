"""One stand-in member on the wire: mockupdb receives each request, this answers it."""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import Any

from mockupdb import OP_MSG_FLAGS, MockupDB, OpMsg

from hubctl.lab.standin import admin
from hubctl.lab.standin.errors import CommandError
from hubctl.lab.standin.model import ReplicaSetModel
from hubctl.lab.standin.storage import READS, WRITES

log = logging.getLogger("hubcluster.standin")

BUILD_INFO = {
    "version": "7.0.0-standin",
    "versionArray": [7, 0, 0, 0],
    "gitVersion": "standin",
    "bits": 64,
    "maxBsonObjectSize": 16 * 1024 * 1024,
    "ok": 1,
}
# Fields that ride along on every command and mean nothing to the stand-in's storage.
_ENVELOPE = (
    "lsid",
    "txnNumber",
    "$clusterTime",
    "$db",
    "$readPreference",
    "readConcern",
    "writeConcern",
    "apiVersion",
    "apiStrict",
    "comment",
    "maxTimeMS",
)


class MemberServer:
    """Serves one member of `model` on 127.0.0.1:`port`; stop() makes it refuse connections."""

    def __init__(self, model: ReplicaSetModel, name: str, port: int | None) -> None:
        self.model = model
        self.name = name
        self.port = port
        self._server: MockupDB | None = None

    def start(self) -> int:
        server = MockupDB(port=self.port, request_timeout=int(1e6))
        server.autoresponds(self._handle)
        self.port = server.run()
        self._server = server
        return self.port

    def stop(self) -> None:
        if self._server is None:
            return
        # mockupdb's accept loop only notices a stop on its next 1 s select() timeout; flag it
        # and poke the port so a killed member goes dark at once.
        self._server._stopped = True
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        self._server.stop()
        self._server = None

    @property
    def running(self) -> bool:
        return self._server is not None

    # mockupdb calls this for every request; returning True means "answered".
    def _handle(self, request: Any) -> bool:
        if isinstance(request, OpMsg) and request.flags & OP_MSG_FLAGS["moreToCome"]:
            return True  # an unacknowledged write: the stand-in has no way to answer it
        try:
            reply = self._dispatch(request)
        except CommandError as exc:
            reply = exc.reply()
        except Exception as exc:  # noqa: BLE001 - a bug here must reach the client, not kill the thread
            log.exception("stand-in %s failed on %r", self.name, request)
            reply = {
                "ok": 0,
                "code": 1,
                "codeName": "InternalError",
                "errmsg": f"stand-in: {exc!r}",
            }
        try:
            request.replies(reply)
        except OSError:
            pass  # the member was killed while answering, as a crashed mongod would
        return True

    def _dispatch(self, request: Any) -> dict[str, Any]:
        if not request.is_command:
            raise CommandError(59, "CommandNotFound", "legacy opcodes are not supported")
        cmd = request.doc
        name = request.command_name.lower()
        db = request.namespace or "admin"
        model = self.model
        with model.lock:
            m = model.member(self.name)
            if name in ("hello", "ismaster"):
                return admin.hello(model, m, legacy=(name == "ismaster"))
            if name == "ping":
                return {"ok": 1}
            if name == "buildinfo":
                return dict(BUILD_INFO)
            if name == "replsetinitiate":
                return admin.initiate(model, m, cmd.get("replSetInitiate"))
            if name == "replsetgetstatus":
                return admin.get_status(model, m)
            if name == "replsetgetconfig":
                return admin.get_config(model)
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
            if name == "getmore":
                model.readable(self.name, secondary_ok=True)
                return m.store.get_more(db, cmd)
            if name in READS:
                member = model.readable(self.name, secondary_ok)
                return READS[name](member.store, db, cmd)
            write_concern = cmd.get("writeConcern")
            if name in WRITES:
                op = WRITES[name]
                return model.write(self.name, lambda store: op(store, db, cmd), write_concern)
            if name == "dropdatabase":
                return model.write(self.name, lambda store: store.drop_database(db), write_concern)
        raise CommandError(59, "CommandNotFound", f"no such command: '{request.command_name}'")
