"""`hubctl member add|remove|replace`: change which hubs' mongods make up the replica set."""

from __future__ import annotations

from typing import Annotated

import typer

from hub.replset_members import add_member, remove_member, replace_member
from hubctl.cluster_option import ConfigOpt, MongoOpt, TimeoutOpt
from hubctl.output import EXIT_USAGE, fail, say
from hubctl.replset_commands import parse_address, replset

member_app = typer.Typer(help="Add, remove or replace a member of the replica set (a hub).")

CatchUpOpt = Annotated[
    float,
    typer.Option("--wait", help="Seconds a new member may take to catch up before it counts"),
]


def _named(text: str, what: str) -> tuple[str, str]:
    """HUB=HOST:PORT -> (hub, host:port)."""
    hub, sep, address = text.rpartition("=")
    if not sep or not hub or ":" in hub:
        fail(f"{what} {text!r}: expected HUB=HOST:PORT", EXIT_USAGE)
    return hub, parse_address(address)


@member_app.command("add")
def member_add(
    member: Annotated[str, typer.Argument(help="HUB=HOST:PORT of the new member")],
    priority: Annotated[
        float, typer.Option("--priority", help="Its priority once it has caught up")
    ] = 1.0,
    wait: CatchUpOpt = 60.0,
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
    timeout: TimeoutOpt = 5.0,
) -> None:
    """Add a hub's member: unelectable (priority 0) until it is a caught-up secondary."""
    hub, host = _named(member, "member")
    with replset(mongo, config, timeout) as rs:
        for step in add_member(rs, hub, host, priority, catch_up_timeout=wait):
            say(step)


@member_app.command("remove")
def member_remove(
    member: Annotated[str, typer.Argument(help="Hub name (hub1) or HOST:PORT")],
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
    timeout: TimeoutOpt = 5.0,
) -> None:
    """Remove a member; refused for the primary and when the rest would lack a majority."""
    with replset(mongo, config, timeout) as rs:
        for step in remove_member(rs, member):
            say(step)


@member_app.command("replace")
def member_replace(
    old: Annotated[str, typer.Argument(help="The member to replace: hub name or HOST:PORT")],
    new: Annotated[str, typer.Argument(help="HUB=HOST:PORT of its replacement")],
    wait: CatchUpOpt = 60.0,
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
    timeout: TimeoutOpt = 5.0,
) -> None:
    """Replace a (dead) member: add the new one, wait until it caught up, remove the old."""
    hub, host = _named(new, "NEW")
    with replset(mongo, config, timeout) as rs:
        for step in replace_member(rs, old, hub, host, catch_up_timeout=wait):
            say(step)
