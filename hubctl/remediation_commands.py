"""`hubctl remediation list|history|pause|resume|reset-breaker` and `hubctl remediate`.

The rules live in the hubs' config; their state (budget used, pause, breaker) lives in the
replica set, where the master reads it before every decision, so a command here changes what
the next round does, whichever hub is master by then.
"""

from __future__ import annotations

import datetime as dt
import getpass
import math
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pymongo.errors import PyMongoError

from hub.events import EVENTS, record_event
from hub.mongo import connect
from hub.remediation.engine import EVENT_KIND
from hub.remediation.ledger import ALL_RULES, RUNNING, Ledger, aware
from hub.remediation.pending import PendingView, read_pending
from hub.store import HubStore
from hubcluster.durations import format_duration
from hubctl.cluster_option import ConfigOpt, MongoOpt, resolve_uri
from hubctl.duration_option import LOOKBACK, duration_option
from hubctl.output import (
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    Table,
    console,
    fail,
    print_json,
    say,
)

remediation_app = typer.Typer(help="Self-healing rules: list, history, pause, resume, breakers.")
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON on stdout")]
RuleArg = Annotated[str | None, typer.Argument(help="One rule (default: all rules)")]
# Per rule, the pending clients named one a line; the rest counted.
PENDING_SHOWN = 5


def _operator() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


@contextmanager
def _ledger(mongo: str | None, config: Path | None) -> Iterator[Ledger]:
    client = connect(resolve_uri(mongo, config), timeout=5.0)
    try:
        yield Ledger(HubStore(client))
    except PyMongoError as exc:
        fail(f"the cluster did not answer ({str(exc).split(',')[0]})", EXIT_UNREACHABLE)
    finally:
        client.close()


def _known_rule(ledger: Ledger, rule: str) -> dict[str, Any]:
    states = ledger.rule_states()
    state = states.get(rule)
    if state is None or "summary" not in state:
        names = ", ".join(sorted(n for n, s in states.items() if "summary" in s)) or "none yet"
        fail(f"no remediation rule {rule!r} (rules the master runs: {names})", EXIT_USAGE)
    return state


def _event(ledger: Ledger, message: str, **details: Any) -> None:
    if not record_event(ledger.db.client, EVENT_KIND, message, **details):
        say(f"warning: not in the history (no primary took it): {message}")


@remediation_app.command("list")
def list_rules(mongo: MongoOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Rules, budgets used in their window, triggers pending in their hold, pause and
    breaker state."""
    now = dt.datetime.now(dt.UTC)
    with _ledger(mongo, config) as ledger:
        states = ledger.rule_states()
        rules = {n: s for n, s in states.items() if "summary" in s}
        windows = [float(s["summary"]["window"]) for s in rules.values()]
        since = now - dt.timedelta(seconds=max(windows, default=3600.0))
        records = ledger.since(since)
        pending = read_pending(ledger.store, _primary(ledger), now)
    paused_all = bool((states.get(ALL_RULES) or {}).get("paused"))
    rows = []
    for name, state in sorted(rules.items()):
        summary = state["summary"]
        start = now - dt.timedelta(seconds=float(summary["window"]))
        used = [r for r in records if r.get("rule") == name and aware(r["started"]) >= start]
        per_target: dict[str, int] = {}
        for r in used:
            per_target[str(r.get("name"))] = per_target.get(str(r.get("name")), 0) + 1
        breaker = state.get("breaker") or {}
        rows.append(
            {
                "rule": name,
                **summary,
                "runs_in_window": len(used),
                "running": sum(1 for r in used if r.get("status") == RUNNING),
                "most_used": max(per_target.values(), default=0),
                "paused": bool(state.get("paused")) or paused_all,
                "breaker": "open" if breaker.get("open") else "closed",
                "breaker_reason": breaker.get("message") if breaker.get("open") else None,
                "pending": _pending_json(pending, name),
            }
        )
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} remediation rules", title_justify="left")
    for column in ("Rule", "Trigger -> action", "Budget used", "State"):
        table.add_column(column)
    for row in rows:
        shown = "[red]breaker open[/]" if row["breaker"] == "open" else "active"
        if row["paused"]:
            shown = "paused" if row["breaker"] != "open" else shown + ", paused"
        if row["dry_run"]:
            shown += " (dry run)"
        window = format_duration(float(row["window"]))
        budget = (
            f"{row['runs_in_window']} runs/{window}; most on one target "
            f"{row['most_used']}/{row['max_runs']}"
        )
        hold = row.get("hold")
        held = f" for {format_duration(float(hold))}" if hold else ""
        waiting = pending.of(row["rule"])
        if waiting:  # the lines under the table name them, and say how current this is
            shown += f"\n{len(waiting)} pending"
        table.add_row(row["rule"], f"{row['trigger']}{held} -> {row['action']}", budget, shown)
    console.print(table)
    for row in rows:
        if row["breaker_reason"]:
            say(f"{row['rule']}: {row['breaker_reason']}")
    for line in pending_lines(pending, [row["rule"] for row in rows], now):
        say(line)


def _primary(ledger: Ledger) -> str | None:
    address = ledger.db.client.primary
    return f"{address[0]}:{address[1]}" if address else None


def _pending_json(view: PendingView, rule: str) -> dict[str, Any] | None:
    if view.by is None:
        return None
    waiting = view.of(rule)
    return {
        "count": None if waiting is None else len(waiting),
        "targets": waiting or [],
        "published": view.published,
        "by": view.by,
        "current": view.current,
    }


def _seconds(span: dt.timedelta, to_whole: Callable[[float], int] = round) -> str:
    """A span in whole seconds (a list read a second later would show other fractions)."""
    return format_duration(max(0, to_whole(span.total_seconds())))


def pending_lines(view: PendingView, rules: list[str], now: dt.datetime) -> list[str]:
    """What the State column's "N pending" stands on: when and by whom it was published, and
    who is in a hold, one line each (80 columns)."""
    if view.by is None or view.published is None:
        return ["pending: not published yet (the master publishes after each round)"]
    age = _seconds(now - view.published)
    if not view.current:
        return [f"pending: not shown: published {age} ago by {view.by}, not the master now"]
    lines = [f"pending as of {age} ago (published by {view.by}, the master)"]
    for rule in rules:
        waiting = view.of(rule) or []
        for w in waiting[:PENDING_SHOWN]:
            held = _seconds(now - w["since"])
            left = w["due"] - now
            ends = "hold ended"
            if left.total_seconds() > 0:
                ends = f"hold ends in {_seconds(left, math.ceil)}"
            lines.append(f"  {rule}: {w['name']} pending {held}, {ends}")
        if len(waiting) > PENDING_SHOWN:
            lines.append(f"  {rule}: and {len(waiting) - PENDING_SHOWN} more")
    return lines


@remediation_app.command("history")
def history(
    seconds: Annotated[
        float | None, duration_option("--since", allowed=LOOKBACK, help="e.g. 1h, 2d")
    ] = None,
    rule: Annotated[str | None, typer.Option("--rule", help="Only this rule")] = None,
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every remediation decision, one sentence each, oldest first."""
    query: dict[str, Any] = {"kind": EVENT_KIND}
    if seconds:
        query["time"] = {"$gte": dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)}
    if rule:
        query["details.rule"] = rule
    with _ledger(mongo, config) as ledger:
        docs = list(ledger.db[EVENTS].find(query, {"_id": 0}).sort("time", -1).limit(1000))
    docs.reverse()
    if as_json:
        print_json(docs)
        return
    table = Table(title=f"{len(docs)} remediation decisions", title_justify="left")
    for column in ("Time (UTC)", "What was decided", "By"):
        table.add_column(column)
    for e in docs:
        table.add_row(f"{e['time']:%Y-%m-%d %H:%M:%S}", e["message"], e.get("by", ""))
    console.print(table)


