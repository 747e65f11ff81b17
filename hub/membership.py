"""Changing who is in the replica set: add a hub's member, remove one, replace a dead one.

A change is planned first, every check made before anything is sent, so a refused change
leaves the set as it was. It is then applied as one replSetReconfig per step on the
primary, each with the config version bumped, because mongod allows only one voting
member added or removed per reconfig. Refused as mongod would refuse, but before it is
asked: a step after which the healthy voting members are no majority of the new config,
and removing the primary (it must step down first).

A new member joins with priority 0, so it cannot be elected before it holds the cluster's
data, client keys and masterfiles. The priority it should get waits in PROMOTIONS; the
master hub's hubd raises it (promote_caught_up) once the member is a caught-up secondary
and the new hub's own hubd reports the set's release generation and the master's key count.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pymongo.errors import PyMongoError

from hub.events import now_utc
from hub.hub_roles import DEFAULT_STATE_INTERVAL, SILENT_INTERVALS
from hub.mongo import DB_NAME, SURVIVES_FAILOVER
from hub.replset import (
    HUB_TAG,
    MemberView,
    ReplicaSet,
    ReplsetError,
    Topology,
    explain_failure,
    hub_tags,
)

# Pending priority raises: {_id: host, hub, priority, requested, by, waiting}.
PROMOTIONS = "member_promotions"
# mongod's limits: voting members per set, members per set.
MAX_VOTING = 7
MAX_MEMBERS = 50
# A new member this close to the primary has caught up (seconds of oplog).
CAUGHT_UP_LAG = 5.0

Members = list[dict[str, Any]]


@dataclass
class Step:
    """One reconfig: what it does to the members list, said in one line."""

    what: str
    change: Callable[[Members], Members]
    event: str
    details: dict[str, Any]


@dataclass
class Promotion:
    host: str
    hub: str
    priority: float


@dataclass
class MembershipPlan:
    title: str
    steps: list[Step]
    notes: list[str] = field(default_factory=list)
    promotion: Promotion | None = None

    def describe(self) -> list[str]:
        lines = [self.title]
        lines += [f"  {i}. {s.what}" for i, s in enumerate(self.steps, 1)]
        return lines + self.notes


def _voters(members: Members) -> list[str]:
    return [c["host"] for c in members if c.get("votes", 1)]


def majority_problem(members: Members, healthy: set[str]) -> str | None:
    """Why a set of `members` with these healthy hosts could elect no primary, or None."""
    voters = _voters(members)
    up = [v for v in voters if v in healthy]
    need = len(voters) // 2 + 1
    if len(up) >= need:
        return None
    return (
        f"it would leave {len(up)} healthy voting member(s) of {len(voters)}, fewer than "
        f"the {need} a majority needs"
    )


def _adding(hub: str, host: str, members: Members) -> Step:
    # mongod: at most 7 voting members; a non-voting member must have priority 0 for good.
    votes = 1 if len(_voters(members)) < MAX_VOTING else 0

    def change(current: Members) -> Members:
        entry = {
            "_id": max((int(c["_id"]) for c in current), default=-1) + 1,
            "host": host,
            "priority": 0,
            "votes": votes,
            "tags": {HUB_TAG: hub},
        }
        return [*current, entry]

    how = "priority 0" if votes else "priority 0, non-voting (the set has 7 voters)"
    return Step(
        f"add {hub} ({host}) with {how}",
        change,
        "member-add",
        {"member": host, "hub": hub, "votes": votes},
    )


def _removing(view: MemberView) -> Step:
    return Step(
        f"remove {view.label}",
        lambda current: [c for c in current if c["host"] != view.name],
        "member-remove",
        {"member": view.name, "hub": view.hub},
    )


def _check(steps: list[Step], members: Members, healthy: set[str], verb: str) -> None:
    """Refuse (ReplsetError) when a step would leave the set without a majority."""
    for step in steps:
        members = step.change(members)
        problem = majority_problem(members, healthy)
        if problem:
            raise ReplsetError(f"refusing to {verb}: {step.what} - {problem}")
        if len(members) > MAX_MEMBERS:
            raise ReplsetError(f"refusing to {verb}: a set has at most {MAX_MEMBERS} members")


def _primary(topo: Topology) -> str:
    if topo.primary is None:
        raise ReplsetError("there is no primary: the set cannot be reconfigured now")
    return topo.primary


def _not_primary(view: MemberView, topo: Topology, verb: str) -> None:
    if view.name == topo.primary:
        raise ReplsetError(
            f"refusing to {verb} {view.label}: it is the primary; move it first "
            "(hubctl stepdown --to another member)"
        )


def _healthy(topo: Topology) -> set[str]:
    return {m.name for m in topo.members if m.health}


def _new_member_problem(config: dict[str, Any], hub: str, host: str, answers: bool) -> None:
    members = config["members"]
    if host in {c["host"] for c in members}:
        raise ReplsetError(f"refusing to add {hub}: {host} is already a member of the set")
    taken = {name: h for h, name in hub_tags(config).items()}
    if hub in taken:
        raise ReplsetError(f"refusing to add {hub}: the name is taken by {taken[hub]}")
    if not answers:
        raise ReplsetError(f"refusing to add {hub} ({host}): its mongod does not answer")


class Membership:
    """Plans and applies member changes on the set behind `rs`."""

    def __init__(self, rs: ReplicaSet) -> None:
        self.rs = rs

    def config(self, primary: str) -> dict[str, Any]:
        try:
            return self.rs.member_command(primary, "replSetGetConfig")["config"]
        except PyMongoError as exc:
            raise explain_failure(exc, f"replSetGetConfig on {primary}") from None

    def answers(self, host: str) -> bool:
        try:
            self.rs.member_command(host, "ping", timeout=min(self.rs.timeout, 2.0))
        except PyMongoError:
            return False
        return True

    # ----- plans --------------------------------------------------------------------------
    def plan_add(self, hub: str, host: str, priority: float = 1.0) -> MembershipPlan:
        topo = self.rs.topology()
        config = self.config(_primary(topo))
        answers = self.answers(host)
        _new_member_problem(config, hub, host, answers)
        step = _adding(hub, host, config["members"])
        _check([step], config["members"], _healthy(topo) | {host}, f"add {hub}")
        return self._with_promotion(f"add {hub} ({host})", [step], hub, host, priority)

    def plan_remove(self, member: str) -> MembershipPlan:
        topo = self.rs.topology()
        config = self.config(_primary(topo))
        view = topo.member(member)
        _not_primary(view, topo, "remove")
        step = _removing(view)
        _check([step], config["members"], _healthy(topo), f"remove {view.label}")
        return MembershipPlan(f"remove {view.label}", [step])

    def plan_replace(self, old: str, hub: str, host: str) -> MembershipPlan:
        """Remove `old`, add `host`; or add first when removing first would lose a majority.

        Removing a dead member first never holds majority writes up on a member still
        syncing; adding first is the way left when the set is already short of healthy
        voters, and then the new hub needs a name of its own.
        """
        topo = self.rs.topology()
        config = self.config(_primary(topo))
        view = topo.member(old)
        _not_primary(view, topo, "replace")
        answers = self.answers(host)
        healthy = _healthy(topo) | {host}
        members = config["members"]
        remove = _removing(view)
        verb = f"replace {view.label}"
        refusal: ReplsetError | None = None
        for first_remove in (True, False):
            try:
                if first_remove:
                    after = {**config, "members": remove.change(members)}
                    _new_member_problem(after, hub, host, answers)
                    steps = [remove, _adding(hub, host, after["members"])]
                else:
                    _new_member_problem(config, hub, host, answers)
                    steps = [_adding(hub, host, members), remove]
                _check(steps, members, healthy, verb)
            except ReplsetError as exc:
                refusal = refusal or exc
                continue
            title = f"replace {view.label} by {hub} ({host})"
            return self._with_promotion(title, steps, hub, host, view.priority)
        assert refusal is not None
        raise refusal

    def _with_promotion(
        self, title: str, steps: list[Step], hub: str, host: str, priority: float
    ) -> MembershipPlan:
        plan = MembershipPlan(title, steps)
        votes = next(s for s in steps if s.event == "member-add").details["votes"]
        if priority > 0 and votes:
            plan.promotion = Promotion(host, hub, priority)
            plan.notes.append(
                f"then the master hub raises {hub}'s priority to {priority:g} once it has "
                "caught up (its member a secondary, its hubd holding the cluster's release "
                "and keys)"
            )
        elif priority > 0:
            plan.notes.append(f"{hub} stays non-voting with priority 0: it can never be elected")
        return plan

    # ----- applying -----------------------------------------------------------------------
    def apply(self, plan: MembershipPlan) -> list[str]:
        """Run the plan's steps; one line per step done. A failed step names what was done."""
        done: list[str] = []
        for step in plan.steps:
            try:
                primary = _primary(self.rs.topology())
                config = self.config(primary)
                self.reconfig(primary, config, step.change(config["members"]), step.what)
            except ReplsetError as exc:
                so_far = f" (done: {'; '.join(done)})" if done else " (nothing was changed)"
                raise ReplsetError(f"{exc}{so_far}") from None
            self.rs.event(step.event, f"member change: {step.what}", **step.details)
            done.append(f"{step.what}: done")
        if plan.promotion is not None:
            self.request_promotion(plan.promotion)
            done.append(f"{plan.promotion.hub} waits to be caught up before it may be elected")
        if len(plan.steps) > 1:
            self.rs.event("member-replace", f"member change: {plan.title}")
        return done

    def reconfig(self, primary: str, config: dict[str, Any], members: Members, what: str) -> None:
        new = {**config, "members": members, "version": int(config["version"]) + 1}
        new.pop("term", None)  # mongod sets the term itself
        try:
            self.rs.member_command(primary, "replSetReconfig", new)
        except PyMongoError as exc:
            raise explain_failure(exc, what) from None

    # ----- promotions ---------------------------------------------------------------------
    def _promotions(self) -> Any:
        return self.rs.client[DB_NAME].get_collection(PROMOTIONS, write_concern=SURVIVES_FAILOVER)

    def request_promotion(self, p: Promotion) -> None:
        doc = {"hub": p.hub, "priority": p.priority, "requested": now_utc(), "waiting": None}
        try:
            self._promotions().replace_one({"_id": p.host}, {"_id": p.host, **doc}, upsert=True)
        except PyMongoError as exc:
            raise explain_failure(
                exc, f"{p.hub} was added with priority 0, but its promotion was not recorded"
            ) from None

    def pending(self) -> list[dict[str, Any]]:
        try:
            return list(self._promotions().find())
        except PyMongoError as exc:
            raise explain_failure(exc, "reading pending promotions") from None

    def wait_promoted(self, host: str, timeout: float) -> str:
        """Wait until the master hub raised `host`'s priority; raise naming what it waits on."""
        deadline = time.monotonic() + timeout
        waiting = "not looked at yet"
        while True:
            pending = next((p for p in self.pending() if p["_id"] == host), None)
            view = self.rs.topology().member(host)
            if pending is None and view.priority > 0:
                return f"{view.label} caught up and may be elected (priority {view.priority:g})"
            if pending is None:
                raise ReplsetError(f"{view.label} is no longer waiting to be promoted")
            waiting = pending.get("waiting") or waiting
            if time.monotonic() >= deadline:
                raise ReplsetError(
                    f"{view.label} has not caught up within {timeout:g}s ({waiting}); the "
                    "master hub raises its priority when it does"
                )
            time.sleep(0.25)

    def promote_caught_up(
        self, states: list[dict[str, Any]], generation: int | None, keys: int
    ) -> list[str]:
        """The master hub's part: raise each pending member that has caught up.

        `generation` is the set's newest release generation and `keys` the master's count of
        client keys; a member still short of either stays unelectable, and its promotion
        record says why (hubctl member ... --wait shows it).
        """
        pending = self.pending()
        if not pending:
            return []
        topo = self.rs.topology()
        primary = _primary(topo)
        by_hub = {s["_id"]: s for s in states}
        said = []
        for p in pending:
            try:
                view: MemberView | None = topo.member(p["_id"])
            except ReplsetError:
                view = None
            if view is None or view.priority > 0:
                # Removed again, or raised by hand: nothing left to wait for.
                self._promotions().delete_one({"_id": p["_id"]})
                continue
            problem = catch_up_problem(view, by_hub.get(p["hub"]), generation, keys)
            if problem:
                self._promotions().update_one({"_id": p["_id"]}, {"$set": {"waiting": problem}})
                continue
            config = self.config(primary)
            members = [
                {**c, "priority": p["priority"]} if c["host"] == view.name else c
                for c in config["members"]
            ]
            what = f"raise {view.label}'s priority to {p['priority']:g}"
            self.reconfig(primary, config, members, what)
            self._promotions().delete_one({"_id": p["_id"]})
            message = f"{view.label} has caught up: priority raised to {p['priority']:g}"
            self.rs.event("member-promote", message, member=view.name, hub=p["hub"])
            said.append(message)
        return said


