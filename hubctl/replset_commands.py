"""hubctl's replica-set commands: init-replset, status, freeze, unfreeze, stepdown, maintenance."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.table import Table

from hub.replset import DEFAULT_MAX_LAG, ReplicaSet, ReplsetError, Topology
from hubcluster.config_check import split_address
from hubcluster.durations import format_duration, parse_duration
from hubctl.cluster_option import ConfigOpt, MongoOpt, TimeoutOpt, open_replset
from hubctl.output import EXIT_UNREACHABLE, EXIT_USAGE, ago, console, fail, print_json, say

maintenance_app = typer.Typer(help="Planned short outages of one member without a failover.")


@contextlib.contextmanager
def replset(mongo: str | None, config: object, timeout: float = 5.0) -> Iterator[ReplicaSet]:
    rs = open_replset(mongo, config, timeout)  # type: ignore[arg-type]
    try:
        yield rs
    except ReplsetError as exc:
        text = str(exc)
        fail(text, EXIT_UNREACHABLE if "cannot reach any member" in text else 1)
    finally:
        rs.close()


def _member(text: str) -> str:
    try:
        host, port = split_address(text)
    except ValueError as exc:
        fail(f"member {exc}", EXIT_USAGE)
    return f"{host}:{port}"


def render_topology(topo: Topology) -> Table:
    title = f"replica set {topo.set_name} - primary: {topo.primary or 'NONE'}"
    table = Table(title=title, title_justify="left")
    for column in ("Member", "State", "Health", "Priority", "Lag", "Frozen until"):
        table.add_column(column)
    for m in topo.members:
        state = f"[bold green]{m.state}[/]" if m.state == "PRIMARY" else m.state
        health = "[green]up[/]" if m.health else "[red]down[/]"
        lag = "-" if m.lag_seconds is None else format_duration(m.lag_seconds)
        frozen = ago(m.frozen_until) if m.frozen_until else "-"
        table.add_row(m.name, state, health, f"{m.priority:g}", lag, frozen)
    return table


def show(topo: Topology) -> None:
    console.print(render_topology(topo))
    if topo.maintenance:
        window = topo.maintenance
        say(f"maintenance window open for {window['member']}, lapses {ago(window['until'])}")


def init_replset(
    member: Annotated[list[str], typer.Option("--member", help="HOST:PORT of a member; repeat")],
    name: Annotated[str, typer.Option("--name", help="Replica-set name")] = "CFEngineNova",
    priority: Annotated[
        list[str] | None, typer.Option("--priority", help="HOST:PORT=N; repeat")
    ] = None,
    election_timeout: Annotated[
        str | None, typer.Option("--election-timeout", help="e.g. 10s (mongod's default)")
    ] = None,
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
    timeout: TimeoutOpt = 30.0,
) -> None:
    """Initiate the replica set (idempotent), wait for a primary, print the members."""
    members = [_member(m) for m in member]
    priorities: dict[str, float] = {}
    for item in priority or []:
        host, sep, value = item.rpartition("=")
        try:
            priorities[_member(host)] = float(value)
        except ValueError:
            fail(f"--priority {item!r}: expected HOST:PORT=NUMBER", EXIT_USAGE)
        if not sep:
            fail(f"--priority {item!r}: expected HOST:PORT=NUMBER", EXIT_USAGE)
    election_ms = None
    if election_timeout:
        try:
            election_ms = int(parse_duration(election_timeout) * 1000)
        except ValueError as exc:
            fail(f"--election-timeout: {exc}", EXIT_USAGE)
    # A direct seed (one member, directConnection) never shows a primary; speak to the set.
    if (mongo is None and config is None) or (mongo and "directconnection=true" in mongo.lower()):
        mongo = f"mongodb://{','.join(members)}/?replicaSet={name}"
    with replset(mongo, config, timeout=min(timeout, 5.0)) as rs:
        outcome = rs.initiate(members, name, priorities, election_ms, wait=timeout)
        say(f"replica set {name}: {outcome}")
        show(rs.topology())


def status(
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
    max_lag: Annotated[
        float, typer.Option("--max-lag", help="Seconds of lag that count as degraded")
    ] = DEFAULT_MAX_LAG,
    timeout: TimeoutOpt = 5.0,
) -> None:
    """Members and their state. Exit 0 healthy, 1 degraded, 2 no primary, 3 unreachable."""
    with replset(mongo, config, timeout) as rs:
        topo = rs.topology()
        side = hub_side(rs.uri) if topo.initiated else None
    if not topo.initiated:
        if as_json:
            print_json({"set": None, "primary": None, "members": [], "initiated": False})
        else:
            say("the replica set is not initiated yet (run hubctl init-replset)")
        raise typer.Exit(2)
    if as_json:
        doc = topo.to_json()
        if side:
            doc.update(side)
        print_json(doc)
    else:
        show(topo)
        if side:
            console.print(render_hub_side(side))
    raise typer.Exit(topo.health_code(max_lag))


def freeze(
    member: Annotated[str, typer.Argument(help="HOST:PORT of a secondary")],
    seconds: Annotated[str, typer.Argument(help="How long, e.g. 300 or 5m")],
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Keep a secondary from seeking election for a while."""
    try:
        secs = parse_duration(seconds)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    with replset(mongo, config) as rs:
        rs.freeze(_member(member), secs)
    say(f"{member} frozen for {format_duration(secs)}")