def _pause(rule: str | None, paused: bool, mongo: str | None, config: Path | None) -> None:
    verb = "paused" if paused else "resumed"
    with _ledger(mongo, config) as ledger:
        if rule is not None:
            _known_rule(ledger, rule)
        who = _operator()
        changed = ledger.set_paused(rule or ALL_RULES, paused, who)
        scope = f"rule {rule}" if rule else "all rules"
        if not changed:
            say(f"remediation of {scope} was already {verb}")
            return
        message = f"remediation {verb} for {scope} by {who}"
        _event(ledger, message, rule=rule or ALL_RULES)
    say(message)


@remediation_app.command("pause")
def pause(rule: RuleArg = None, mongo: MongoOpt = None, config: ConfigOpt = None) -> None:
    """Stop running RULE (or every rule) until resumed; triggers are still recorded."""
    _pause(rule, True, mongo, config)


@remediation_app.command("resume")
def resume(rule: RuleArg = None, mongo: MongoOpt = None, config: ConfigOpt = None) -> None:
    """Let RULE (or every rule) run again."""
    _pause(rule, False, mongo, config)


@remediation_app.command("reset-breaker")
def reset_breaker(
    rule: Annotated[str, typer.Argument(help="The rule whose breaker to close")],
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Close RULE's fleet breaker once the fleet-wide cause is fixed."""
    with _ledger(mongo, config) as ledger:
        _known_rule(ledger, rule)
        who = _operator()
        if not ledger.reset_breaker(rule, who):
            say(f"the breaker of rule {rule} is not open")
            return
        message = f"breaker of rule {rule} reset by {who}"
        _event(ledger, message, rule=rule)
    say(message)


def remediate(
    host: Annotated[str, typer.Argument(help="The client (host name) or hub to remediate")],
    rule: Annotated[str, typer.Option("--rule", help="The rule whose action to run")],
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Ask the master to remediate HOST with RULE after its next round, under the rule's
    limits (for a Nagios event handler)."""
    with _ledger(mongo, config) as ledger:
        _known_rule(ledger, rule)
        who = _operator()
        ledger.ask(rule, host, who)
        _event(ledger, f"{who} asked to remediate {host} (rule {rule})", rule=rule, target=host)
    say(
        f"asked: the master decides on {host} after its next round, under rule {rule}'s "
        "limits (hubctl remediation history)"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(remediation_app, name="remediation")
    app.command("remediate")(remediate)
