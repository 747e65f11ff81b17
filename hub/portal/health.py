"""The health endpoints, in Patroni's convention, for load balancers and monitoring.

`/health` 200 while this hub's hubd and its mongod run; `/master` 200 only on the hub that
collects (its own mongod is primary and its collection loop is alive); `/replica` 200 on a
healthy non-master (a secondary within the staleness bound); `/read` 200 where secondary
reads within that bound, or primary reads, are served. Everything else is 503. The bodies
say why in a few small fields and never carry report data, so they need no login.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pymongo
from pymongo.errors import PyMongoError

PRIMARY, SECONDARY = "PRIMARY", "SECONDARY"
ENDPOINTS = ("health", "master", "replica", "read")


@dataclass(frozen=True)
class MemberLook:
    """This hub's own mongod, as it answered replSetGetStatus (its own word, not the set's)."""

    state: str | None  # PRIMARY, SECONDARY, ...; None when it did not answer
    lag: float | None  # seconds behind the primary (or the freshest member without one)
    problem: str | None = None  # why it did not answer, in words


@dataclass(frozen=True)
class HubFacts:
    hub: str
    member: str
    look: MemberLook
    is_master: bool  # hubd's master watch says its mongod is the writable primary
    collecting: bool  # hubd's collection loop is alive (beat within its stall limit)
    max_staleness: float


def look_at_member(client: pymongo.MongoClient) -> MemberLook:
    """Blocking: ask our own member (a direct connection) for the set's status."""
    try:
        status = client.admin.command("replSetGetStatus")
    except PyMongoError as exc:
        words = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        return MemberLook(None, None, words)
    rows = status.get("members", [])
    me = next((m for m in rows if m.get("self")), None)
    if me is None:
        return MemberLook("UNKNOWN", None)
    state = str(me.get("stateStr") or "UNKNOWN")
    primary = next((m for m in rows if m.get("state") == 1), None)
    healthy = [m["optimeDate"] for m in rows if m.get("health") and m.get("optimeDate")]
    reference: dt.datetime | None = primary["optimeDate"] if primary else max(healthy, default=None)
    lag = None
    if reference is not None and me.get("optimeDate") is not None:
        lag = max(0.0, (reference - me["optimeDate"]).total_seconds())
    return MemberLook(state, lag)


def _lag_ok(facts: HubFacts) -> bool:
    return facts.look.lag is not None and facts.look.lag <= facts.max_staleness


def judge(endpoint: str, facts: HubFacts) -> tuple[int, dict[str, Any]]:
    """The status code and body for one endpoint (one of ENDPOINTS)."""
    look = facts.look
    body: dict[str, Any] = {
        "hub": facts.hub,
        "member": facts.member,
        "state": look.state,
        "role": "master" if facts.is_master and look.state == PRIMARY else "standby",
        "lag_seconds": None if look.lag is None else round(look.lag, 1),
    }
    ok, why = True, ""
    if look.state is None:
        ok, why = False, f"mongod {facts.member} does not answer: {look.problem}"
    elif endpoint == "health":
        why = f"hubd and mongod {facts.member} ({look.state}) run"
    elif endpoint == "master":
        if look.state != PRIMARY or not facts.is_master:
            why = f"{facts.member} is {look.state}, not primary: this hub does not collect"
            ok = False
        elif not facts.collecting:
            ok, why = False, "mongod is primary but the collection loop is not running"
        else:
            why = f"{facts.member} is primary and this hub collects"
    elif endpoint == "replica":
        if look.state != SECONDARY or facts.is_master:
            ok, why = False, f"{facts.member} is {look.state}, not a secondary"
        elif not _lag_ok(facts):
            ok, why = False, f"{_lag_words(look.lag)}, over the {facts.max_staleness:g}s bound"
        else:
            why = f"secondary, {_lag_words(look.lag)}"
    elif endpoint == "read":
        if look.state == PRIMARY:
            why = "primary: reads are served"
        elif look.state != SECONDARY:
            ok, why = False, f"{facts.member} is {look.state}: no reads here"
        elif not _lag_ok(facts):
            ok, why = False, f"{_lag_words(look.lag)}, over the {facts.max_staleness:g}s bound"
        else:
            why = f"secondary reads within {facts.max_staleness:g}s: {_lag_words(look.lag)}"
    else:
        raise ValueError(f"no health endpoint {endpoint!r}")
    body["ok"] = ok
    body["why"] = why
    return (200 if ok else 503), body


def _lag_words(lag: float | None) -> str:
    return "lag unknown" if lag is None else f"{lag:.1f}s behind"
