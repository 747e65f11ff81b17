"""Who is asking: sessions for people, bearer tokens for scripts, CSRF, login throttling.

Sessions are Starlette's signed cookies (itsdangerous): HttpOnly, SameSite=Strict, Secure
under TLS, signed with a secret every hub of a cluster shares (portal.secret_file). The
session holds the user's name only; role and existence are looked up in the config on every
request, so removing a user ends their sessions. Every form carries the session's CSRF
token, checked on every POST.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request

from hub.portal.passwords import decoy_hash, secret_matches
from hub.portal.settings import ADMIN, Account, PortalSettings

SESSION_COOKIE = "hubportal"
SESSION_SECONDS = 8 * 3600
# Failed logins: this many within the window, per user name and per address, and the next
# attempts are refused until the oldest failure leaves the window.
MAX_FAILURES = 5
FAILURE_WINDOW = 300.0
# A throttle's memory is bounded: an attacker inventing names cannot grow it without end.
MAX_TRACKED = 10_000
# token hash -> SHA-256 of the secret that matched it
_verified_tokens: dict[str, str] = {}


def session_secret(settings: PortalSettings, workdir: Path) -> str:
    """The signing secret, made on first use (mode 0600); copy it to every hub of the cluster
    so a session survives a load balancer moving the user to another hub."""
    path = settings.secret_file or workdir / "portal-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    return secret


@dataclass
class LoginThrottle:
    """Recent failed logins per key ('user:NAME', 'addr:IP'), in monotonic seconds."""

    failures: dict[str, deque[float]] = field(default_factory=dict)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self.failures.get(key, deque())
        while times and now - times[0] > FAILURE_WINDOW:
            times.popleft()
        return times

    def wait_seconds(self, keys: list[str]) -> float:
        """0 when a login may be tried; else how long until one may."""
        now = time.monotonic()
        waits = []
        for key in keys:
            times = self._recent(key, now)
            if len(times) >= MAX_FAILURES:
                waits.append(FAILURE_WINDOW - (now - times[0]))
        return max(waits, default=0.0)

    def failed(self, keys: list[str]) -> None:
        now = time.monotonic()
        if len(self.failures) > MAX_TRACKED:
            for key in [k for k, t in self.failures.items() if not self._recent(k, now)]:
                del self.failures[key]
        for key in keys:
            self.failures.setdefault(key, deque(maxlen=MAX_FAILURES)).append(now)

    def succeeded(self, keys: list[str]) -> None:
        for key in keys:
            self.failures.pop(key, None)


def throttle_keys(name: str, request: Request) -> list[str]:
    address = request.client.host if request.client else "unknown"
    return [f"user:{name.lower()}", f"addr:{address}"]


def check_password(settings: PortalSettings, name: str, password: str) -> Account | None:
    account = next((u for u in settings.users if u.name == name), None)
    # Unknown names are hashed too, against a decoy: the same cost either way.
    matched = secret_matches(account.secret_hash if account else decoy_hash(), password)
    return account if account is not None and matched else None


def _bearer(settings: PortalSettings, request: Request) -> Account | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or "." not in token:
        raise HTTPException(401, "an API token is Authorization: Bearer NAME.SECRET")
    name, _, secret = token.strip().partition(".")
    account = next((t for t in settings.tokens if t.name == name), None)
    if account is None:
        raise HTTPException(401, "this API token is not valid")
    # argon2 costs tens of milliseconds by design: a token that verified is remembered by its
    # SHA-256 (bounded by the number of tokens), so a script's every request does not pay it.
    digest = hashlib.sha256(secret.encode()).hexdigest()
    known = _verified_tokens.get(account.secret_hash)
    if known is None or not hmac.compare_digest(known, digest):
        if not secret_matches(account.secret_hash, secret):
            raise HTTPException(401, "this API token is not valid")
        _verified_tokens[account.secret_hash] = digest
    return account


def current_account(settings: PortalSettings, request: Request) -> Account | None:
    """The logged-in user or the token's account; None when neither is given."""
    if "authorization" in request.headers:
        return _bearer(settings, request)
    name = request.session.get("user")
    if not isinstance(name, str):
        return None
    return next((u for u in settings.users if u.name == name), None)


def current_account_quiet(settings: PortalSettings, request: Request) -> Account | None:
    """current_account, with a bad token counted as nobody (for showing who is logged in)."""
    try:
        return current_account(settings, request)
    except HTTPException:
        return None


def session_was_refused(request: Request) -> bool:
    """A session cookie came but held no valid session: expired, or forged."""
    return SESSION_COOKIE in request.cookies and not request.session


def require_admin(account: Account) -> None:
    if account.role != ADMIN:
        raise HTTPException(403, f"{account.name} is a viewer; this needs an admin")


# ----- CSRF ---------------------------------------------------------------------------------
def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, given: object) -> None:
    token = request.session.get("csrf")
    if not isinstance(token, str) or not isinstance(given, str):
        raise HTTPException(403, "the form is missing its CSRF token; reload the page")
    if not hmac.compare_digest(token, given):
        raise HTTPException(403, "the form's CSRF token does not match; reload the page")
