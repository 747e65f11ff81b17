"""The portal's web server: uvicorn serving the app on hubd's own event loop.

hubd runs `PortalServer.serve` as a supervised loop, so a server that dies is restarted and
the restart is on the hub's record. The socket is bound here rather than by uvicorn, which
answers a bind failure with sys.exit(): an address in use must be a problem hubd reports,
not a hubd that exits. Blocking pymongo calls run in threads, never on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import uvicorn

from hub.metrics_sources import MetricSources
from hub.mongo import connect, connect_member
from hub.portal.app import build_app
from hub.portal.auth import session_secret
from hub.portal.health import HubFacts, look_at_member
from hub.portal.overview import AnsweredBy, Reader
from hub.replset import ReplicaSet

if TYPE_CHECKING:
    from hub.node import HubNode

log = logging.getLogger("hubcluster.portal")
# A health look must answer well within a load balancer's check timeout (HAProxy: 2 s).
MEMBER_TIMEOUT = 1.5


class _HubdServer(uvicorn.Server):
    """uvicorn without its own signal handlers: hubd's SIGTERM handler stops everything."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class PortalServer:
    def __init__(self, node: HubNode) -> None:
        self.node = node
        config = node.config
        self.settings = config.portal
        self.member_client = connect_member(config.mongo_uri, config.me.mongo, MEMBER_TIMEOUT)
        answered = AnsweredBy()
        self.reader = Reader(
            connect(config.mongo_uri, timeout=5.0, event_listeners=[answered]),
            ReplicaSet(config.mongo_uri),
            answered,
            config.max_staleness,
        )
        self.metric_sources = MetricSources(node, node.metrics)
        self.app = build_app(self, session_secret(self.settings, config.workdir))
        self.url: str | None = None

    @property
    def hub(self) -> str:
        return self.node.name

    def expected_hubs(self) -> list[str]:
        return [h.name for h in self.node.config.hubs]

    def collecting(self) -> bool:
        """The collection loop is alive: it beat within the limit the supervisor holds it to."""
        settings = self.node.config.collector
        limit = max(10 * settings.interval, 10 * settings.host_timeout)
        return time.monotonic() - self.node.collect_beat < limit

    async def facts(self) -> HubFacts:
        look = await asyncio.to_thread(look_at_member, self.member_client)
        config = self.node.config
        return HubFacts(
            hub=config.name,
            member=config.me.mongo,
            look=look,
            is_master=self.node.watch.state.is_master,
            collecting=self.collecting(),
            max_staleness=config.max_staleness,
        )

    async def serve(self) -> None:
        settings = self.settings
        sock = bind_socket(settings.bind, settings.port)
        port = sock.getsockname()[1]
        scheme = "https" if settings.tls else "http"
        host = f"[{settings.bind}]" if ":" in settings.bind else settings.bind
        self.url = f"{scheme}://{host}:{port}/"
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
            ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        )
        server = _HubdServer(config)
        # Its start line says nothing ours does not; its warnings and errors still show.
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        log.info("%s: portal at %s", self.hub, self.url)
        try:
            await server.serve(sockets=[sock])
        finally:
            for listener in getattr(server, "servers", []):
                listener.close()
            sock.close()

    def close(self) -> None:
        self.member_client.close()
        self.metric_sources.close()
        self.reader.close()