def unfreeze(
    member: Annotated[str, typer.Argument(help="HOST:PORT")],
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Let a frozen secondary seek election again."""
    with replset(mongo, config) as rs:
        rs.unfreeze(_member(member))
    say(f"{member} unfrozen")


def stepdown(
    seconds: Annotated[
        int, typer.Option("--seconds", help="How long the old primary stays out")
    ] = 60,
    catch_up: Annotated[
        int, typer.Option("--catch-up", help="Seconds to wait for a secondary to catch up")
    ] = 10,
    to: Annotated[
        str | None, typer.Option("--to", help="Planned switchover to this member")
    ] = None,
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
    timeout: TimeoutOpt = 30.0,
) -> None:
    """Step the primary down, or move it to --to MEMBER (others frozen meanwhile)."""
    if catch_up >= seconds:
        fail("--catch-up must be shorter than --seconds", EXIT_USAGE)
    with replset(mongo, config) as rs:
        if to:
            for step in rs.switchover(_member(to), seconds, catch_up, timeout):
                say(step)
        else:
            old = rs.stepdown(seconds, catch_up)
            new = rs.wait_for_primary(timeout, exclude=old)
            say(f"{old} stepped down; {new} is primary")


@maintenance_app.command("start")
def maintenance_start(
    member: Annotated[str, typer.Argument(help="HOST:PORT of the member to take down briefly")],
    duration: Annotated[str, typer.Option("--for", help="How long, e.g. 4h")],
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Freeze the other secondaries so a brief stop of MEMBER causes no election."""
    try:
        secs = parse_duration(duration)
    except ValueError as exc:
        fail(f"--for: {exc}", EXIT_USAGE)
    if secs <= 0:
        fail("--for must be longer than 0", EXIT_USAGE)
    with replset(mongo, config) as rs:
        for step in rs.maintenance_start(_member(member), secs):
            say(step)


@maintenance_app.command("end")
def maintenance_end(mongo: MongoOpt = None, config: ConfigOpt = None) -> None:
    """Unfreeze the secondaries and close the maintenance window."""
    with replset(mongo, config) as rs:
        for step in rs.maintenance_end():
            say(step)


def register(app: typer.Typer) -> None:
    app.command("init-replset")(init_replset)
    app.command("status")(status)
    app.command("freeze")(freeze)
    app.command("unfreeze")(unfreeze)
    app.command("stepdown")(stepdown)
    app.add_typer(maintenance_app, name="maintenance")


def hub_side(uri: str, stale_after: float = 900.0) -> dict | None:
    """Which hub collects, its last round, each hub's release and keys, fresh vs stale clients."""
    from pymongo.errors import PyMongoError

    from hub.events import now_utc
    from hub.mongo import connect
    from hub.store import HOSTS, LAST_SEEN, HubStore

    client = connect(uri, timeout=3.0)
    try:
        store = HubStore(client)
        states = store.hub_states()
        hosts = [
            d["_id"] for d in store.reading(HOSTS).find({"revoked": {"$ne": True}}, {"_id": 1})
        ]
        seen = {d["_id"]: d.get("latest") for d in store.reading(LAST_SEEN).find()}
    except PyMongoError:
        return None
    finally:
        client.close()
    if not states and not hosts:
        return None
    now = now_utc()
    fresh = 0
    for sha in hosts:
        when = seen.get(sha)
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=now.tzinfo)
        if when is not None and (now - when).total_seconds() <= stale_after:
            fresh += 1
    return {
        "hubs": [
            {
                "name": s["_id"],
                "role": s.get("role"),
                "release": s.get("release"),
                "keys": s.get("keys"),
                "last_round": (s.get("last_round") or {}).get("summary"),
                "round_progress": s.get("round_progress"),
                "updated": s.get("updated"),
            }
            for s in states
        ],
        "clients": {"fresh": fresh, "stale": len(hosts) - fresh},
    }


def render_hub_side(side: dict) -> Table:
    counts = side["clients"]
    table = Table(
        title=f"hubs - clients seen recently: {counts['fresh']}, stale: {counts['stale']}",
        title_justify="left",
    )
    for column in ("Hub", "Role", "Release", "Keys", "Collection", "Updated"):
        table.add_column(column)
    for h in side["hubs"]:
        role = "[bold green]master (collects)[/]" if h["role"] == "master" else (h["role"] or "?")
        progress = h["round_progress"]
        collection = (
            f"round running: {progress['done']}/{progress['due']}"
            if progress
            else h["last_round"] or "-"
        )
        table.add_row(
            h["name"],
            role,
            h["release"] or "-",
            str(h["keys"] if h["keys"] is not None else "-"),
            collection,
            ago(h["updated"]),
        )
    return table
