"""What is wrong after a round, per rule: the targets, the evidence, the reason in words.

Read on the master from the primary, from what the collector and the hubs keep anyway
(hosts, latest outcomes, last-seen, hub states): no report is scanned. The evidence names
the thing seen (the outcome report, the last contact, the releases, the check's sentence),
so the idempotency key (rule, target, evidence) is the same for every master that sees it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hub.maintenance_window import MAINTENANCE
from hub.outcome_summary import LATEST_OUTCOMES, PROMISES, RAN, SEQ
from hub.remediation.ledger import ASKS, aware
from hub.remediation.rules import (
    CHECK,
    MASTERFILES_DIVERGED,
    PROMISE_NOT_KEPT,
    STALE_CLIENT,
    Rule,
)
from hub.replset import FREEZES
from hub.store import HOSTS, HUB_STATE, LAST_SEEN, HubStore
from hubcluster import report_kinds as rk
from hubcluster.durations import format_duration

# A hub whose state is older than this many of its state intervals is silent, not behind.
SILENT_INTERVALS = 4


@dataclass(frozen=True)
class Trigger:
    rule: str
    target: str  # a client's key SHA, a hub's name, or "cluster"
    name: str  # as people say it: the client's host name, the hub's name
    evidence: str
    reason: str  # "promise sshd_running not kept"
    asked_by: str | None = None  # hubctl remediate


@dataclass
class Facts:
    """One read of the cluster after a round."""

    now: dt.datetime
    hosts: dict[str, dict[str, Any]]  # key SHA -> host document
    outcomes: dict[str, dict[str, Any]]  # key SHA -> latest outcome summary
    seen: dict[str, dt.datetime]  # key SHA -> latest contact
    hub_states: list[dict[str, Any]]
    suppressed: str | None  # why no rule may act now (maintenance, a freeze)
    asks: list[dict[str, Any]] = field(default_factory=list)
    check_items: list[str] = field(default_factory=list)


def read_facts(store: HubStore, master: str, check_items: Callable[[], list[str]] | None) -> Facts:
    db = store.db  # the primary: the master decides on what the set has acknowledged
    now = dt.datetime.now(dt.UTC)
    hosts = {d["_id"]: d for d in db[HOSTS].find({"revoked": {"$ne": True}})}
    outcomes = {d["_id"]: d for d in db[LATEST_OUTCOMES].find({}, {SEQ: 1, RAN: 1, PROMISES: 1})}
    seen = {d["_id"]: aware(d["latest"]) for d in db[LAST_SEEN].find() if d.get("latest")}
    states = list(db[HUB_STATE].find())
    return Facts(
        now=now,
        hosts=hosts,
        outcomes=outcomes,
        seen=seen,
        hub_states=states,
        suppressed=_suppressed(store, now),
        asks=list(db[ASKS].find().sort("asked", 1)),
        check_items=check_items() if check_items else [],
    )


def _suppressed(store: HubStore, now: dt.datetime) -> str | None:
    """An open maintenance window or a frozen member: an operator is at work on the set."""
    window = store.db[MAINTENANCE].find_one({"_id": "current", "until": {"$gt": now}})
    if window:
        return f"maintenance window open for {window.get('member', 'a member')}"
    frozen = sorted(str(d["_id"]) for d in store.db[FREEZES].find({"until": {"$gt": now}}))
    if frozen:
        return f"{', '.join(frozen)} frozen"
    return None


def _host_name(doc: dict[str, Any]) -> str:
    return str(doc.get("hostname") or doc["_id"][:12])


def triggered(rule: Rule, facts: Facts, master: str) -> list[Trigger]:
    """The targets `rule` fires on after this round, one Trigger each."""
    found = {
        PROMISE_NOT_KEPT: _not_kept,
        STALE_CLIENT: _stale,
        MASTERFILES_DIVERGED: _diverged,
        CHECK: _check,
    }[rule.trigger](rule, facts, master)
    return found


def _not_kept(rule: Rule, facts: Facts, master: str) -> list[Trigger]:
    out = []
    for sha, summary in facts.outcomes.items():
        host = facts.hosts.get(sha)
        if host is None:
            continue
        failing = [
            p[rk.PROMISE_NAME]
            for p in summary.get(PROMISES) or []
            if p.get(rk.PROMISE_STATUS) == rk.NOT_KEPT
            and rule.promise in ("*", p.get(rk.PROMISE_NAME))
        ]
        if not failing:
            continue
        noun = "promise" if len(failing) == 1 else "promises"
        ran = aware(summary[RAN]).isoformat() if summary.get(RAN) else "?"
        out.append(
            Trigger(
                rule.name,
                sha,
                _host_name(host),
                f"report {summary.get(SEQ)} of {ran}",
                f"{noun} {', '.join(failing[:3])} not kept",
            )
        )
    return out


def _stale(rule: Rule, facts: Facts, master: str) -> list[Trigger]:
    out = []
    for sha, host in facts.hosts.items():
        last = facts.seen.get(sha)
        since = last or aware(host.get("registered") or facts.now)
        silent = (facts.now - since).total_seconds()
        if silent <= rule.stale_after:
            continue
        words = f"silent for {format_duration(round(silent))}" if last else "never seen"
        out.append(
            Trigger(
                rule.name,
                sha,
                _host_name(host),
                f"seen {last.isoformat() if last else 'never'}",
                f"{words}, stale after {format_duration(rule.stale_after)}",
            )
        )
    return out


def _diverged(rule: Rule, facts: Facts, master: str) -> list[Trigger]:
    mine = next((s for s in facts.hub_states if s["_id"] == master), None)
    if mine is None or not mine.get("release"):
        return []
    release = mine["release"]
    since = mine.get("release_since")
    held_for = (facts.now - aware(since)).total_seconds() if since else 0.0
    if held_for <= rule.diverged_for:
        return []
    out = []
    for state in facts.hub_states:
        interval = float(state.get("state_interval") or 15.0)
        updated = state.get("updated")
        silent = updated is None or (
            (facts.now - aware(updated)).total_seconds() > SILENT_INTERVALS * interval
        )
        if state["_id"] == master or silent or state.get("release") == release:
            continue
        out.append(
            Trigger(
                rule.name,
                str(state["_id"]),
                str(state["_id"]),
                f"{state.get('release')} not {release}",
                f"masterfiles {state.get('release') or 'none'}, master serves {release} "
                f"for {format_duration(round(held_for))}",
            )
        )
    return out


def _check(rule: Rule, facts: Facts, master: str) -> list[Trigger]:
    items = [i for i in facts.check_items if rule.check.lower() in i.lower()]
    if not items:
        return []
    return [Trigger(rule.name, "cluster", "the cluster", items[0], f"check: {items[0]}")]


def asked(rule: Rule, facts: Facts) -> tuple[list[Trigger], list[str]]:
    """`hubctl remediate` asks for `rule` as triggers, and the asks naming no known target."""
    out, unknown = [], []
    by_name = {str(h.get("hostname")): sha for sha, h in facts.hosts.items()}
    hubs = {str(s["_id"]) for s in facts.hub_states}
    for ask in facts.asks:
        if ask.get("rule") != rule.name:
            continue
        target = str(ask.get("target"))
        sha = by_name.get(target) or (target if target in facts.hosts else None)
        if sha is not None:
            name = _host_name(facts.hosts[sha])
        elif target in hubs or target == "cluster":
            sha, name = target, target
        else:
            unknown.append(str(ask["_id"]))
            continue
        by = str(ask.get("by") or "an operator")
        out.append(
            Trigger(rule.name, sha, name, f"ask {ask['_id']}", f"asked by {by}", asked_by=by)
        )
    return out, unknown
