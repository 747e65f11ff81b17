"""The limits' decision alone (hub.remediation.limits.decide), one limit per test, on records
shaped as the ledger stores them. The lab tests show the same limits on real runs."""

from __future__ import annotations

import datetime as dt

from hub.remediation.limits import BUDGET, CONCURRENCY, COOLDOWN, RECORDED, decide
from hub.remediation.rules import Rule
from hub.remediation.triggers import Trigger

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
RULE = Rule("sshd", "promise_not_kept", "run_agent", max_runs=3, window=3600, cooldown=600)
TRIGGER = Trigger("sshd", "sha1", "client042", "report 9", "promise sshd_running not kept")


def _record(minutes_ago: float, status: str = "done", key: str = "old", by: str = "hub1") -> dict:
    started = NOW - dt.timedelta(minutes=minutes_ago)
    finished = None if status == "running" else started + dt.timedelta(seconds=20)
    return {"_id": key, "started": started, "finished": finished, "status": status, "by": by}


def _decide(records: list[dict], running: int = 0, limit: int = 5, rule: Rule = RULE):
    return decide(rule, TRIGGER, "sshd/sha1/report 9", records, running, limit, NOW, "hub2")


def test_runs_when_nothing_limits_it():
    assert _decide([_record(59, key="a"), _record(45, key="b")]).run


def test_the_per_target_budget_stops_the_fourth_run_in_the_window():
    records = [_record(50, key="a"), _record(30, key="b"), _record(15, key="c")]
    decision = _decide(records)
    assert (decision.run, decision.reason) == (False, BUDGET)
    assert decision.sentence == "skipped client042: 3 runs in the last hour, limit 3"
    assert _decide(records[1:]).run  # the oldest one left the window


def test_the_cooldown_holds_a_run_after_the_last_one():
    decision = _decide([_record(5)])
    assert (decision.run, decision.reason) == (False, COOLDOWN)
    assert decision.sentence == "skipped client042: last run 4m40s ago, cool-down 10m"
    assert _decide([_record(11)]).run


def test_the_fleet_wide_concurrency_limit():
    decision = _decide([], running=5, limit=5)
    assert (decision.run, decision.reason) == (False, CONCURRENCY)
    assert decision.sentence == "skipped client042: 5 remediations running, limit 5"
    assert _decide([], running=4, limit=5).run


def test_a_target_out_of_budget_is_told_so_whatever_runs_fleet_wide():
    records = [_record(50, key="a"), _record(30, key="b"), _record(15, key="c")]
    assert _decide(records, running=5, limit=5).reason == BUDGET
    assert _decide([_record(5)], running=5, limit=5).reason == COOLDOWN


def test_a_run_still_going_on_the_target_blocks_another_quietly():
    decision = _decide(
        [_record(1, status="running")], rule=Rule("r", "promise_not_kept", "run_agent", cooldown=0)
    )
    assert (decision.run, decision.reason, decision.quiet) == (False, CONCURRENCY, True)


def test_evidence_already_acted_on_is_never_run_again():
    held = _record(1, key="sshd/sha1/report 9", by="hub1")
    decision = _decide([held], rule=Rule("r", "promise_not_kept", "run_agent", cooldown=0))
    assert (decision.run, decision.reason, decision.quiet) == (False, RECORDED, False)
    assert decision.sentence == (
        "skipped client042: already remediated by hub1 for this evidence "
        "(promise sshd_running not kept)"
    )
