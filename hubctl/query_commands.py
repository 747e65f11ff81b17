"""`hubctl query ...` and `hubctl history`: reads from secondaries, tables or JSON."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from pymongo.errors import PyMongoError
from rich.table import Table

from hub.events import list_events
from hub.mongo import connect
from hub.queries import Queries, QueryError, read_preference
from hubcluster.durations import parse_duration
from hubctl.cluster_option import ConfigOpt, MongoOpt, resolve_uri
from hubctl.output import EXIT_UNREACHABLE, EXIT_USAGE, ago, console, fail, print_json

query_app = typer.Typer(help="Reporting queries, answered by secondaries.")

ReadPrefOpt = Annotated[
    str, typer.Option("--read-preference", help="primary, secondaryPreferred, nearest, ...")
]
StalenessOpt = Annotated[
    float, typer.Option("--max-staleness", help="Seconds (>= 90); 0 means no bound")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON on stdout")]


@contextmanager
def queries(mongo: str | None, config: object, mode: str, staleness: float) -> Iterator[Queries]:
    uri = resolve_uri(mongo, config)  # type: ignore[arg-type]
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


def _duration(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        fail(f"{option}: {exc}", EXIT_USAGE)


@query_app.command("hosts")
def query_hosts(
    stale: Annotated[
        str | None, typer.Option("--stale", help="Only hosts unseen for this long")
    ] = None,
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
    mode: ReadPrefOpt = "secondaryPreferred",
    staleness: StalenessOpt = 90.0,
    as_json: JsonOpt = False,
) -> None:
    """Registered hosts, when any hub last saw them, and their collection state."""
    stale_after = _duration(stale, "--stale")
    with queries(mongo, config, mode, staleness) as q:
        rows = q.hosts(stale_after)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} hosts", title_justify="left")
    for column in (
        "Host",
        "Key",
        "Address",
        "Last seen",
        "Seen by",
        "Last pull",
        "Reports",
        "Last error",
    ):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["host"] + (" [red](revoked)[/]" if r["revoked"] else ""),
            r["key"][:12],
            r["address"],
            ago(r["last_seen"]),
            ",".join(r["seen_by"]) or "-",
            ago(r["last_pull"]),
            str(r["reports"]),
            r["last_error"] or "",
        )
    console.print(table)


@query_app.command("reports")
def query_reports(
    host: Annotated[str, typer.Argument(help="Hostname or host key (prefix)")],
    kind: Annotated[str | None, typer.Option("--kind", help="compliance, inventory, ...")] = None,
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
        table.add_row(str(r["seq"]), r["kind"], f"{when:%Y-%m-%d %H:%M:%S}", payload[:120])
    console.print(table)


@query_app.command("compliance")
def query_compliance(
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
    mode: ReadPrefOpt = "secondaryPreferred",
    staleness: StalenessOpt = 90.0,
    as_json: JsonOpt = False,
) -> None:
    """Per promise across the fleet (each host's latest run): kept, repaired, not kept."""
    with queries(mongo, config, mode, staleness) as q:
        rows = q.compliance()
    if as_json:
        print_json(rows)
        return
    table = Table(title="compliance (latest run per host)", title_justify="left")
    for column in ("Promise", "Kept", "Repaired", "Not kept", "Skipped", "Hosts"):
        table.add_column(column)
    for r in rows:
        bad = f"[red]{r['not_kept']}[/]" if r["not_kept"] else "0"
        table.add_row(
            r["promise"],
            str(r["kept"]),
            str(r["repaired"]),
            bad,
            str(r["skipped"]),
            str(r["hosts"]),
        )
    console.print(table)


def history(
    since: Annotated[str | None, typer.Option("--since", help="e.g. 1h, 2d")] = None,
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
    staleness: StalenessOpt = 90.0,
    as_json: JsonOpt = False,
) -> None:
    """The cluster's timeline: master changes, collectors, freezes, stepdowns, maintenance, ..."""
    seconds = _duration(since, "--since")
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
