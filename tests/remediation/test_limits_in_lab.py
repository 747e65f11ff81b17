"""Issue 16 in a lab: real hubd, real client-agent runs, the master's remediation engine.

Each test publishes its own policy (a promise only its rule watches), runs the agents once as
the lab's timer would, and reads back the history and the records the master wrote, and the
clients' own spools (how many agent runs really happened).
"""

from __future__ import annotations

import time
import urllib.request

import pytest

from tests.conftest import wait_until
from tests.remediation.lab_fleet import RemediationLab

KEEPS_FAILING = """\
[[promise]]
name = "keeps_failing"
check = "false"
if = "client001"
ifelapsed = 0
"""

# Not kept on every other run: the check flips a file each time.
FLAPPING = """\
[[promise]]
name = "flapping"
check = "if test -f flip; then rm flip; else touch flip; false; fi"
if = "client002"
ifelapsed = 0
"""

BROKEN_EVERYWHERE = """\
[[promise]]
name = "broken_everywhere"
check = "false"
ifelapsed = 0
"""

SLOW_AND_BROKEN = """\
[[promise]]
name = "slow_and_broken"
check = "sleep 2; false"
if = "client001|client002"
ifelapsed = 0
"""

DRY_BROKEN = """\
[[promise]]
name = "dry_broken"
check = "false"
if = "client003"
ifelapsed = 0
"""

BROKEN_WHILE_FROZEN = """\
[[promise]]
name = "broken_while_frozen"
check = "false"
if = "client003"
ifelapsed = 0
"""

ALL_KEPT = """\
[[promise]]
name = "fine"
check = "true"
"""

# A lab (three hubd, clients, the stand-in) starts in the first test; allow for a busy CI.
pytestmark = pytest.mark.timeout(300)


def _settle(rlab: RemediationLab, rule: str, seconds: float = 4.0) -> None:
    """Let a few more rounds (1 s each) pass, then wait for nothing of `rule` running."""
    time.sleep(seconds)
    wait_until(
        lambda: all(r["status"] != "running" for r in rlab.records(rule)),
        40,
        0.3,
        f"no remediation of rule {rule} running",
    )


def test_a_client_whose_promise_keeps_failing_gets_runs_up_to_the_per_target_limit(
    rlab: RemediationLab,
):
    rlab.publish(KEEPS_FAILING, "keeps-failing")
    before = rlab.runs_of("client001")
    rlab.run_agents()  # the lab's own run: client001 now reports keeps_failing not kept
    rlab.wait_for_event("skipped client001: 2 runs in the last hour, limit 2", "budget")
    _settle(rlab, "budget")
    history = rlab.events("budget")
    assert history[0] == "ran agent on client001 (promise keeps_failing not kept)"
    records = rlab.records("budget")
    assert [(r["name"], r["status"]) for r in records] == [("client001", "done")] * 2
    # Rounds went on every second: no third run, on the hub or on the client.
    assert rlab.runs_of("client001") == before + 1 + 2
    skips = [e for e in history if e.startswith("skipped")]
    assert skips == ["skipped client001: 2 runs in the last hour, limit 2"]  # said once
    scrape = urllib.request.urlopen(rlab.master().portal_url + "metrics", timeout=5).read()
    assert 'hubcluster_remediation_runs_total{result="ok",rule="budget"} 2.0' in scrape.decode()
    assert 'hubcluster_remediation_skips_total{reason="budget",rule="budget"}' in scrape.decode()


