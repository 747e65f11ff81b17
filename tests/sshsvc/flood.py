"""Half-open SSH handshakes for tests: TCP connections that never send a byte.

Loopback is all of 127.0.0.0/8, so binding the client end to 127.0.0.N gives each flood
its own source address as the server sees it.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def half_open(port: int, source: str, count: int) -> Iterator[list[socket.socket]]:
    """`count` connections from `source` to 127.0.0.1:`port`, closed on exit."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket()
            socks.append(sock)
            sock.bind((source, 0))
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
        yield socks
    finally:
        for sock in socks:
            sock.close()


def sort_out(socks: list[socket.socket], timeout: float = 10.0) -> tuple[int, int]:
    """(greeted, dropped): how many got the server's version line, how many were closed.

    Waits until every connection is one or the other, or `timeout` passes.
    """
    greeted = dropped = 0
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(max(0.0, deadline - time.monotonic())):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                selector.unregister(sock)
                try:
                    data = sock.recv(256)
                except (ConnectionResetError, ConnectionRefusedError):
                    data = b""
                if data.startswith(b"SSH-"):
                    greeted += 1
                else:
                    dropped += 1
    return greeted, dropped
