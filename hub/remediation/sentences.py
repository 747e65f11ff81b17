"""The history's words for every remediation decision: one sentence each, with its reason.

ran agent on client042 (promise sshd_running not kept)
skipped client042: 3 runs in the last hour, limit 3
breaker open for rule sshd: 41% of clients triggered in the last 10m, limit 20%
agent run on client042 timed out: stopped by the client at the 5m deadline (promise ...)
"""

from __future__ import annotations

from hub.remediation.rules import COMMAND, RESYNC, RUN_AGENT
from hubcluster.durations import format_duration

_DONE = {RUN_AGENT: "ran agent on {name}", RESYNC: "re-synced masterfiles on {name}"}
_WOULD = {RUN_AGENT: "would run agent on {name}", RESYNC: "would re-sync masterfiles on {name}"}
_ACTION = {RUN_AGENT: "agent run on {name}", RESYNC: "masterfiles re-sync on {name}"}


def span(seconds: float) -> str:
    """`the last hour`, `the last day`, `the last 30m`."""
    words = {3600.0: "hour", 86400.0: "day", 60.0: "minute"}
    return f"the last {words.get(seconds) or format_duration(seconds)}"


def ran(action: str, name: str, reason: str, command: str = "") -> str:
    what = f"ran {command} for {name}" if action == COMMAND else _DONE[action].format(name=name)
    return f"{what} ({reason})"


def would_run(action: str, name: str, reason: str, command: str = "") -> str:
    what = (
        f"would run {command} for {name}" if action == COMMAND else _WOULD[action].format(name=name)
    )
    return f"{what} ({reason}; dry run)"


def _action(action: str, name: str, command: str) -> str:
    return f"{command} for {name}" if action == COMMAND else _ACTION[action].format(name=name)


def failed(action: str, name: str, reason: str, why: str, command: str = "") -> str:
    return f"{_action(action, name, command)} failed: {why} ({reason})"


def timed_out(action: str, name: str, reason: str, why: str, command: str = "") -> str:
    return f"{_action(action, name, command)} timed out: {why} ({reason})"


def over_budget(name: str, runs: int, window: float, limit: int) -> str:
    noun = "run" if runs == 1 else "runs"
    return f"skipped {name}: {runs} {noun} in {span(window)}, limit {limit}"


def cooling(name: str, ago: float, cooldown: float) -> str:
    return (
        f"skipped {name}: last run {format_duration(ago)} ago, "
        f"cool-down {format_duration(cooldown)}"
    )


def too_many_running(name: str, running: int, limit: int) -> str:
    noun = "remediation" if running == 1 else "remediations"
    return f"skipped {name}: {running} {noun} running, limit {limit}"


def still_running(name: str) -> str:
    return f"skipped {name}: a remediation of it is still running"


def recorded_already(name: str, by: str, reason: str) -> str:
    return f"skipped {name}: already remediated by {by} for this evidence ({reason})"


def breaker_opened(rule: str, share: float, limit: float, hold: float) -> str:
    within = f"in the last {format_duration(hold)}" if hold > 0 else "in one round"
    return (
        f"breaker open for rule {rule}: {share:.0f}% of clients triggered {within}, "
        f"limit {limit:g}%"
    )


def rule_suppressed(rule: str, why: str) -> str:
    return f"skipped rule {rule}: {why}"


def gave_up(name: str, by: str) -> str:
    return f"remediation of {name} by {by} never finished (master changed); counted, not rerun"