@pytest.mark.slow  # ~30-90 s of real agent runs; `pytest -m slow` runs it
def test_a_flapping_trigger_stays_within_the_cooldown_and_the_budget(rlab: RemediationLab):
    rlab.publish(FLAPPING, "flapping")

    def limits_met() -> bool:
        return len(rlab.records("flap")) >= 3 and any(
            "cool-down 4s" in e for e in rlab.events("flap")
        )

    deadline = time.monotonic() + 120
    while not limits_met() and time.monotonic() < deadline:
        rlab.run_agents()  # the promise flips on every run, whoever asks for it
        time.sleep(0.3)
    for _ in range(4):  # and it keeps flapping past the budget
        rlab.run_agents()
    _settle(rlab, "flap", 1.0)
    records = rlab.records("flap")
    assert len(records) == 3, [r["_id"] for r in records]
    for earlier, later in zip(records, records[1:], strict=False):
        gap = (later["started"] - earlier["finished"]).total_seconds()
        assert gap >= 4.0, f"a run {gap:.1f}s after the last one ended; cool-down is 4s"
    assert any("cool-down 4s" in e for e in rlab.events("flap"))


def test_a_policy_broken_on_every_client_opens_the_breaker_and_runs_nothing(
    rlab: RemediationLab,
):
    # The breaker judges what one round saw. Agents report one by one, so the operator's
    # pause holds the rule until every client's report of the broken policy is stored:
    # then one round sees the whole fleet failing, as a fleet's timer runs would show it.
    assert rlab.hubctl("remediation", "pause", "fleet").returncode == 0
    rlab.publish(BROKEN_EVERYWHERE, "broken-everywhere")
    before = {c.name: rlab.runs_of(c.name) for c in rlab.lab.fleet}
    rlab.run_agents()
    wait_until(rlab.lab.all_collected, 30, 0.2, "every report stored")
    assert rlab.hubctl("remediation", "resume", "fleet").returncode == 0
    rlab.wait_for_event(
        "breaker open for rule fleet: 100% of clients triggered, limit 50%", "fleet"
    )
    time.sleep(3)
    assert rlab.records("fleet") == []
    opened = [e for e in rlab.events("fleet") if e.startswith("breaker open")]
    assert opened == ["breaker open for rule fleet: 100% of clients triggered, limit 50%"]
    assert {c.name: rlab.runs_of(c.name) for c in rlab.lab.fleet} == {
        name: n + 1 for name, n in before.items()
    }
    check = rlab.hubctl("check")
    assert check.returncode == 2, check.stdout
    assert "remediation breaker open for rule fleet" in check.stdout
    listed = rlab.hubctl("remediation", "list")
    assert "breaker open" in listed.stdout and "fleet" in listed.stdout, listed.stdout
    metrics_url = rlab.master().portal_url + "metrics"
    wait_until(
        lambda: (
            'hubcluster_remediation_breaker_open{rule="fleet"} 1.0'
            in urllib.request.urlopen(metrics_url, timeout=5).read().decode()
        ),
        10,
        0.5,
        "the breaker in the master's metrics",
    )
    # The operator fixes the policy, then closes the breaker; it stays closed.
    rlab.publish(ALL_KEPT, "all-kept")
    rlab.run_agents()
    reset = rlab.hubctl("remediation", "reset-breaker", "fleet")
    assert reset.returncode == 0 and "breaker of rule fleet reset by" in reset.stdout, reset
    time.sleep(3)
    check = rlab.hubctl("check")
    assert "remediation breaker" not in check.stdout, check.stdout
    assert rlab.records("fleet") == []


@pytest.mark.slow  # ~30-90 s of real agent runs; `pytest -m slow` runs it
def test_no_more_remediations_run_at_once_than_the_fleet_wide_limit(rlab: RemediationLab):
    rlab.publish(SLOW_AND_BROKEN, "slow-and-broken")
    rlab.run_agents()
    wait_until(
        lambda: len([r for r in rlab.records("slow") if r["status"] == "done"]) == 4,
        90,
        0.5,
        "two runs on each of client001 and client002",
    )
    records = rlab.records("slow")
    assert sorted(r["name"] for r in records) == ["client001"] * 2 + ["client002"] * 2
    spans = sorted((r["started"], r["finished"]) for r in records)
    for (_, ended), (began, _) in zip(spans, spans[1:], strict=False):
        assert began >= ended, "two remediations ran at once; the limit is 1"
    assert any(e.endswith(": 1 remediation running, limit 1") for e in rlab.events("slow"))


