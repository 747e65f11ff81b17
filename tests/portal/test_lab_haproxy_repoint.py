"""After `hubctl lab replace`, the lab's HAProxy fronts the hubs as they are now.

Two stand-in portals (loopback HTTP servers answering the health endpoints with their
name) behind Debian's HAProxy, rendered from the role's template by the lab: the balanced
read port answers from the first, then, repointed, from the second, on the same port.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from hubctl.lab.haproxy import LabHaproxy
from tests.conftest import wait_until
from tests.debian_tools import debian_tool


def portal(name: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = name.encode()
            self.send_response(503 if self.path == "/master" else 200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def portals() -> Iterator[dict[str, int]]:
    servers = {name: portal(name) for name in ("hub1", "hub4")}
    yield {name: s.server_address[1] for name, s in servers.items()}
    for s in servers.values():
        s.shutdown()
        s.server_close()


def answered_by(url: str) -> str | None:
    try:
        got = httpx.get(url, timeout=2.0)
    except httpx.HTTPError:
        return None
    return got.text if got.status_code == 200 else None


def test_repointed_haproxy_reads_from_the_new_hub_on_the_same_port(
    tmp_path: Path, portals: dict[str, int]
) -> None:
    debian_tool("haproxy", "haproxy", "HAProxy tier")
    haproxy = LabHaproxy(tmp_path, [("hub1", portals["hub1"])])
    haproxy.start()
    try:
        wait_until(lambda: answered_by(haproxy.read_url) == "hub1", 15, 0.2, "reads via hub1")
        read_url = haproxy.read_url
        haproxy.repoint([("hub4", portals["hub4"])])
        assert haproxy.read_url == read_url  # the URL `lab up` printed still holds
        wait_until(lambda: answered_by(read_url) == "hub4", 15, 0.2, "reads via hub4")
        config = haproxy.config_file.read_text()
        assert f"127.0.0.1:{portals['hub4']}" in config
        assert f"127.0.0.1:{portals['hub1']}" not in config
    finally:
        haproxy.stop()
