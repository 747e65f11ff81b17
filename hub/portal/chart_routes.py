"""The JSON the portal's charts draw from (static/charts.js fetches it; no inline script).

The history chart reads /api/history, which hub.portal.fleet_pages already serves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.portal import chart_data
from hub.portal.fleet_pages import read

if TYPE_CHECKING:
    from hub.portal.pages import Pages


class ChartRoutes:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages
        self.reader = pages.portal.reader

    def routes(self) -> list[Route]:
        return [
            Route(
                "/api/compliance/history",
                self.compliance_history,
                name="api_compliance_history",
            ),
            Route("/api/hosts/{name}/runs", self.host_runs, name="api_host_runs"),
        ]

    async def compliance_history(self, request: Request) -> Response:
        self.pages.api_account(request)
        return self.pages.json(await read(chart_data.compliance_over_time, self.reader))

    async def host_runs(self, request: Request) -> Response:
        self.pages.api_account(request)
        name = request.path_params["name"][:300]
        return self.pages.json(await read(chart_data.host_runs, self.reader, name))
