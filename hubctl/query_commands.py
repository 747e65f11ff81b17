"""`hubctl query ...` and `hubctl history`: reads from secondaries, tables or JSON."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from pymongo.errors import PyMongoError

from hub.events import list_events
from hub.mongo import connect
from hub.queries import Queries, QueryError, check_kind, read_preference
from hubctl.cluster_option import ConfigOpt, MongoOpt, resolve_uri
from hubctl.duration_option import LOOKBACK, STALENESS, duration_option
from hubctl.output import (
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    Table,
    ago,
    console,
    fail,
    print_json,
    say,
)

query_app = typer.Typer(help="Reporting queries, answered by secondaries.")

ReadPrefOpt = Annotated[
    str, typer.Option("--read-preference", help="primary, secondaryPreferred, nearest, ...")
]
StalenessOpt = Annotated[
    float,
    duration_option(
        "--max-staleness",
        allowed=STALENESS,
        help="How far a secondary may lag and still answer: 90s or more, 0 for no bound",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON on stdout")]


@contextmanager
def queries(
    mongo: str | None, config: Path | None, mode: str, staleness: float
) -> Iterator[Queries]:
    uri = resolve_uri(mongo, config)
    try:
        pref = read_preference(mode, staleness)
    except QueryError as exc:
        fail(str(exc), EXIT_USAGE)
    client = connect(uri, timeout=5.0)
    try:
        yield Queries(client, pref)
    except QueryError as exc:
        fail(str(exc))
    except PyMongoError as exc:
        fail(f"query failed: no member could answer ({str(exc).split(',')[0]})", EXIT_UNREACHABLE)
    finally:
        client.close()


@query_app.command("hosts")
def query_hosts(
    stale_after: Annotated[
        float | None,
        duration_option("--stale", allowed=LOOKBACK, help="Only hosts unseen for this long"),
    ] = None,
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
    mode: ReadPrefOpt = "secondaryPreferred",
    staleness: StalenessOpt = 90.0,
    as_json: JsonOpt = False,
) -> None:
    """Registered hosts, when any hub last saw them, and their collection state."""
    with queries(mongo, config, mode, staleness) as q:
        rows = q.hosts(stale_after)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} hosts", title_justify="left")
    # Few columns, so names fit at 80 columns; keys are in `keys list` and --json.
    for column in ("Host", "Address", "Last seen (by)", "Last pull", "Reports", "Last error"):
        table.add_column(column)
    for r in rows:
        seen_by = f" ({','.join(r['seen_by'])})" if r["seen_by"] else ""
        table.add_row(
            r["host"] + (" [red](revoked)[/]" if r["revoked"] else ""),
            r["address"],
            ago(r["last_seen"]) + seen_by,
            ago(r["last_pull"]),
            str(r["reports"]) + (f" [yellow]({r['lost']} lost)[/]" if r["lost"] else ""),
            r["last_error"] or "",
        )
    console.print(table)


@query_app.command("reports")
def query_reports(
    host: Annotated[str, typer.Argument(help="Hostname or host key (prefix)")],
    kind: Annotated[str | None, typer.Option("--kind", help="outcome or inventory")] = None,
    last: Annotated[int, typer.Option("--last", help="How many, newest last")] = 10,
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
    mode: ReadPrefOpt = "secondaryPreferred",
    staleness: StalenessOpt = 90.0,
    as_json: JsonOpt = False,
) -> None:
    """The latest reports one host sent."""
    if last < 1:
        fail("--last must be at least 1", EXIT_USAGE)
    try:
        check_kind(kind)
    except QueryError as exc:
        fail(f"--kind: {exc}", EXIT_USAGE)
    with queries(mongo, config, mode, staleness) as q:
        rows = q.reports(host, kind, last)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"reports of {host}", title_justify="left")
    for column in ("Seq", "Kind", "Time", "Payload"):
        table.add_column(column)
    for r in rows:
        when = dt.datetime.fromtimestamp(r["time"], dt.UTC)
        payload = json.dumps(r["payload"], default=str)
        # A preview: `--json` has the whole payload.
        preview = payload if len(payload) <= 120 else payload[:119] + "…"
        table.add_row(str(r["seq"]), r["kind"], f"{when:%Y-%m-%d %H:%M:%S}", preview)
    console.print(table)


@query_app.command("compliance")
def query_compliance(
    by: Annotated[
        str, typer.Option("--by", help="promise (across the fleet) or host (each host's run)")
    ] = "promise",
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
    mode: ReadPrefOpt = "secondaryPreferred",
    staleness: StalenessOpt = 90.0,
    as_json: JsonOpt = False,
) -> None:
    """Each host's latest run: kept, repaired, not kept; per promise or per host, and the fleet."""
    if by not in ("promise", "host"):
        fail(f"--by must be promise or host, not {by!r}", EXIT_USAGE)
    with queries(mongo, config, mode, staleness) as q:
        view = q.compliance()
    if as_json:
        print_json({"fleet": view["fleet"], f"{by}s": view[f"{by}s"]})
        return
    for line in fleet_lines(view["fleet"]):
        say(line)
    console.print(promise_table(view["promises"]) if by == "promise" else host_table(view["hosts"]))


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.0%}"


