"""One agent run (DESIGN data flow step 2): find a hub, follow the master, update, run, report.

The run never gives up on the policy because of the network: when no hub answers it runs
the policy it has and spools the reports for later. It ends with one summary line and an
exit status: 0 all good, 1 promises not kept, 2 not bootstrapped / no hub known, or the
reports could not be spooled (read-only or full disk; the policy still ran), 3 no hub could
be used (none answered, or the policy update failed).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import platform
import socket
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import hubcluster
from client_agent import policy_generation
from client_agent.classes import host_classes, time_classes
from client_agent.config import AgentConfig
from client_agent.failover import follow_master, plan_servers
from client_agent.policy_update import PROMISES_FILE, PolicyUpdateError, UpdateResult, update_policy
from client_agent.promises import Outcome, run_promises
from client_agent.spool import Spool
from client_agent.state import ClientState
from hubcluster import report_kinds
from hubcluster.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE
from hubcluster.hub_session import HubError, HubKeyMismatch, open_hub
from hubcluster.promises_grammar import PromisesError, load_promises_file

log = logging.getLogger("hubcluster.agent")

# The shared scheme (hubcluster/exit_codes.py): a run that cannot spool is a local problem
# like a missing bootstrap (2); no hub answering is 3, as for every hubcluster command.
EXIT_NOT_KEPT = EXIT_FAILED
EXIT_NO_HUB = EXIT_UNREACHABLE
EXIT_NOT_READY = EXIT_USAGE
EXIT_NO_SPOOL = EXIT_USAGE


@dataclass
class RunResult:
    exit_code: int = EXIT_OK
    server: str | None = None
    release: str | None = None
    update: UpdateResult | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        where = f"hub {self.server}" if self.server else "no hub reachable"
        if self.update is not None and self.update.changed:
            fetched = self.update.files_fetched
            policy = (
                f"policy {self.release} updated ({fetched} file{'' if fetched == 1 else 's'} "
                f"fetched, {self.update.bytes_moved} bytes)"
            )
        else:
            policy = f"policy {self.release or 'none'}"
        counts = Counter(o.status for o in self.outcomes)
        promises = ", ".join(
            f"{counts[s]} {s}" for s in ("kept", "repaired", "not_kept", "skipped") if counts[s]
        )
        spooled = f"spooled seq {self.seqs[0]}-{self.seqs[-1]}" if self.seqs else "nothing spooled"
        text = (
            f"agent run: {where}; {policy}; promises: {promises or 'none run'}; {spooled}; "
            f"{self.seconds:.2f}s; exit {self.exit_code}"
        )
        return text + "".join(f"; {n}" for n in self.notes)


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def _uptime() -> float | None:
    try:
        return float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _addresses(hostname: str, seen_by_hub: str | None) -> list[str]:
    found = {seen_by_hub} if seen_by_hub else set()
    try:
        for info in socket.getaddrinfo(hostname, None, proto=socket.IPPROTO_TCP):
            found.add(str(info[4][0]))
    except OSError:
        pass
    return sorted(found)


def inventory(
    hostname: str, release: str | None, server: str | None, seen_by_hub: str | None
) -> report_kinds.InventoryPayload:
    """What the hub keeps about this host, refreshed every run."""
    return report_kinds.inventory_payload(
        hostname=hostname,
        os=_os_name(),
        kernel=platform.release(),
        uptime=_uptime(),
        addresses=_addresses(hostname, seen_by_hub),
        agent_version=hubcluster.__version__,
        policy_release=release,
        policy_server=server,
    )


async def _contact_hubs(state: ClientState, config: AgentConfig, result: RunResult) -> str | None:
    """Try the hubs in order; follow the master and update the policy from the first that answers.

    Returns the local address the hub saw, for the inventory.
    """
    plan = plan_servers(state)
    result.notes.extend(plan.notes)
    if not plan.servers:
        result.exit_code = EXIT_NOT_READY
        result.notes.append("no hub known; run client-agent bootstrap")
        return None
    client_key = state.client_key()
    hub_key = state.pinned_hub_key()
    assert hub_key is not None
    failed: list[str] = []
    reasons: list[str] = []
    # A hub that sees no master (say, its mongod is cut off) is asked again only if no other
    # hub names one: another may know where the master went.
    queue = [(server, False) for server in plan.servers]
    while queue:
        server, last_resort = queue.pop(0)
        try:
            async with open_hub(server, client_key, hub_key, config.connect_timeout) as session:
                info = await session.master()
                if info.master is None and not last_resort and queue:
                    result.notes.append(f"hub {server} sees no master ({info.reason}); asking on")
                    queue.append((server, True))
                    continue
                result.server = server
                note = follow_master(state, plan, info, failed)
                if note:
                    result.notes.append(note)
                if failed:
                    result.notes.append(f"failed over past {', '.join(failed)}")
                in_force = state.current_release() if state.inputs_root() else None
                if info.release and info.release == in_force:
                    # A republish makes a newer generation of it: recorded, so no hub
                    # serving an older one takes this client back.
                    policy_generation.record(state, info.release, info.generation)
                elif info.release:
                    try:
                        result.update = await update_policy(
                            state, session, info.release, info.generation
                        )
                    except (PolicyUpdateError, HubError) as exc:
                        result.notes.append(str(exc))
                        result.exit_code = max(result.exit_code, EXIT_NO_HUB)
                elif info.release is None:
                    result.notes.append(f"hub {server} has no masterfiles release")
                return session.local_address
        except HubKeyMismatch as exc:
            log.error("%s", exc)
            result.notes.append(str(exc))
            failed.append(server)
        except HubError as exc:
            log.info("%s", exc)  # in the summary line too; a failover is routine
            failed.append(server)
            reasons.append(str(exc))
    result.exit_code = max(result.exit_code, EXIT_NO_HUB)
    result.notes.append(f"no hub answered ({'; '.join(reasons) or 'see above'})")
    return None


def _run_policy(
    state: ClientState,
    config: AgentConfig,
    now: dt.datetime,
    result: RunResult,
    defined: frozenset[str] = frozenset(),
) -> str | None:
    """Run the promises of the release in force; returns the problem if none could run."""
    root = state.inputs_root()
    if root is None:
        return "no policy fetched yet"
    try:
        promises = load_promises_file(root / PROMISES_FILE).entries
    except PromisesError as exc:
        return f"policy {root.name} cannot run: {exc}"
    classes = time_classes(now) | host_classes(config.host_name) | defined
    result.outcomes = run_promises(promises, state.locks_dir, classes, log=log)
    return None


async def run_agent(
    config: AgentConfig, now: dt.datetime | None = None, classes: frozenset[str] = frozenset()
) -> RunResult:
    """One run; never raises for hub or policy trouble, only reports it. `classes` are
    defined for this run (`run --define`, as a hub's remediation may ask)."""
    started = asyncio.get_running_loop().time()
    result = RunResult()
    state = ClientState(config.workdir)
    problem = state.bootstrap_problem()
    if problem is not None:
        result.exit_code = EXIT_NOT_READY
        result.notes.append(f"not bootstrapped ({problem}); run client-agent bootstrap")
        return result
    seen_by_hub = await _contact_hubs(state, config, result)
    result.release = state.current_release()
    when = now or dt.datetime.now().astimezone()
    policy_problem = await asyncio.to_thread(_run_policy, state, config, when, result, classes)
    if policy_problem:
        result.notes.append(policy_problem)
        log.error("%s", policy_problem)
    if policy_problem or any(o.status == report_kinds.NOT_KEPT for o in result.outcomes):
        result.exit_code = max(result.exit_code, EXIT_NOT_KEPT)
    policy_server, _ = state.read_policy_server()
    outcome = report_kinds.outcome_payload(
        release=result.release,
        server=result.server,
        exit_code=result.exit_code,
        error=policy_problem,
        promises=[
            report_kinds.promise_result(o.name, o.status, o.reason, o.seconds, o.output)
            for o in result.outcomes
        ],
    )
    facts = inventory(config.host_name, result.release, policy_server, seen_by_hub)
    lost = 0
    try:
        with Spool(state.spool_dir, config.spool_max_bytes) as spool:
            dropped = spool.status()["dropped_total"]
            result.seqs = spool.append_many(
                [(report_kinds.OUTCOME, outcome), (report_kinds.INVENTORY, facts)]
            )
            lost = spool.status()["dropped_total"] - dropped
    except OSError as exc:
        # A read-only or full disk: the policy ran; the spool keeps what it had (a torn
        # append is cut at its next open) and takes reports again once it can write.
        result.exit_code = max(result.exit_code, EXIT_NO_SPOOL)
        result.notes.append(f"cannot spool reports in {state.spool_dir}: {exc.strerror or exc}")
    if lost:
        result.notes.append(
            f"spool over its cap of {config.spool_max_bytes} bytes: {lost} old reports dropped"
        )
    result.seconds = asyncio.get_running_loop().time() - started
    return result
