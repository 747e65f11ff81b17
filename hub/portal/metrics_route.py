"""GET /metrics: the hub's Prometheus metrics, without login, like the health endpoints.

They carry counts and states only (no host names, no report data). The state gauges are
set just before the answer (hub.metrics_sources), so a scrape shows this moment's role.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from hub.portal.server import PortalServer


def metrics_route(portal: PortalServer) -> Route:
    async def answer(request: Request) -> Response:
        await portal.metric_sources.refresh()
        body = portal.node.metrics.exposition()
        return Response(body, media_type=CONTENT_TYPE)

    return Route("/metrics", answer, methods=["GET", "HEAD"], name="metrics")
