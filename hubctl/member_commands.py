"""`hubctl member add|remove|replace`: change which hubs' mongods make up the replica set.

Each command shows its plan (one reconfig per step) and asks on a terminal before it
changes anything; a refusal is one line naming the reason, and nothing is changed. A new
hub's member joins at priority 0; the command then waits until the new hub has caught up
and raises its priority itself (hubd's database user may not reconfigure the set), so one
command does the whole replacement. `member promote` finishes a wait cut short.
"""

from __future__ import annotations

from typing import Annotated

import typer

from hub.member_promotion import Promotions
from hub.membership import Membership, MembershipPlan
from hub.replset import ReplicaSet
from hubctl.cluster_option import ConfigOpt, MongoOpt, TimeoutOpt
from hubctl.confirmation import confirm_or_cancel
from hubctl.duration_option import WAIT, duration_option
from hubctl.output import EXIT_USAGE, fail, say
from hubctl.replset_commands import parse_address, replset

member_app = typer.Typer(help="Add, remove or replace a member of the replica set (a hub).")

WaitOpt = Annotated[
    float,
    duration_option(
        "--wait",
        allowed=WAIT,
        help="How long the new hub may take to catch up before it is made electable",
    ),
]
NoWaitOpt = Annotated[
    bool,
    typer.Option("--no-wait", help="Leave it at priority 0; hubctl member promote finishes"),
]
CATCH_UP = 600.0
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before changing the set")]


def _named(text: str, what: str) -> tuple[str, str]:
    """HUB=HOST:PORT -> (hub, host:port)."""
    hub, sep, address = text.rpartition("=")
    if not sep or not hub or ":" in hub:
        fail(f"{what} {text!r}: expected HUB=HOST:PORT", EXIT_USAGE)
    return hub, parse_address(address)


def _carry_out(rs: ReplicaSet, plan: MembershipPlan, yes: bool, wait: float | None) -> None:
    """Show the plan, ask, apply it; then wait (at most `wait`) to make the new hub electable."""
    for line in plan.describe():
        say(line)
    confirm_or_cancel(yes, plan.title)
    for line in Membership(rs).apply(plan):
        say(line)
    if plan.promotion is not None and wait is not None:
        say(Promotions(rs).wait_promoted(plan.promotion.host, wait))


@member_app.command("add")
def member_add(
    member: Annotated[str, typer.Argument(help="HUB=HOST:PORT of the new hub's mongod")],
    priority: Annotated[
        float, typer.Option("--priority", help="Its priority once it has caught up", min=0)
    ] = 1.0,
    wait: WaitOpt = CATCH_UP,
    no_wait: NoWaitOpt = False,
    yes: YesOpt = False,
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
    timeout: TimeoutOpt = 5.0,
) -> None:
    """Add a hub's member: priority 0 until it has caught up, then --priority."""
    hub, host = _named(member, "member")
    with replset(mongo, config, timeout) as rs:
        plan = Membership(rs).plan_add(hub, host, priority)
        _carry_out(rs, plan, yes, None if no_wait else wait)


@member_app.command("remove")
def member_remove(
    member: Annotated[str, typer.Argument(help="Hub name (hub1) or HOST:PORT")],
    yes: YesOpt = False,
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
    timeout: TimeoutOpt = 5.0,
) -> None:
    """Remove a member; refused for the primary and when the rest would lack a majority."""
    with replset(mongo, config, timeout) as rs:
        _carry_out(rs, Membership(rs).plan_remove(member), yes, None)


@member_app.command("replace")
def member_replace(
    old: Annotated[str, typer.Argument(help="The hub to replace: hub name or HOST:PORT")],
    new: Annotated[str, typer.Argument(help="HUB=HOST:PORT of its replacement's mongod")],
    wait: WaitOpt = CATCH_UP,
    no_wait: NoWaitOpt = False,
    yes: YesOpt = False,
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
    timeout: TimeoutOpt = 5.0,
) -> None:
    """Replace a (dead) hub: remove it, add the new one; it takes the old one's priority
    once it has caught up."""
    hub, host = _named(new, "NEW")
    with replset(mongo, config, timeout) as rs:
        plan = Membership(rs).plan_replace(old, hub, host)
        _carry_out(rs, plan, yes, None if no_wait else wait)


@member_app.command("promote")
def member_promote(
    member: Annotated[str, typer.Argument(help="The new hub: hub name or HOST:PORT")],
    wait: WaitOpt = CATCH_UP,
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
    timeout: TimeoutOpt = 5.0,
) -> None:
    """Make a new hub electable once it has caught up (what add/replace wait for)."""
    with replset(mongo, config, timeout) as rs:
        host = rs.topology().member(member).name
        say(Promotions(rs).wait_promoted(host, wait))


def register(app: typer.Typer) -> None:
    app.add_typer(member_app, name="member")
