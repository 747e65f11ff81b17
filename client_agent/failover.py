"""Which hubs a run tries, in what order, and how the answers move `policy_server.dat`.

Order: `policy_server.dat` first, then the other hubs in the hub list's order, and the
master that last failed us at the very end, so a dead master does not cost a second
failover. `policy_server.dat` follows the master: it is rewritten (atomically) only when a
hub names a master other than the one in it; with no master (no primary) it stays put.
A broken `policy_server.dat` is reported and repaired from the hub list, never fatal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from client_agent.state import ClientState, HubList
from hubcluster.messages import MasterInfo

T = TypeVar("T")


@dataclass
class ServerPlan:
    servers: list[str]
    policy_server: str | None
    hubs: HubList
    notes: list[str] = field(default_factory=list)


def server_order(
    policy_server: str | None, hubs: list[str], failed_master: str | None
) -> list[str]:
    order = [policy_server] if policy_server else []
    order += [h for h in hubs if h not in order and h != failed_master]
    if failed_master and failed_master not in order:
        order.append(failed_master)
    return order


def plan_servers(state: ClientState) -> ServerPlan:
    """Read where the hubs are, repairing a broken `policy_server.dat` from the hub list."""
    address, problem = state.read_policy_server()
    hubs, hubs_problem = state.read_hubs()
    notes = [hubs_problem] if hubs_problem else []
    if problem:
        candidates = [h for h in hubs.hubs if h != hubs.failed_master] or hubs.hubs
        if candidates:
            address = candidates[0]
            note = _kept(state.write_policy_server, address)
            notes.append(f"{problem}; repaired from the hub list: now {address}{note}")
        else:
            notes.append(f"{problem}, and there is no hub list to repair it from")
    return ServerPlan(server_order(address, hubs.hubs, hubs.failed_master), address, hubs, notes)


def follow_master(
    state: ClientState, plan: ServerPlan, info: MasterInfo, failed: list[str]
) -> str | None:
    """Record what a hub said; returns a note when `policy_server.dat` moved."""
    old = plan.policy_server
    failed_master = plan.hubs.failed_master
    if old is not None and old in failed:
        failed_master = old
    note = None
    if info.master is not None and info.master != old:
        kept = _kept(state.write_policy_server, info.master)
        note = f"master moved: policy_server.dat now {info.master} (was {old or 'unset'}){kept}"
        plan.policy_server = info.master
    if failed_master == plan.policy_server:
        failed_master = None  # the master that failed is back in charge
    hubs = HubList(list(info.hubs) or plan.hubs.hubs, failed_master)
    if hubs != plan.hubs:
        kept = _kept(state.write_hubs, hubs)
        if kept:
            note = f"{note}; hub list{kept}" if note else f"hub list{kept}"
        plan.hubs = hubs
    return note


def _kept(write: Callable[[T], None], value: T) -> str:
    """Write `value`: '' if it was kept, else why not (a read-only or full disk). The run goes
    on with the value in memory, since running the policy matters more than recording this."""
    try:
        write(value)
    except OSError as exc:
        return f" (not kept on disk: {exc.strerror or exc})"
    return ""
