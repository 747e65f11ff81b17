"""hubctl's replica-set commands: init-replset, status, freeze, unfreeze, stepdown, maintenance."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from hub.db_users import DbUsersError, read_user_passwords
from hub.hub_roles import UNREACHABLE, classify_hubs
from hub.maintenance_window import close_maintenance, open_maintenance
from hub.mongo_access import AccessError
from hub.replset import ReplicaSet
from hub.supervisor import published_problems
from hub.topology import DEFAULT_MAX_LAG, ReplsetError, ReplsetUnreachable, Topology
from hubcluster.config_check import split_address
from hubcluster.durations import format_duration
from hubcluster.exit_codes import EXIT_OK
from hubctl.cluster_option import ConfigOpt, MongoOpt, TimeoutOpt, open_replset
from hubctl.confirmation import confirm_or_cancel
from hubctl.duration_option import (
    CATCH_UP,
    ELECTION_TIMEOUT,
    FREEZE,
    LAG,
    MAINTENANCE,
    STEPDOWN,
    duration_argument,
    duration_option,
)
from hubctl.init_access import initiate_with_users
from hubctl.output import (
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    Table,
    ago,
    console,
    fail,
    print_json,
    say,
)

maintenance_app = typer.Typer(help="Planned short outages of one member without a failover.")


@contextlib.contextmanager
def replset(mongo: str | None, config: Path | None, timeout: float = 5.0) -> Iterator[ReplicaSet]:
    rs = open_replset(mongo, config, timeout)
    try:
        yield rs
    except ReplsetUnreachable as exc:
        fail(str(exc), EXIT_UNREACHABLE)
    except ReplsetError as exc:
        fail(str(exc))
    finally:
        rs.close()


def parse_address(text: str) -> str:
    try:
        host, port = split_address(text)
    except ValueError as exc:
        fail(f"member {exc}", EXIT_USAGE)
    return f"{host}:{port}"


def _member(text: str) -> str:
    """A member as the operator gave it: its hub name (hub1) or its address (host:port).

    Hub names are resolved against the set's tags by the command itself.
    """
    if ":" in text:
        return parse_address(text)
    if not text or not text.replace("-", "").replace("_", "").replace(".", "").isalnum():
        fail(f"member {text!r}: expected a hub name (hub1) or HOST:PORT", EXIT_USAGE)
    return text


def _named_member(text: str) -> tuple[str | None, str]:
    """--member HUB=HOST:PORT or HOST:PORT -> (hub name or None, host:port)."""
    name, sep, address = text.rpartition("=")
    if not sep:
        return None, parse_address(text)
    if not name or ":" in name:
        fail(f"--member {text!r}: expected HUB=HOST:PORT or HOST:PORT", EXIT_USAGE)
    return name, parse_address(address)


def render_topology(topo: Topology) -> Table:
    primary = topo.primary_view()
    title = f"replica set {topo.set_name} - primary: {primary.label if primary else 'NONE'}"
    table = Table(title=title, title_justify="left")
    for column in ("Hub", "Member", "State", "Health", "Priority", "Lag", "Frozen until"):
        table.add_column(column)
    for m in topo.members:
        state = f"[bold green]{m.state}[/]" if m.state == "PRIMARY" else m.state
        if m.hidden:
            state += " (hidden)"
        health = "[green]up[/]" if m.health else "[red]down[/]"
        lag = "-" if m.lag_seconds is None else format_duration(m.lag_seconds)
        frozen = ago(m.frozen_until) if m.frozen_until else "-"
        table.add_row(m.hub or "-", m.name, state, health, f"{m.priority:g}", lag, frozen)
    return table


def show(topo: Topology) -> None:
    console.print(render_topology(topo))
    if topo.maintenance:
        window = topo.maintenance
        who = next((m.label for m in topo.members if m.name == window["member"]), window["member"])
        say(f"maintenance window open for {who}, lapses {ago(window['until'])}")


def _names_from_config(config: Path | None) -> dict[str, str]:
    """host:port -> hub name from a hub config's [[hubs]], for members given without a name."""
    if config is None:
        return {}
    from hub.config import load_hub_config
    from hubcluster.config_check import ConfigError

    try:
        return {h.mongo: h.name for h in load_hub_config(config).hubs}
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)


