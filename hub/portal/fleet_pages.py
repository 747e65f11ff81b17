"""Hosts, host detail and history: pages, their JSON under /api/, and CSV exports."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.portal import fleet_data
from hub.portal.listing import HostQuery, ListingError, PastLastPage, parse_query
from hub.queries import QueryError

if TYPE_CHECKING:
    from hub.portal.pages import Pages

HOST_COLUMNS = (
    "host",
    "key",
    "address",
    "last_seen",
    "seen_by",
    "reports",
    "lost",
    "compliant",
    "stale",
)
PROMISE_COLUMNS = ("promise", "hosts", "kept", "repaired", "not_kept", "skipped", "share")
HISTORY_COLUMNS = ("time", "kind", "message", "by", "user")


async def read(call: Callable[..., Any], *args: Any) -> Any:
    try:
        return await asyncio.to_thread(call, *args)
    except QueryError as exc:
        raise HTTPException(404, str(exc)) from None
    except PyMongoError as exc:
        words = str(exc).split(",")[0][:160]
        raise HTTPException(503, f"no member could answer: {words}") from None


def csv_response(rows: list[dict[str, Any]], columns: tuple[str, ...], name: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            if isinstance(value, list):
                value = " ".join(map(str, value))
            text = "" if value is None else str(value)
            # A cell a spreadsheet would run as a formula is quoted as text.
            cells.append("'" + text if text[:1] in ("=", "+", "-", "@") else text)
        writer.writerow(cells)
    disposition = f'attachment; filename="{name}.csv"'
    return Response(
        out.getvalue(), media_type="text/csv", headers={"content-disposition": disposition}
    )


def history_rows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "time": e.get("time"),
            "kind": e.get("kind"),
            "message": e.get("message"),
            "by": e.get("by"),
            "user": (e.get("details") or {}).get("user"),
        }
        for e in events
    ]


class FleetPages:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages
        self.reader = pages.portal.reader

    def routes(self) -> list[Route]:
        return [
            Route("/hosts", self.hosts, name="hosts"),
            Route("/hosts.csv", self.hosts_csv, name="hosts_csv"),
            Route("/api/hosts", self.api_hosts, name="api_hosts"),
            Route("/hosts/{name}", self.host, name="host"),
            Route("/api/hosts/{name}", self.api_host, name="api_host"),
            Route("/compliance", self.compliance, name="compliance"),
            Route("/compliance.csv", self.compliance_csv, name="compliance_csv"),
            Route("/api/compliance", self.api_compliance, name="api_compliance"),
            Route("/masterfiles", self.masterfiles, name="masterfiles"),
            Route("/api/masterfiles", self.api_masterfiles, name="api_masterfiles"),
            Route("/history", self.history, name="history"),
            Route("/history.csv", self.history_csv, name="history_csv"),
            Route("/api/history", self.api_history, name="api_history"),
        ]

    def _query(self, request: Request) -> HostQuery:
        try:
            return parse_query(request.query_params, self.pages.portal.expected_hubs())
        except ListingError as exc:
            raise HTTPException(400, str(exc)) from None

    async def _listing(self, request: Request) -> dict[str, Any]:
        query = self._query(request)
        try:
            rows, total, pages = await read(fleet_data.hosts_page, self.reader, query)
        except PastLastPage as exc:
            raise HTTPException(404, str(exc)) from None
        hubs = self.pages.portal.expected_hubs()
        return {"query": query, "rows": rows, "pages": pages, "total": total, "hubs": hubs}

    async def hosts(self, request: Request) -> Response:
        account = self.pages.page_account(request)
        if isinstance(account, Response):
            return account
        listing = await self._listing(request)
        partial = request.headers.get("hx-request") == "true"
        name = "hosts_table.html" if partial else "hosts.html"
        return self.pages.render(request, name, {"l": listing, "account": account})

    async def hosts_csv(self, request: Request) -> Response:
        self.pages.api_account(request)
        rows = await read(fleet_data.host_rows, self.reader, self._query(request))
        return csv_response(rows, HOST_COLUMNS, "hosts")

    async def api_hosts(self, request: Request) -> Response:
        self.pages.api_account(request)
        listing = await self._listing(request)
        listing["query"] = listing["query"].params()
        return self.pages.json(listing)

    async def host(self, request: Request) -> Response:
        account = self.pages.page_account(request)
        if isinstance(account, Response):
            return account
        name = request.path_params["name"]
        detail = await read(fleet_data.host_detail, self.reader, name[:300])
        return self.pages.render(request, "host.html", {"d": detail, "account": account})

    async def api_host(self, request: Request) -> Response:
        self.pages.api_account(request)
        name = request.path_params["name"]
        return self.pages.json(await read(fleet_data.host_detail, self.reader, name[:300]))

    async def compliance(self, request: Request) -> Response:
        account = self.pages.page_account(request)
        if isinstance(account, Response):
            return account
        view = await read(fleet_data.compliance, self.reader)
        return self.pages.render(request, "compliance.html", {"c": view, "account": account})

    async def compliance_csv(self, request: Request) -> Response:
        self.pages.api_account(request)
        view = await read(fleet_data.compliance, self.reader)
        return csv_response(view["promises"], PROMISE_COLUMNS, "compliance")

    async def api_compliance(self, request: Request) -> Response:
        self.pages.api_account(request)
        return self.pages.json(await read(fleet_data.compliance, self.reader))

    async def masterfiles(self, request: Request) -> Response:
        account = self.pages.page_account(request)
        if isinstance(account, Response):
            return account
        releases = await read(fleet_data.masterfiles, self.reader)
        context = {"releases": releases, "account": account}
        return self.pages.render(request, "masterfiles.html", context)

    async def api_masterfiles(self, request: Request) -> Response:
        self.pages.api_account(request)
        return self.pages.json(await read(fleet_data.masterfiles, self.reader))

    async def history(self, request: Request) -> Response:
        account = self.pages.page_account(request)
        if isinstance(account, Response):
            return account
        rows = history_rows(await read(fleet_data.history, self.reader))
        return self.pages.render(request, "history.html", {"rows": rows, "account": account})

    async def history_csv(self, request: Request) -> Response:
        self.pages.api_account(request)
        rows = history_rows(await read(fleet_data.history, self.reader))
        return csv_response(rows, HISTORY_COLUMNS, "history")

    async def api_history(self, request: Request) -> Response:
        self.pages.api_account(request)
        return self.pages.json(history_rows(await read(fleet_data.history, self.reader)))
