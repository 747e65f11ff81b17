"""`[remediation]` and `[[remediation.rules]]` in the hub config, checked at start.

[remediation]
max_concurrent = 5                # remediations running at once, fleet-wide
action_timeout = "5m"             # default of every rule's action_timeout (below)
[remediation.commands]            # the allow-list for action = "command"
restart-sshd-fleet = ["/usr/local/sbin/restart-sshd-fleet"]

[[remediation.rules]]
name = "sshd"
trigger = "promise_not_kept"      # promise_not_kept | stale_client | masterfiles_diverged
promise = "sshd_running"          #   | check (a failed `hubctl check` item)
action = "run_agent"              # run_agent | resync_masterfiles | command
classes = ["remediate_sshd"]      # run_agent: classes defined for that run
max_runs = 3                      # per target per window
window = "1h"
cooldown = "10m"                  # after each run of this rule on a target
hold = "10m"                      # a new trigger is pending this long before it acts;
                                  #   default: two collection intervals
breaker_percent = 20              # more clients than this triggering within the hold: none
action_timeout = "5m"             # the client is told this deadline and stops its run then
dry_run = false                   # decide and record, do nothing
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from hubcluster.config_check import ConfigError, Section
from hubcluster.durations import DAY
from hubcluster.run_request import MAX_RUN_SECONDS, class_problem

PROMISE_NOT_KEPT = "promise_not_kept"
STALE_CLIENT = "stale_client"
MASTERFILES_DIVERGED = "masterfiles_diverged"
CHECK = "check"
TRIGGERS = (PROMISE_NOT_KEPT, STALE_CLIENT, MASTERFILES_DIVERGED, CHECK)
# Triggers whose targets are clients: only these count toward a fleet breaker.
CLIENT_TRIGGERS = (PROMISE_NOT_KEPT, STALE_CLIENT)

RUN_AGENT = "run_agent"
RESYNC = "resync_masterfiles"
COMMAND = "command"
ACTIONS = (RUN_AGENT, RESYNC, COMMAND)
# Which actions fit which trigger's targets (clients, hubs, the cluster).
FITS = {
    PROMISE_NOT_KEPT: (RUN_AGENT, COMMAND),
    STALE_CLIENT: (RUN_AGENT, COMMAND),
    MASTERFILES_DIVERGED: (RESYNC, COMMAND),
    CHECK: (COMMAND, RESYNC),
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# The hold when a rule names none, in collection intervals: a trigger first seen in one round
# is still pending after the next, so the breaker has counted two whole rounds of reports (a
# fleet's agents report over their run period, as long as a round by default) before
# anything runs.
HOLD_ROUNDS = 2


@dataclass(frozen=True)
class Rule:
    name: str
    trigger: str
    action: str
    promise: str = "*"  # promise_not_kept: the promise's name, or any
    stale_after: float = 900.0  # stale_client
    diverged_for: float = 120.0  # masterfiles_diverged
    check: str = ""  # check: words a failed check item contains
    classes: tuple[str, ...] = ()
    command: str = ""  # a name in [remediation.commands]
    max_runs: int = 3
    window: float = 3600.0
    cooldown: float = 600.0
    breaker_percent: float = 20.0
    dry_run: bool = False
    hold: float | None = None  # None: HOLD_ROUNDS collection intervals (with_default_hold)
    action_timeout: float | None = None  # None: [remediation] action_timeout

    def summary(self) -> dict[str, object]:
        """What `hubctl remediation list` shows of the rule (stored by the master)."""
        what = {
            PROMISE_NOT_KEPT: f"promise {self.promise} not kept",
            STALE_CLIENT: f"client silent over {self.stale_after:g}s",
            MASTERFILES_DIVERGED: f"masterfiles diverged over {self.diverged_for:g}s",
            CHECK: f"check item with {self.check!r}",
        }[self.trigger]
        return {
            "trigger": what,
            "action": self.action if self.action != COMMAND else f"command {self.command}",
            "max_runs": self.max_runs,
            "window": self.window,
            "cooldown": self.cooldown,
            "breaker_percent": self.breaker_percent,
            "hold": self.hold,
            "action_timeout": self.action_timeout,
            "dry_run": self.dry_run,
        }


@dataclass(frozen=True)
class RemediationSettings:
    rules: tuple[Rule, ...] = ()
    max_concurrent: int = 5
    action_timeout: float = 300.0
    commands: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    def resolved(self, collect_interval: float) -> RemediationSettings:
        """Every rule with its hold and action timeout filled in: what the master runs."""
        hold = HOLD_ROUNDS * collect_interval
        rules = tuple(
            replace(
                r,
                hold=hold if r.hold is None else r.hold,
                action_timeout=self.action_timeout
                if r.action_timeout is None
                else r.action_timeout,
            )
            for r in self.rules
        )
        return replace(self, rules=rules)

    def timeout_of(self, rule: str) -> float:
        """The action timeout of `rule` (a record's rule may be gone from the config)."""
        found = self.rule(rule)
        if found is None or found.action_timeout is None:
            return self.action_timeout
        return found.action_timeout


def _choice(section: Section, key: str, choices: tuple[str, ...], default: str | None) -> str:
    value = section.str(key, default) if default else section.str(key, required=True)
    if value not in choices:
        raise ConfigError(
            f"{section.where}.{key}: must be one of {', '.join(choices)}, got {value!r:.40}"
        )
    return value


def _commands(section: Section) -> dict[str, tuple[str, ...]]:
    commands = {}
    for name in section.data:
        argv = section._get(name, None, True)
        where = f"{section.where}.{name}"
        if not _NAME.match(name):
            raise ConfigError(f"{where}: a command name is letters, digits, _ . - (64 at most)")
        if (
            not isinstance(argv, list)
            or not argv
            or not all(isinstance(a, str) and a and a.isprintable() for a in argv)
        ):
            raise ConfigError(
                f'{where}: must be a list of program and arguments, e.g. ["/bin/true"]'
            )
        if not argv[0].startswith("/"):
            raise ConfigError(f"{where}: the program must be an absolute path, got {argv[0]!r:.60}")
        commands[name] = tuple(argv)
    return commands


def _rule(entry: Section, commands: dict[str, tuple[str, ...]]) -> Rule:
    name = entry.str("name", required=True)
    if not _NAME.match(name):
        raise ConfigError(
            f"{entry.where}.name: letters, digits, _ . - (64 at most), got {name!r:.40}"
        )
    trigger = _choice(entry, "trigger", TRIGGERS, None)
    action = _choice(entry, "action", ACTIONS, None)
    if action not in FITS[trigger]:
        raise ConfigError(
            f"{entry.where}.action: {action} does not fit trigger {trigger} "
            f"(use {' or '.join(FITS[trigger])})"
        )
    classes = entry._get("classes", [], False)
    if not isinstance(classes, list):
        raise ConfigError(f"{entry.where}.classes: must be a list of class names")
    for c in classes:
        problem = class_problem(c)
        if problem:
            raise ConfigError(f"{entry.where}.classes: {problem}")
    if classes and action != RUN_AGENT:
        raise ConfigError(f"{entry.where}.classes: only for action run_agent")
    command = entry.str("command", "-")
    if action == COMMAND and command not in commands:
        listed = ", ".join(commands) or "none"
        raise ConfigError(
            f"{entry.where}.command: {command!r:.40} is not in [remediation.commands] ({listed})"
        )
    check = entry.str("check", "-")
    if trigger == CHECK and check == "-":
        raise ConfigError(f"{entry.where}.check: missing (required for trigger check)")
    percent = entry._get("breaker_percent", 20, False)
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 < percent <= 100:
        raise ConfigError(f"{entry.where}.breaker_percent: must be a number above 0, at most 100")
    rule = Rule(
        name=name,
        trigger=trigger,
        action=action,
        promise=entry.str("promise", "*"),
        stale_after=entry.duration("stale_after", 900.0, minimum=1.0),
        diverged_for=entry.duration("diverged_for", 120.0),
        check="" if check == "-" else check,
        classes=tuple(classes),
        command="" if command == "-" else command,
        max_runs=entry.int("max_runs", 3, minimum=1, maximum=1000),
        window=entry.duration("window", 3600.0, minimum=1.0),
        cooldown=entry.duration("cooldown", 600.0),
        breaker_percent=float(percent),
        dry_run=entry._get("dry_run", False, False),
        hold=entry.duration("hold", 0.0, maximum=DAY) if "hold" in entry.data else None,
        action_timeout=_action_timeout(entry) if "action_timeout" in entry.data else None,
    )
    if not isinstance(rule.dry_run, bool):
        raise ConfigError(f"{entry.where}.dry_run: must be true or false")
    entry.reject_unknown()
    return rule


def _action_timeout(section: Section) -> float:
    # The client stops a run at the deadline it is sent, but never later than its own
    # maximum: a longer timeout here would only be a wait for nothing.
    return section.duration("action_timeout", 300.0, minimum=1.0, maximum=MAX_RUN_SECONDS)


def parse_remediation(section: Section) -> RemediationSettings:
    """The `[remediation]` table (absent: no rules)."""
    commands = _commands(section.table("commands"))
    rules = tuple(_rule(entry, commands) for entry in section.tables("rules"))
    names = [r.name for r in rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{section.where}.rules: duplicate name {', '.join(dupes)}")
    settings = RemediationSettings(
        rules=rules,
        max_concurrent=section.int("max_concurrent", 5, minimum=1, maximum=10_000),
        action_timeout=_action_timeout(section),
        commands=commands,
    )
    section.reject_unknown()
    return settings