def init_replset(
    member: Annotated[
        list[str],
        typer.Option("--member", help="HUB=HOST:PORT (or HOST:PORT) of a member; repeat"),
    ],
    name: Annotated[str, typer.Option("--name", help="Replica-set name")] = "CFEngineNova",
    priority: Annotated[
        list[str] | None, typer.Option("--priority", help="HUB=N or HOST:PORT=N; repeat")
    ] = None,
    election_timeout: Annotated[
        float | None,
        duration_option(
            "--election-timeout", allowed=ELECTION_TIMEOUT, help="e.g. 10s (mongod's default)"
        ),
    ] = None,
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
    timeout: TimeoutOpt = 30.0,
    create_users: Annotated[
        Path | None,
        typer.Option(
            "--create-users",
            help="DIR with one password file (mode 0600) per user: hubcluster-admin, hubd, "
            "operator, reader. Creates the roles and users (through the localhost exception: "
            "run it on the primary's host); a rerun updates them",
        ),
    ] = None,
) -> None:
    """Initiate the replica set (idempotent), wait for a primary, print the members.

    Each member's hub name becomes its `hub` tag; a member given as HOST:PORT alone takes
    its name from --config's [[hubs]], or has none.
    """
    passwords = None
    if create_users is not None:
        try:
            passwords = read_user_passwords(create_users)
        except AccessError as exc:
            fail(str(exc), EXIT_USAGE)
    named = [_named_member(m) for m in member]
    members = [address for _, address in named]
    hub_names = _names_from_config(config)
    hub_names.update({address: hub for hub, address in named if hub})
    hub_names = {a: n for a, n in hub_names.items() if a in members}
    taken = [n for n in hub_names.values() if list(hub_names.values()).count(n) > 1]
    if taken:
        fail(f"--member: hub name {taken[0]} given to more than one member", EXIT_USAGE)
    by_hub = {n: a for a, n in hub_names.items()}
    priorities: dict[str, float] = {}
    for item in priority or []:
        who, sep, value = item.rpartition("=")
        if not sep or not who:
            fail(f"--priority {item!r}: expected HUB=NUMBER or HOST:PORT=NUMBER", EXIT_USAGE)
        address = by_hub.get(who) or parse_address(who)
        try:
            priorities[address] = float(value)
        except ValueError:
            fail(f"--priority {item!r}: expected HUB=NUMBER or HOST:PORT=NUMBER", EXIT_USAGE)
    election_ms = None if election_timeout is None else int(election_timeout * 1000)
    # A direct seed (one member, directConnection) never shows a primary; speak to the set.
    if (mongo is None and config is None) or (mongo and "directconnection=true" in mongo.lower()):
        mongo = f"mongodb://{','.join(members)}/?replicaSet={name}"
    with replset(mongo, config, timeout=min(timeout, 5.0)) as rs:

        def initiate(target: ReplicaSet, record: bool) -> str:
            return target.initiate(
                members, name, priorities, election_ms, timeout, hub_names, record=record
            )

        if passwords is None:
            outcome = initiate(rs, True)
        else:
            try:
                outcome, changes = initiate_with_users(
                    rs.uri, min(timeout, 5.0), passwords, initiate, members, name
                )
            except DbUsersError as exc:
                fail(str(exc))
            say("; ".join(changes))
        say(f"replica set {name}: {outcome}")
        if passwords is None:
            show(rs.topology())
            return
    as_operator = ReplicaSet(rs.uri, rs.timeout)  # rs's client predates the users
    try:
        show(as_operator.topology())
    except ReplsetError as exc:
        fail(str(exc))
    finally:
        as_operator.close()


STATUS_HEALTH = {0: "healthy", 1: "degraded", 2: "no primary"}


def status(
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
    max_lag: Annotated[
        float, duration_option("--max-lag", allowed=LAG, help="Lag that counts as degraded")
    ] = DEFAULT_MAX_LAG,
    timeout: TimeoutOpt = 5.0,
) -> None:
    """Members and their state.

    Exit 0 healthy, 1 degraded or no primary (the JSON's "health" and the last line say
    which), 2 usage, 3 unreachable.
    """
    with replset(mongo, config, timeout) as rs:
        topo = rs.topology()
        side = hub_side(rs.uri, topo) if topo.initiated else None
    if not topo.initiated:
        if as_json:
            print_json(
                {
                    "set": None,
                    "primary": None,
                    "members": [],
                    "initiated": False,
                    "health": "not initiated",
                }
            )
        else:
            say("the replica set is not initiated yet (run hubctl init-replset)")
        raise typer.Exit(EXIT_FAILED)
    # One status for "not as it should be" keeps 2 for usage, as in every other command.
    health = STATUS_HEALTH[topo.health_code(max_lag)]
    if as_json:
        doc = topo.to_json()
        if side:
            doc.update(side)
        doc["health"] = health
        print_json(doc)
    else:
        show(topo)
        if side:
            console.print(render_hub_side(side))
        say(f"health: {health}")
    raise typer.Exit(EXIT_OK if health == "healthy" else EXIT_FAILED)


