"""Loopback ports for the lab: pick a free one, wait for a server to listen on one."""

from __future__ import annotations

import socket
import time
from collections import deque

# The kernel may offer a port again as soon as its probe socket is closed: among the 123
# ports of a 120-client lab, two alike about one lab in four, and one client's service then
# failed to bind while the other answered for it with the wrong host key. Ports handed out
# lately are never handed out again (a bounded memory: a lab asks for a few hundred at most).
_RECENT: deque[int] = deque(maxlen=8192)
_TRIES = 1000


def free_port() -> int:
    for _ in range(_TRIES):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _RECENT:
            _RECENT.append(port)
            return port
    raise RuntimeError(f"no loopback port unlike the last {len(_RECENT)} in {_TRIES} tries")


def wait_port(port: int, timeout: float, what: str) -> None:
    """Return once 127.0.0.1:`port` accepts a connection; RuntimeError naming `what` if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up on port {port} within {timeout:g}s")