def catch_up_problem(
    view: MemberView | None,
    state: dict[str, Any] | None,
    generation: int | None,
    keys: int,
    max_lag: float = CAUGHT_UP_LAG,
    now: dt.datetime | None = None,
) -> str | None:
    """Why a new hub may not be elected yet, or None when it has caught up."""
    if view is None:
        return "it is not a member of the set"
    if not view.health or view.state != "SECONDARY":
        return f"its member is {view.state}, not SECONDARY"
    if view.lag_seconds is None or view.lag_seconds > max_lag:
        lag = "an unknown time" if view.lag_seconds is None else f"{view.lag_seconds:.1f}s"
        return f"its member lags {lag} behind the primary"
    if state is None:
        return f"its hubd has not reported (no hub state for {view.hub})"
    if state.get("member") != view.name:
        return f"the hub state of {view.hub} is from member {state.get('member')}"
    updated = state.get("updated")
    if isinstance(updated, dt.datetime):
        if updated.tzinfo is None:
            updated = updated.replace(tzinfo=dt.UTC)
        interval = float(state.get("state_interval") or DEFAULT_STATE_INTERVAL)
        age = ((now or now_utc()) - updated).total_seconds()
        if age > SILENT_INTERVALS * interval:
            return f"its hubd last reported {age:.0f}s ago"
    if state.get("generation") != generation:
        return (
            f"its hubd holds release generation {state.get('generation')}, "
            f"the set's is {generation}"
        )
    if int(state.get("keys") or 0) < keys:
        return f"its hubd holds {state.get('keys') or 0} client keys of the master's {keys}"
    return None
