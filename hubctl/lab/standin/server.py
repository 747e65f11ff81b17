"""One stand-in member on the wire: a thread per connection, as mongod serves connections.

mockupdb parses each request and formats each reply; the listening socket and the connection
threads are ours, because mockupdb answers every connection of a server under one lock, so
one request that waits (a write concern, a stepdown, an awaitable `hello`) would silence the
member for everyone, driver monitors included.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import ssl
import struct
import threading
from typing import Any

import bson
from bson import ObjectId
from mockupdb import OP_MSG_FLAGS, OpMsg, mock_server_receive_request

from hubctl.lab.standin.access import AccessControl
from hubctl.lab.standin.admin import awaitable_hello
from hubctl.lab.standin.commands import dispatch
from hubctl.lab.standin.errors import CommandError
from hubctl.lab.standin.model import ReplicaSetModel
from hubctl.lab.standin.server_stats import ServerStats

log = logging.getLogger("hubcluster.standin")

_ACCEPT_POLL = 0.2  # how often the accept loop looks for stop(); stop() also wakes it
_OP_MSG = 2013
_MORE_TO_COME = OP_MSG_FLAGS["moreToCome"]
_EXHAUST_ALLOWED = OP_MSG_FLAGS["exhaustAllowed"]


def op_msg(doc: dict[str, Any], response_to: int, more_to_come: bool = False) -> tuple[int, bytes]:
    """An OP_MSG reply (its request id and bytes); moreToCome streams the next one unasked."""
    body = struct.pack("<IB", _MORE_TO_COME if more_to_come else 0, 0) + bson.encode(doc)
    request_id = random.randint(1, 2**31 - 1)
    return request_id, struct.pack("<iiii", 16 + len(body), request_id, response_to, _OP_MSG) + body


def _streams(request: Any) -> bool:
    """An awaitable hello that allows exhaust: mongod answers it as a stream of replies, and
    the Node.js driver's monitor requires that (it fails a reply without moreToCome)."""
    return (
        isinstance(request, OpMsg)
        and bool(request.flags & _EXHAUST_ALLOWED)
        and request.command_name.lower() in ("hello", "ismaster")
        and "topologyVersion" in request.doc
        and "maxAwaitTimeMS" in request.doc
    )


class MemberServer:
    """Serves one member of `model` on 127.0.0.1:`port`; stop() makes it refuse connections."""

    def __init__(self, model: ReplicaSetModel, name: str, port: int | None) -> None:
        self.model = model
        self.name = name
        self.port = port
        self.stats = ServerStats()
        # topologyVersion.processId: a restarted mongod is a new process to a driver.
        self.process_id = ObjectId()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        # Set by StandinCluster(auth=True): every command then passes access control.
        self.access: AccessControl | None = None
        # Set by StandinCluster(tls=...): every connection must then speak TLS (requireTLS).
        self.tls: ssl.SSLContext | None = None

    def start(self) -> int:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", self.port or 0))
            listener.listen(128)
        except OSError:
            listener.close()
            raise
        listener.settimeout(_ACCEPT_POLL)
        self.port = listener.getsockname()[1]
        self.process_id = ObjectId()
        self._stopping = threading.Event()
        self._listener = listener
        self._accept_thread = threading.Thread(
            target=self._accept_loop, args=(listener, self._stopping), daemon=True
        )
        self._accept_thread.name = f"standin-accept-{self.port}"
        self._accept_thread.start()
        return self.port

    def stop(self) -> None:
        listener = self._listener
        if listener is None:
            return
        self._listener = None
        self._stopping.set()
        # shutdown() wakes a blocked accept() at once on Linux; close() alone may not.
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=2)
        listener.close()
        with self._conns_lock:
            conns = list(self._conns)
            self._conns.clear()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    @property
    def running(self) -> bool:
        return self._listener is not None

    # ----- connections ---------------------------------------------------------------------
    def _accept_loop(self, listener: socket.socket, stopping: threading.Event) -> None:
        while not stopping.is_set():
            try:
                conn, _addr = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was shut down
            conn.settimeout(None)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                # The handshake happens on the first read, in the connection's own thread.
                conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            with self._conns_lock:
                if stopping.is_set():
                    conn.close()
                    return
                self._conns.add(conn)
            self.stats.opened()
            thread = threading.Thread(target=self._serve, args=(conn, stopping), daemon=True)
            thread.name = f"standin-conn-{self.port}"
            thread.start()

    def _serve(self, conn: socket.socket, stopping: threading.Event) -> None:
        try:
            while not stopping.is_set():
                try:
                    request = mock_server_receive_request(conn, None)
                except (OSError, ValueError, NotImplementedError, AssertionError):
                    return  # the client hung up, the member was stopped, or garbage arrived
                reply = self._answer(request)
                if isinstance(request, OpMsg) and request.flags & _MORE_TO_COME:
                    continue  # w:0: applied above, and the client expects no answer
                try:
                    if _streams(request) and reply.get("ok") == 1:
                        self._stream_hello(conn, request, reply, stopping)
                        return
                    request.replies(reply)
                except OSError:
                    return  # the member was killed while answering, as a crashed mongod
        finally:
            with self._conns_lock:
                self._conns.discard(conn)
            conn.close()
            self.stats.closed()

    def _stream_hello(
        self, conn: socket.socket, request: Any, reply: dict[str, Any], stopping: threading.Event
    ) -> None:
        """Send hello replies with moreToCome, each after the next topology change or
        maxAwaitTimeMS, until the client hangs up; the connection carries nothing else."""
        cmd = dict(request.doc)
        response_to = request.request_id
        while not stopping.is_set():
            response_to, data = op_msg(reply, response_to, more_to_come=True)
            conn.sendall(data)
            cmd["topologyVersion"] = reply["topologyVersion"]
            reply = self._answer_hello(cmd, request.command_name.lower() == "ismaster")
            if reply.get("ok") != 1:
                _, data = op_msg(reply, response_to)
                conn.sendall(data)
                return

    def _answer_hello(self, cmd: dict[str, Any], legacy: bool) -> dict[str, Any]:
        try:
            return awaitable_hello(self, cmd, legacy)
        except CommandError as exc:
            return exc.reply()

    def _answer(self, request: Any) -> dict[str, Any]:
        try:
            if not request.is_command:
                raise CommandError(59, "CommandNotFound", "legacy opcodes are not supported")
            self.stats.count(request.command_name, request.doc)
            if self.access is not None:
                return self.access.answer(self, request, dispatch)
            return dispatch(self, request)
        except CommandError as exc:
            return exc.reply()
        except Exception as exc:  # noqa: BLE001 - a bug here must reach the client, not kill the thread
            log.exception("stand-in %s failed on %r", self.name, request)
            return {
                "ok": 0,
                "code": 1,
                "codeName": "InternalError",
                "errmsg": f"stand-in: {exc!r}",
            }
