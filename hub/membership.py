"""Changing who is in the replica set: add a hub's member, remove one, replace a dead one.

A change is planned first, every check made before anything is sent, so a refused change
leaves the set as it was. It is then applied as one replSetReconfig per step on the
primary, each with the config version bumped, because mongod allows only one voting
member added or removed per reconfig. Refused as mongod would refuse, but before it is
asked: a step after which the healthy voting members are no majority of the new config,
and removing the primary (it must step down first).

A new member joins with priority 0, so it cannot be elected before it holds the cluster's
data, client keys and masterfiles; hub.member_promotion raises it once it has caught up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pymongo.errors import PyMongoError

from hub.member_promotion import Promotion, Promotions
from hub.mongo import DB_NAME, SURVIVES_FAILOVER
from hub.replset import ReplicaSet
from hub.replset_config import primary_of, read_config, send_config
from hub.store import HUB_STATE
from hub.topology import HUB_TAG, MemberView, ReplsetError, Topology, hub_tags

# mongod's limits: voting members per set, members per set.
MAX_VOTING = 7
MAX_MEMBERS = 50

Members = list[dict[str, Any]]

log = logging.getLogger(__name__)


@dataclass
class Step:
    """One reconfig: what it does to the members list, said in one line."""

    what: str
    change: Callable[[Members], Members]
    event: str
    details: dict[str, Any]


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

    def answers(self, host: str) -> bool:
        try:
            self.rs.member_command(host, "ping", timeout=min(self.rs.timeout, 2.0))
        except PyMongoError:
            return False
        return True

    # ----- plans --------------------------------------------------------------------------
    def plan_add(self, hub: str, host: str, priority: float = 1.0) -> MembershipPlan:
        topo = self.rs.topology()
        config = read_config(self.rs, primary_of(topo))
        answers = self.answers(host)
        _new_member_problem(config, hub, host, answers)
        step = _adding(hub, host, config["members"])
        _check([step], config["members"], _healthy(topo) | {host}, f"add {hub}")
        return self._with_promotion(f"add {hub} ({host})", [step], hub, host, priority)

    def plan_remove(self, member: str) -> MembershipPlan:
        topo = self.rs.topology()
        config = read_config(self.rs, primary_of(topo))
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
        config = read_config(self.rs, primary_of(topo))
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
            plan.notes += [
                f"then {hub}'s priority is raised to {priority:g} once it has caught up:",
                "its member a secondary, its hubd holding the cluster's release and keys",
            ]
        elif priority > 0:
            plan.notes.append(f"{hub} stays non-voting with priority 0: it can never be elected")
        return plan

    # ----- applying -----------------------------------------------------------------------
    def apply(self, plan: MembershipPlan) -> list[str]:
        """Run the plan's steps; one line per step done. A failed step names what was done."""
        done: list[str] = []
        for step in plan.steps:
            try:
                primary = primary_of(self.rs.topology())
                config = read_config(self.rs, primary)
                send_config(self.rs, primary, config, step.change(config["members"]), step.what)
            except ReplsetError as exc:
                so_far = f" (done: {'; '.join(done)})" if done else " (nothing was changed)"
                raise ReplsetError(f"{exc}{so_far}") from None
            self.rs.event(step.event, f"member change: {step.what}", **step.details)
            if step.event == "member-remove":
                self._forget_hub(step.details["hub"], step.details["member"])
            done.append(f"{step.what}: done")
        if plan.promotion is not None:
            Promotions(self.rs).request(plan.promotion)
            done.append(f"{plan.promotion.hub} may be elected once it has caught up")
        if len(plan.steps) > 1:
            self.rs.event("member-replace", f"member change: {plan.title}")
        return done

    def _forget_hub(self, hub: str | None, host: str) -> None:
        """Drop the removed hub's last state, or status and check call it unreachable forever.

        Only the state it wrote from that member: a successor of the same name keeps its own.
        """
        if hub is None:
            return
        states = self.rs.client[DB_NAME].get_collection(HUB_STATE, write_concern=SURVIVES_FAILOVER)
        try:
            states.delete_one({"_id": hub, "member": host})
        except PyMongoError as exc:
            # Only `status` suffers: it shows the hub unreachable until its state is removed.
            log.warning("the last state of %s was not removed: %s", hub, exc)

    # ----- promotions ---------------------------------------------------------------------
