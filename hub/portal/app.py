"""The portal's Starlette app: routes, security headers, and errors as short pages.

Health endpoints need no login and carry no report data; everything else goes through
hub.portal.auth. Any error a request causes is a 4xx (or a plain 500) page of one sentence,
never a traceback.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.portal import auth
from hub.portal.health import ENDPOINTS, judge
from hub.portal.metrics_route import metrics_route
from hub.portal.pages import Pages

if TYPE_CHECKING:
    from hub.portal.server import PortalServer

log = logging.getLogger("hubcluster.portal")
STATIC = Path(__file__).parent / "static"
# No inline script or style anywhere: scripts and styles come from /static only.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders:
    """Adds the security headers to every response; data pages are never cached."""

    def __init__(self, app: ASGIApp, tls: bool) -> None:
        self.app = app
        self.tls = tls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] != b"cache-control"]
                headers += SECURITY_HEADERS
                cache = b"public, max-age=3600" if static else b"no-store"
                headers.append((b"cache-control", cache))
                if self.tls:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def _health_route(portal: PortalServer, endpoint: str) -> Route:
    async def answer(request: Request) -> Response:
        status, body = judge(endpoint, await portal.facts())
        return JSONResponse(body, status_code=status)

    return Route(f"/{endpoint}", answer, methods=["GET", "HEAD", "OPTIONS"], name=endpoint)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    words = exc.detail if isinstance(exc.detail, str) else "bad request"
    return _error(request, exc.status_code, words)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("portal: %s %s failed", request.method, request.url.path, exc_info=exc)
    return _error(request, 500, "the hub could not answer this request; see hubd's log")


def _error(request: Request, status: int, words: str) -> Response:
    if request.url.path.startswith("/api/") or "json" in request.headers.get("accept", ""):
        return JSONResponse({"error": words}, status_code=status)
    return PlainTextResponse(f"{status}: {words}\n", status_code=status)


async def _no_icon(request: Request) -> Response:
    return Response(status_code=204)


def build_app(portal: PortalServer, secret: str) -> ASGIApp:
    routes: list[Any] = [_health_route(portal, e) for e in ENDPOINTS]
    routes.append(metrics_route(portal))
    routes += Pages(portal).routes()
    routes.append(Route("/favicon.ico", _no_icon))
    routes.append(Mount("/static", StaticFiles(directory=STATIC), name="static"))
    session = Middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie=auth.SESSION_COOKIE,
        max_age=auth.SESSION_SECONDS,
        same_site="strict",
        https_only=portal.settings.tls,
    )
    app = Starlette(
        routes=routes,
        middleware=[session],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    return SecurityHeaders(app, portal.settings.tls)