def freeze(
    member: Annotated[str, typer.Argument(help="Hub name (hub1) or HOST:PORT of a secondary")],
    secs: Annotated[int, duration_argument(FREEZE, "How long, e.g. 300 or 5m", "SECONDS")],
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Keep a secondary from seeking election for a while."""
    with replset(mongo, config) as rs:
        rs.freeze(_member(member), secs)
        label = rs.topology().member(member).label
    say(f"{label} frozen for {format_duration(secs)}")


def unfreeze(
    member: Annotated[str, typer.Argument(help="Hub name (hub1) or HOST:PORT")],
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Let a frozen secondary seek election again."""
    with replset(mongo, config) as rs:
        rs.unfreeze(_member(member))
        label = rs.topology().member(member).label
    say(f"{label} unfrozen")


def stepdown(
    seconds: Annotated[
        int,
        duration_option("--seconds", allowed=STEPDOWN, help="How long the old primary stays out"),
    ] = 60,
    catch_up: Annotated[
        int,
        duration_option(
            "--catch-up", allowed=CATCH_UP, help="How long to wait for a secondary to catch up"
        ),
    ] = 10,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Planned switchover to this member (hub name or HOST:PORT)"),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask before a switchover")
    ] = False,
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
    timeout: TimeoutOpt = 30.0,
) -> None:
    """Step the primary down, or move it to --to MEMBER (checked first, others frozen)."""
    if catch_up >= seconds:
        fail("--catch-up must be shorter than --seconds", EXIT_USAGE)
    with replset(mongo, config) as rs:
        if to:
            target = _member(to)
            plan = rs.plan_switchover(target, catch_up)
            if not plan.nothing_to_do:
                for line in plan.describe():
                    say(line)
                confirm_or_cancel(yes, "switchover")
            for step in rs.switchover(target, seconds, catch_up, timeout):
                say(step)
        else:
            old = rs.stepdown(seconds, catch_up)
            new = rs.wait_for_primary(timeout, exclude=old)
            topo = rs.topology()
            say(f"{topo.member(old).label} stepped down; {topo.member(new).label} is primary")


@maintenance_app.command("start")
def maintenance_start(
    member: Annotated[
        str, typer.Argument(help="Hub name (hub1) or HOST:PORT of the member to take down")
    ],
    secs: Annotated[int, duration_option("--for", allowed=MAINTENANCE, help="How long, e.g. 4h")],
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Freeze the other secondaries so a brief stop of MEMBER causes no election."""
    with replset(mongo, config) as rs:
        for step in open_maintenance(rs, _member(member), secs):
            say(step)


@maintenance_app.command("end")
def maintenance_end(mongo: MongoOpt = None, config: ConfigOpt = None) -> None:
    """Unfreeze the secondaries and close the maintenance window."""
    with replset(mongo, config) as rs:
        for step in close_maintenance(rs):
            say(step)


def register(app: typer.Typer) -> None:
    app.command("init-replset")(init_replset)
    app.command("status")(status)
    app.command("freeze")(freeze)
    app.command("unfreeze")(unfreeze)
    app.command("stepdown")(stepdown)
    app.add_typer(maintenance_app, name="maintenance")


def hub_side(uri: str, topology: Topology | None, stale_after: float = 900.0) -> dict | None:
    """Each hub's role (judged by hub.hub_roles), release, keys and last round; clients
    seen recently vs stale."""
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
    hubs = []
    for r in classify_hubs(states, topology, now):
        s = r.state
        hubs.append(
            {
                **r.to_json(),
                "role_shown": r.label,
                "reported_role": s.get("role"),
                "release": s.get("release"),
                "keys": s.get("keys"),
                "last_round": (s.get("last_round") or {}).get("summary"),
                "round_progress": s.get("round_progress"),
                "updated": s.get("updated"),
                "version": s.get("version"),
                "started": s.get("started"),
                # A silent hub's last problems are not news; its silence is.
                "problems": []
                if r.role == UNREACHABLE
                else [p for said in published_problems(r.name, s) for p in said],
            }
        )
    return {"hubs": hubs, "clients": {"fresh": fresh, "stale": len(hosts) - fresh}}


def render_hub_side(side: dict) -> Table:
    counts = side["clients"]
    table = Table(
        title=f"hubs - clients seen recently: {counts['fresh']}, stale: {counts['stale']}",
        title_justify="left",
    )
    for column in ("Hub", "Role", "Release", "Keys", "Collection", "Updated"):
        table.add_column(column)
    for h in side["hubs"]:
        role = h["role_shown"]
        if h["role"] == "master":
            role = f"[bold green]{role}[/]"
        elif h["role"] == "unreachable":
            role = f"[red]{role}[/]"
        progress = h["round_progress"]
        collection = (
            f"round running: {progress['done']}/{progress['due']}"
            if progress
            else h["last_round"] or "-"
        )
        where = f"{h['name']} ({h['member']})" if h["member"] else h["name"]
        table.add_row(
            where,
            role,
            h["release"] or "-",
            str(h["keys"] if h["keys"] is not None else "-"),
            collection,
            ago(h["updated"]),
        )
    problems = [p for h in side["hubs"] for p in h.get("problems") or []]
    if problems:
        table.caption = "[red]" + "\n".join(problems) + "[/]"
        table.caption_justify = "left"
    return table