def fleet_lines(fleet: dict) -> list[str]:
    """The fleet's share compliant and how old the outcomes behind it are."""
    if not fleet["reporting"]:
        return [f"fleet: none of {fleet['hosts']} hosts has reported an outcome yet"]
    lines = [
        f"fleet: {fleet['compliant']}/{fleet['reporting']} hosts compliant "
        f"({_percent(fleet['share'])}); latest runs from {ago(fleet['oldest'])} "
        f"to {ago(fleet['newest'])}"
    ]
    silent = fleet["no_outcome"]
    if silent:
        named = ", ".join(silent[:5]) + (", ..." if len(silent) > 5 else "")
        lines.append(f"no outcome yet from {len(silent)} host(s): {named}")
    return lines


def promise_table(rows: list[dict]) -> Table:
    table = Table(title="per promise (latest run of each host)", title_justify="left")
    table.add_column("Promise")
    for column in ("Hosts", "Kept", "Repaired", "Not kept", "Skipped", "Compliant"):
        table.add_column(column, justify="right")
    for r in rows:
        bad = f"[red]{r['not_kept']}[/]" if r["not_kept"] else "0"
        table.add_row(
            r["promise"],
            str(r["hosts"]),
            str(r["kept"]),
            str(r["repaired"]),
            bad,
            str(r["skipped"]),
            _percent(r["share"]),
        )
    return table


def host_table(rows: list[dict]) -> Table:
    table = Table(title="per host (latest run)", title_justify="left")
    table.add_column("Host")
    for column in ("Kept", "Repaired", "Not kept", "Skipped"):
        table.add_column(column, justify="right")
    table.add_column("Ran")
    table.add_column("Not kept / error")
    for r in rows:
        problem = r["error"] or ", ".join(r["not_kept_promises"])
        table.add_row(
            r["host"] or r["key"][:12],
            str(r["kept"]),
            str(r["repaired"]),
            f"[red]{r['not_kept']}[/]" if r["not_kept"] else "0",
            str(r["skipped"]),
            ago(r["ran"]),
            f"[red]{problem}[/]" if problem else "",
        )
    return table


def history(
    seconds: Annotated[
        float | None, duration_option("--since", allowed=LOOKBACK, help="e.g. 1h, 2d")
    ] = None,
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
    staleness: StalenessOpt = 90.0,
    as_json: JsonOpt = False,
) -> None:
    """The cluster's timeline: master changes, collectors, freezes, stepdowns, maintenance, ..."""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds) if seconds else None
    uri = resolve_uri(mongo, config)
    client = connect(uri, timeout=5.0)
    try:
        events = list_events(client, start, staleness)
    except PyMongoError as exc:
        fail(f"history: no member could answer ({str(exc).split(',')[0]})", EXIT_UNREACHABLE)
    finally:
        client.close()
    if as_json:
        print_json(events)
        return
    table = Table(title=f"{len(events)} events", title_justify="left")
    for column in ("Time (UTC)", "Kind", "What happened", "By"):
        table.add_column(column)
    for e in events:
        table.add_row(f"{e['time']:%Y-%m-%d %H:%M:%S}", e["kind"], e["message"], e.get("by", ""))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(query_app, name="query")
    app.command("history")(history)
