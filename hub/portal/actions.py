"""The few things an admin may do from the portal: revoke a key, open or close maintenance.

Each is a POST with the session's CSRF token, admin-only, and lands in `hubctl history`
with the user's name. Publishing stays a CLI action on the master.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from hub.key_records import KeyLookupError, revoke_key
from hub.maintenance_window import close_maintenance, open_maintenance
from hub.portal import auth
from hub.portal.fleet_pages import read
from hub.portal.forms import read_form
from hub.replset import ReplicaSet
from hub.store import HubStore
from hub.topology import ReplsetError

if TYPE_CHECKING:
    from hub.portal.pages import Pages

MAX_REASON = 200
# The same range `hubctl maintenance start` allows (hubctl.duration_option.MAINTENANCE).
MAINTENANCE_SECONDS = (1, 7 * 24 * 3600)


class AdminActions:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages
        self.portal = pages.portal

    def routes(self) -> list[Route]:
        return [
            Route("/hosts/{name}/revoke", self.revoke, methods=["POST"], name="revoke"),
            Route("/maintenance/start", self.start, methods=["POST"], name="maintenance_start"),
            Route("/maintenance/end", self.end, methods=["POST"], name="maintenance_end"),
        ]

    async def _admin_form(self, request: Request) -> tuple[str, dict[str, str]]:
        account = auth.current_account(self.pages.settings, request)
        if account is None:
            raise HTTPException(401, "log in first")
        form = await read_form(request)
        if "authorization" not in request.headers:
            auth.check_csrf(request, form.get("csrf"))
        auth.require_admin(account)
        return account.name, form

    async def revoke(self, request: Request) -> Response:
        user, form = await self._admin_form(request)
        reason = form.get("reason", "").strip()[:MAX_REASON]
        name = request.path_params["name"][:300]
        store = HubStore(self.portal.reader.client)
        by = f"{self.portal.hub} portal"
        try:
            await read(
                functools.partial(revoke_key, user=user, hub=self.portal.hub),
                store,
                name,
                reason,
                by,
            )
        except KeyLookupError as exc:
            raise HTTPException(404, str(exc)) from None
        return RedirectResponse(request.url_for("host", name=name), status_code=303)

    def _replset(self, user: str) -> ReplicaSet:
        rs = ReplicaSet(self.portal.node.config.mongo_uri)
        rs.actor = user
        return rs

    async def start(self, request: Request) -> Response:
        user, form = await self._admin_form(request)
        member = form.get("member", "").strip()[:300]
        text = form.get("seconds", "")
        low, high = MAINTENANCE_SECONDS
        if not text.isdigit() or not low <= int(text) <= high:
            raise HTTPException(400, f"seconds: a whole number from {low} to {high}")
        rs = self._replset(user)
        try:
            await read(open_maintenance, rs, member, float(text))
        except ReplsetError as exc:
            raise HTTPException(409, str(exc)) from None
        finally:
            rs.close()
        return RedirectResponse(request.url_for("overview"), status_code=303)

    async def end(self, request: Request) -> Response:
        user, _ = await self._admin_form(request)
        rs = self._replset(user)
        try:
            await read(close_maintenance, rs)
        except ReplsetError as exc:
            raise HTTPException(409, str(exc)) from None
        finally:
            rs.close()
        return RedirectResponse(request.url_for("overview"), status_code=303)
