"""A control API over HTTP on loopback, so another shell can break and mend the lab.

Served for the stand-in (members) and for the whole lab (hubs): anything with kill, revive,
isolate, heal and status methods, plus an optional `down` that stops it.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

ACTIONS = ("kill", "revive", "isolate", "heal", "replace")
# Replacing a hub waits for its successor to catch up (the whole lab only).
SLOW_ACTIONS = {"replace": 180.0}


class Controllable(Protocol):
    def kill(self, name: str) -> str: ...
    def revive(self, name: str) -> str: ...
    def isolate(self, name: str) -> str: ...
    def heal(self, name: str) -> str: ...
    def status(self) -> dict[str, Any]: ...


class ControlError(RuntimeError):
    """The control server refused or could not be reached."""


def serve_control(cluster: Controllable, port: int = 0, on_down: Any = None) -> ThreadingHTTPServer:
    """Serve `cluster`'s kill/revive/isolate/heal/status on 127.0.0.1:`port` in a thread."""

    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, doc: dict[str, Any]) -> None:
            body = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            if self.path.rstrip("/") == "/status":
                self._send(200, cluster.status())
            else:
                self._send(404, {"error": f"unknown path {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path.strip("/") == "down" and on_down is not None:
                self._send(200, {"action": "down"})
                on_down()
                return
            parts = self.path.strip("/").split("/", 1)
            if len(parts) != 2 or parts[0] not in ACTIONS:
                self._send(404, {"error": f"use POST /{{{','.join(ACTIONS)}}}/MEMBER"})
                return
            action, member = parts
            if not hasattr(cluster, action):
                self._send(404, {"error": f"this lab cannot {action}"})
                return
            try:
                name = getattr(cluster, action)(member)
            except KeyError as exc:
                self._send(404, {"error": exc.args[0]})
                return
            except RuntimeError as exc:
                self._send(409, {"error": str(exc)})
                return
            self._send(200, {"member": name, "action": action, "status": cluster.status()})

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    # shutdown() waits for the loop's next poll; a short poll lets SIGTERM stop the lab at once.
    threading.Thread(
        target=server.serve_forever, args=(0.05,), name="standin-control", daemon=True
    ).start()
    return server


def control_request(address: str, action: str, member: str | None = None) -> dict[str, Any]:
    """Ask the control server at `address` (host:port) to act; returns its JSON answer."""
    if action == "status":
        request = urllib.request.Request(f"http://{address}/status")
    elif action == "down":
        request = urllib.request.Request(f"http://{address}/down", method="POST")
    elif action in ACTIONS and member:
        request = urllib.request.Request(f"http://{address}/{action}/{member}", method="POST")
    else:
        raise ControlError(
            f"unknown action {action!r} (use {', '.join(ACTIONS)} MEMBER, or status)"
        )
    try:
        with urllib.request.urlopen(request, timeout=SLOW_ACTIONS.get(action, 10)) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = json.loads(exc.read() or b"{}").get("error", exc.reason)
        raise ControlError(f"{action} {member}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ControlError(f"cannot reach the stand-in control at {address}: {exc}") from None
