"""The monitoring verdict on a cluster, in the Nagios plugin convention.

One line `HUBCLUSTER <STATE> - <summary> | <perfdata>` and exit 0 OK, 1 WARNING,
2 CRITICAL, 3 UNKNOWN, so Nagios, Icinga and Sensu can run `hubctl check` as it is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from hub.hub_roles import UNREACHABLE, HubRole, classify_hubs, master_of
from hub.supervisor import published_problems
from hub.topology import Topology

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATE_NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}


@dataclass(frozen=True)
class Thresholds:
    collect_interval: float = 300.0  # a round is due this often; 3 missed is CRITICAL
    sync_interval: float = 60.0  # masterfiles may differ this long before it is CRITICAL
    max_lag: float = 10.0  # seconds of replication lag that count as lagging
    stale_after: float = 900.0  # a client unseen this long is stale
    stale_warn: float = 0.10  # share of stale clients that is a WARNING
    gap_window: float = 86400.0  # reports a spool cap dropped this recently are a WARNING


@dataclass
class Snapshot:
    """What the check looked at; gathered by hubctl, judged here (and testable alone)."""

    topology: Topology
    now: dt.datetime
    last_round: dict[str, Any] | None
    hub_states: list[dict[str, Any]]
    last_seen: list[dt.datetime | None] = field(default_factory=list)
    lost: dict[str, int] = field(default_factory=dict)  # host -> reports dropped, recently
    # remediation rule -> why its fleet breaker opened (hub.remediation): CRITICAL until reset
    breakers: dict[str, str] = field(default_factory=dict)


@dataclass
class Verdict:
    state: int
    summary: str
    perfdata: str
    items: list[str] = field(default_factory=list)  # each CRITICAL, then WARNING, sentence

    def line(self) -> str:
        return f"HUBCLUSTER {STATE_NAMES[self.state]} - {self.summary} | {self.perfdata}"


def _age(now: dt.datetime, when: dt.datetime | None) -> float | None:
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (now - when).total_seconds())


def judge(snap: Snapshot, limits: Thresholds) -> Verdict:
    topo, now = snap.topology, snap.now
    critical: list[str] = []
    warning: list[str] = []

    up = sum(1 for m in topo.members if m.health)
    lags = [m.lag_seconds for m in topo.members if m.lag_seconds is not None]
    max_lag = max(lags, default=0.0)
    if topo.primary is None:
        critical.append("no primary")
    down = [m.name for m in topo.members if not m.health]
    if down:
        warning.append(f"member down: {', '.join(down)}")
    lagging = [m.name for m in topo.members if (m.lag_seconds or 0) > limits.max_lag]
    if lagging:
        warning.append(f"lagging over {limits.max_lag:g}s: {', '.join(lagging)}")
    if topo.maintenance:
        warning.append(f"maintenance window open for {topo.maintenance['member']}")

    round_age = _age(now, (snap.last_round or {}).get("finished"))
    round_secs = float((snap.last_round or {}).get("seconds") or 0.0)
    if round_age is None:
        critical.append("no collection round has finished yet")
    elif round_age > 3 * limits.collect_interval:
        critical.append(f"last collection round finished {round_age:.0f}s ago")

    roles = classify_hubs(snap.hub_states, topo, now)
    silent = [r.label.replace("unreachable", r.name, 1) for r in roles if r.role == UNREACHABLE]
    if silent:
        warning.append(f"hub unreachable: {', '.join(silent)}")
    for r in roles:
        if r.role != UNREACHABLE:  # a silent hub's last problems are not news
            said = published_problems(r.name, r.state)
            critical.extend(said[0])
            warning.extend(said[1])

    diverged = _divergence(roles, now)
    if diverged and diverged[1] > limits.sync_interval:
        critical.append(f"masterfiles diverged for {diverged[1]:.0f}s ({diverged[0]})")

    fresh = sum(1 for seen in snap.last_seen if (_age(now, seen) or 1e18) <= limits.stale_after)
    stale = len(snap.last_seen) - fresh
    if snap.last_seen and stale / len(snap.last_seen) > limits.stale_warn:
        warning.append(f"{stale}/{len(snap.last_seen)} clients stale")

    if snap.lost:
        warning.append(
            f"{len(snap.lost)} hosts lost {sum(snap.lost.values())} reports to their spool cap "
            "(hubctl query hosts)"
        )

    for rule in sorted(snap.breakers):
        critical.append(
            f"remediation breaker open for rule {rule} (hubctl remediation reset-breaker {rule})"
        )

    state = CRITICAL if critical else WARNING if warning else OK
    primary = topo.primary or "none"
    good = f"primary {primary}, {up}/{len(topo.members)} members up"
    summary = "; ".join(critical + warning) if (critical or warning) else good
    perf = [
        f"members_up={up};;;0;{len(topo.members)}",
        f"replication_lag={max_lag:.1f}s;{limits.max_lag:g}",
        f"last_round_age={round_age:.0f}s;;{3 * limits.collect_interval:g}"
        if round_age is not None
        else "last_round_age=U",
        f"last_round_duration={round_secs:.2f}s",
        f"clients_fresh={fresh}",
        f"clients_stale={stale}",
    ]
    return Verdict(state, summary, " ".join(perf), critical + warning)


def _divergence(roles: list[HubRole], now: dt.datetime) -> tuple[str, float] | None:
    """(which hubs differ, for how long) when the reachable hubs do not all serve the
    master's release (or, with no master known, the newest release)."""
    live = [r for r in roles if r.role != UNREACHABLE and r.state.get("release")]

    def release_age(r: HubRole) -> float:
        age = _age(now, r.state.get("release_since"))
        return float("inf") if age is None else age

    master = master_of(live) or min(live, key=release_age, default=None)
    if master is None:
        return None
    release = master.state["release"]
    behind = [r.name for r in roles if r.role != UNREACHABLE and r.state.get("release") != release]
    if not behind:
        return None
    since = _age(now, master.state.get("release_since")) or 0.0
    return f"{', '.join(behind)} not on {release}", since