@pytest.mark.slow  # ~30-90 s of real agent runs; `pytest -m slow` runs it
def test_a_dry_run_rule_decides_and_records_but_runs_nothing(rlab: RemediationLab):
    rlab.publish(DRY_BROKEN, "dry-broken")
    rlab.run_agents()
    before = rlab.runs_of("client003")
    rlab.wait_for_event("would run agent on client003", "dry")
    time.sleep(3)
    assert rlab.events("dry") == [
        "would run agent on client003 (promise dry_broken not kept; dry run)"
    ]
    assert [r["status"] for r in rlab.records("dry")] == ["dry-run"]
    assert rlab.runs_of("client003") == before


@pytest.mark.slow  # ~30-90 s of real agent runs; `pytest -m slow` runs it
def test_a_frozen_hub_suppresses_remediation_until_unfrozen(rlab: RemediationLab):
    standby = next(h for h in rlab.lab.hubs if h is not rlab.master())
    frozen = rlab.hubctl("freeze", standby.name, "60s")
    assert frozen.returncode == 0, frozen.stderr
    try:
        rlab.publish(BROKEN_WHILE_FROZEN, "broken-while-frozen")
        rlab.run_agents()
        rlab.wait_for_event(f"skipped rule frozen: {standby.member} frozen", "frozen")
        time.sleep(2)
        assert rlab.records("frozen") == []
    finally:
        assert rlab.hubctl("unfreeze", standby.name).returncode == 0
    rlab.wait_for_event("ran agent on client003 (promise broken_while_frozen not kept)", "frozen")


@pytest.mark.slow  # ~30-90 s of real agent runs; `pytest -m slow` runs it
def test_hubctl_remediate_asks_the_master_under_the_rule_s_pause_and_budget(
    rlab: RemediationLab,
):
    rlab.publish(ALL_KEPT, "all-kept-again")
    paused = rlab.hubctl("remediation", "pause", "asked")
    assert paused.returncode == 0 and "remediation paused for rule asked" in paused.stdout
    asked = rlab.hubctl("remediate", "client002", "--rule", "asked")
    assert asked.returncode == 0, asked.stderr
    rlab.wait_for_event("skipped rule asked: the rule paused by", "asked")
    assert rlab.records("asked") == []
    assert rlab.hubctl("remediation", "resume", "asked").returncode == 0
    assert rlab.hubctl("remediate", "client002", "--rule", "asked").returncode == 0
    ran = rlab.wait_for_event("ran agent on client002 (asked by", "asked")
    assert len(ran) == 1
    assert rlab.hubctl("remediate", "client002", "--rule", "asked").returncode == 0
    rlab.wait_for_event("skipped client002: 1 run in the last hour, limit 1", "asked")
    assert len(rlab.records("asked")) == 1
    unknown = rlab.hubctl("remediate", "client002", "--rule", "no-such-rule")
    assert unknown.returncode == 2 and "no remediation rule 'no-such-rule'" in unknown.stderr


@pytest.mark.slow  # a member down and back: ~30 s
def test_a_failed_check_item_runs_an_allow_listed_command_once(rlab: RemediationLab):
    standby = next(h for h in rlab.lab.hubs if h is not rlab.master())
    assert rlab.lab.standin is not None
    rlab.lab.standin.kill(standby.member)
    try:
        ran = rlab.wait_for_event("ran note-member-down for the cluster", "member-down")
        assert ran == [
            f"ran note-member-down for the cluster (check: member down: {standby.member})"
        ]
        time.sleep(3)  # more rounds see the same item: it is the same evidence
        assert len(rlab.records("member-down")) == 1
        assert rlab.notes is not None
        assert rlab.notes.read_text() == f"check: member down: {standby.member}\n"
    finally:
        rlab.lab.standin.revive(standby.member)
