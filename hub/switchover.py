"""A switchover checked before anything changes: from the primary to a member fit to win."""

from __future__ import annotations

from dataclasses import dataclass

from hub.topology import MemberView, ReplsetError, Topology


@dataclass
class SwitchoverPlan:
    """A checked switchover: from the primary to a secondary fit to take over."""

    old: MemberView
    new: MemberView
    others: list[MemberView]  # secondaries frozen meanwhile, so that only `new` can win

    @property
    def nothing_to_do(self) -> bool:
        return self.old.name == self.new.name

    def describe(self) -> list[str]:
        lag = self.new.lag_seconds or 0.0
        lines = [
            f"switchover from {self.old.label} to {self.new.label}",
            f"{self.new.label} lags {lag:.1f}s behind the primary",
        ]
        if self.others:
            frozen = ", ".join(m.label for m in self.others)
            lines.append(f"frozen meanwhile, so only {self.new.label} can win: {frozen}")
        return lines


def switchover_plan(topo: Topology, target: str, catch_up: float) -> SwitchoverPlan:
    """What a switchover to `target` would do, or the reason it must not be tried.

    Every check runs before anything is asked of the set, so a refused switchover leaves
    the primary where it is.
    """
    new = topo.member(target)
    old = topo.primary_view()
    if old is None:
        raise ReplsetError("there is no primary to step down")
    if new.name == old.name:
        return SwitchoverPlan(old, new, [])
    if not new.health:
        reason = "it is down"
    elif new.state != "SECONDARY":
        reason = f"it is {new.state}, not SECONDARY"
    elif new.hidden:
        reason = "it is hidden, and a hidden member can never become primary"
    elif new.priority <= 0:
        reason = "it has priority 0 and can never become primary"
    elif new.frozen_until is not None:
        reason = (
            f"it is frozen until {new.frozen_until:%Y-%m-%d %H:%M:%S}Z "
            f"(hubctl unfreeze {new.hub or new.name} first)"
        )
    elif new.lag_seconds is None or new.lag_seconds > catch_up:
        lag = "an unknown time" if new.lag_seconds is None else f"{new.lag_seconds:.1f}s"
        reason = f"it lags {lag} behind the primary, more than --catch-up {catch_up:g}s"
    else:
        others = [
            m
            for m in topo.members
            if m.name not in (new.name, old.name) and m.health and m.state == "SECONDARY"
        ]
        return SwitchoverPlan(old, new, others)
    raise ReplsetError(f"refusing to switch over to {new.label}: {reason}; nothing was changed")
