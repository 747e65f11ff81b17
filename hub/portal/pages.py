"""The portal's pages and its JSON API: login, logout, overview (more to come).

Every route but the health endpoints and /login needs an account: a page without one
redirects to the login form, the API answers 401. Blocking reads run in threads.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from hub.portal import auth
from hub.portal.actions import AdminActions
from hub.portal.chart_routes import ChartRoutes
from hub.portal.fleet_pages import FleetPages
from hub.portal.forms import read_form
from hub.portal.overview import gather_overview
from hub.portal.settings import Account

if TYPE_CHECKING:
    from hub.portal.server import PortalServer

log = logging.getLogger("hubcluster.portal")
TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.isoformat()
    return str(value)


def json_response(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, default=_json_default, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json")


class Pages:
    def __init__(self, portal: PortalServer) -> None:
        self.portal = portal
        self.settings = portal.settings
        self.throttle = auth.LoginThrottle()

    def routes(self) -> list[Route]:
        return [
            Route("/", self.overview, name="overview"),
            Route("/login", self.login_form, methods=["GET"], name="login"),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"], name="logout"),
            Route("/api/overview", self.api_overview, name="api_overview"),
            *FleetPages(self).routes(),
            *ChartRoutes(self).routes(),
            *AdminActions(self).routes(),
        ]

    # ----- who is asking ------------------------------------------------------------------
    def page_account(self, request: Request) -> Account | Response:
        account = auth.current_account(self.settings, request)
        if account is not None:
            return account
        if auth.session_was_refused(request):
            return self.render(
                request,
                "error.html",
                {"status": 401, "words": "your session is not valid (expired or forged)"},
                401,
            )
        return RedirectResponse(request.url_for("login"), status_code=303)

    def json(self, data: Any, status: int = 200) -> Response:
        return json_response(data, status)

    def api_account(self, request: Request) -> Account:
        account = auth.current_account(self.settings, request)
        if account is None:
            raise HTTPException(401, "log in, or send Authorization: Bearer NAME.SECRET")
        return account

    def render(
        self, request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> Response:
        context.setdefault("account", auth.current_account_quiet(self.settings, request))
        context["csrf"] = auth.csrf_token(request)
        context["hub"] = self.portal.hub
        return TEMPLATES.TemplateResponse(request, name, context, status_code=status)

    # ----- login and logout ---------------------------------------------------------------
    async def login_form(self, request: Request) -> Response:
        if auth.current_account_quiet(self.settings, request) is not None:
            return RedirectResponse(request.url_for("overview"), status_code=303)
        return self.render(request, "login.html", {"problem": None})

    async def login(self, request: Request) -> Response:
        form = await read_form(request)
        auth.check_csrf(request, form.get("csrf"))
        name = form.get("name", "").strip()[:64]
        keys = auth.throttle_keys(name, request)
        wait = self.throttle.wait_seconds(keys)
        if wait > 0:
            words = f"too many failed logins; try again in {int(wait) + 1}s"
            return self.render(request, "login.html", {"problem": words}, 429)
        password = form.get("password", "")
        account = await asyncio.to_thread(auth.check_password, self.settings, name, password)
        if account is None:
            self.throttle.failed(keys)
            return self.render(request, "login.html", {"problem": "wrong name or password"}, 401)
        self.throttle.succeeded(keys)
        # A new session on login: a session fixed before it (and its CSRF token) is dropped.
        request.session.clear()
        request.session["user"] = account.name
        log.info("%s logged in to the portal of %s", account.name, self.portal.hub)
        return RedirectResponse(request.url_for("overview"), status_code=303)

    async def logout(self, request: Request) -> Response:
        form = await read_form(request)
        auth.check_csrf(request, form.get("csrf"))
        request.session.clear()
        return RedirectResponse(request.url_for("login"), status_code=303)

    # ----- overview -----------------------------------------------------------------------
    async def _overview_data(self) -> dict[str, Any]:
        reader, expected = self.portal.reader, self.portal.expected_hubs()
        try:
            return await asyncio.to_thread(gather_overview, reader, expected)
        except PyMongoError as exc:
            words = str(exc).split(",")[0][:160]
            raise HTTPException(503, f"no member could answer: {words}") from None

    async def overview(self, request: Request) -> Response:
        account = self.page_account(request)
        if isinstance(account, Response):
            return account
        data = await self._overview_data()
        partial = request.headers.get("hx-request") == "true"
        name = "overview_body.html" if partial else "overview.html"
        return self.render(request, name, {"o": data, "account": account})

    async def api_overview(self, request: Request) -> Response:
        self.api_account(request)
        return json_response(await self._overview_data())
