"""Whether one triggered remediation may run now, and if not, the one sentence saying why.

Pure: it reads the records the ledger gave for this round and counts nothing twice. The
order is the most lasting answer first: an evidence already acted on, a run of the target
still going, the rule's runs per target per window, the cool-down after the last run, then
the fleet-wide concurrency.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from hub.remediation import sentences
from hub.remediation.ledger import RUNNING, aware
from hub.remediation.rules import Rule
from hub.remediation.triggers import Trigger

# Skip reasons, the only values of the metrics' `reason` label.
RECORDED = "recorded"
CONCURRENCY = "concurrency"
BUDGET = "budget"
COOLDOWN = "cooldown"
BREAKER = "breaker"
PAUSED = "paused"
SUPPRESSED = "suppressed"  # a maintenance window or a frozen member
HOLD = "hold"  # a new trigger, pending until the rule's hold has passed
SKIP_REASONS = (RECORDED, CONCURRENCY, BUDGET, COOLDOWN, BREAKER, PAUSED, SUPPRESSED, HOLD)


@dataclass(frozen=True)
class Decision:
    run: bool
    reason: str | None = None  # one of SKIP_REASONS when not run
    sentence: str = ""
    # Not news: a run of this master still going, or the evidence it acted on already. The
    # history has the run's own line; the skip is counted in the metrics only.
    quiet: bool = False


def decide(
    rule: Rule,
    trigger: Trigger,
    key: str,
    records: list[dict[str, Any]],
    running: int,
    max_concurrent: int,
    now: dt.datetime,
    me: str,
) -> Decision:
    """`records`: this rule's records on this target, oldest first, as far back as
    max(window, cooldown); `running`: remediations running fleet-wide now; `me`: this hub."""
    same = next((r for r in records if r["_id"] == key), None)
    if same is not None:
        by = str(same.get("by") or "a master")
        said = sentences.recorded_already(trigger.name, by, trigger.reason)
        return Decision(False, RECORDED, said, quiet=by == me)
    if any(r.get("status") == RUNNING for r in records):
        return Decision(False, CONCURRENCY, sentences.still_running(trigger.name), quiet=True)
    start = now - dt.timedelta(seconds=rule.window)
    in_window = [r for r in records if aware(r["started"]) >= start]
    if len(in_window) >= rule.max_runs:
        return Decision(
            False,
            BUDGET,
            sentences.over_budget(trigger.name, len(in_window), rule.window, rule.max_runs),
        )
    if records and rule.cooldown > 0:
        last = records[-1]
        ended = aware(last.get("finished") or last["started"])
        ago = (now - ended).total_seconds()
        if last.get("finished") is None or ago < rule.cooldown:
            return Decision(
                False, COOLDOWN, sentences.cooling(trigger.name, max(ago, 0.0), rule.cooldown)
            )
    # Fleet-wide last: a target out of budget or cooling down is told that, whatever runs.
    if running >= max_concurrent:
        return Decision(
            False, CONCURRENCY, sentences.too_many_running(trigger.name, running, max_concurrent)
        )
    return Decision(True)
