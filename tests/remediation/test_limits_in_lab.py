"""Issue 16 in a lab: real hubd, real client-agent runs, the master's remediation engine.

Each test publishes its own policy (a promise only its rule watches), runs the agents as the
lab's timer would, and reads back the history and the records the master wrote, and the
clients' own spools (how many agent runs really happened). Rounds are 1 s; a test that
must show nothing more happens waits a round or two, not longer.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.remediation.lab_fleet import ROUND, RemediationLab

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

NEEDS_SLOW_FIX = """\
[[promise]]
name = "needs_slow_fix"
check = "false"
if = "client002.!remediation_slow"
ifelapsed = 0

[[promise]]
name = "slow_fix"
check = "sleep 37"
if = "remediation_slow"
ifelapsed = 0
"""

ALL_KEPT = """\
[[promise]]
name = "fine"
check = "true"
"""

# A lab (three hubd, clients, the stand-in) starts in the first test; allow for a busy CI.
pytestmark = pytest.mark.timeout(300)


def _settle(rlab: RemediationLab, rule: str) -> None:
    """Two more rounds, then nothing of `rule` running."""
    time.sleep(2 * ROUND)
    wait_until(
        lambda: all(r["status"] != "running" for r in rlab.records(rule)),
        40,
        0.2,
        f"no remediation of rule {rule} running",
    )


def test_a_client_whose_promise_keeps_failing_gets_runs_up_to_the_per_target_limit(
    rlab: RemediationLab,
):
    rlab.publish(KEEPS_FAILING, "keeps-failing")
    before = rlab.runs_of("client001")
    rlab.run_agent("client001")  # the timer's run: client001 now reports keeps_failing not kept
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
    # The rule's default hold (two rounds) passed before the first run.
    first_run = min(r["started"] for r in records)
    seen = _first_seen(rlab, "client001", "keeps_failing")
    assert (first_run - seen).total_seconds() >= 2 * ROUND


def _first_seen(rlab: RemediationLab, client: str, promise: str):
    """When the master stored the first report of `client` with `promise` not kept."""

    def read(db):
        sha = db.hosts.find_one({"hostname": client})["_id"]
        reports = db.reports.find({"host": sha}).sort("stored", 1)
        return next(r["stored"] for r in reports if promise in str(r.get("payload")))

    return rlab.read(read)


def test_a_flapping_trigger_stays_within_the_cooldown_and_the_budget(rlab: RemediationLab):
    # The cool-down is long enough that the flapping promise is seen again (a run flips it,
    # the next round stores it) well inside it, however loaded the machine.
    rlab.publish(FLAPPING, "flapping")

    def limits_met() -> bool:
        history = rlab.events("flap")
        return any("cool-down 8s" in e for e in history) and any(
            "2 runs in the last hour, limit 2" in e for e in history
        )

    deadline = time.monotonic() + 90
    while not limits_met() and time.monotonic() < deadline:
        # The promise flips on every run, whoever asks for it. Each run's report is stored
        # (and judged in that round) before the next: runs back to back at about the
        # rounds' pace could alias with them, and the master would never see it flap.
        rlab.run_agent("client002")
        rlab.wait_collected("client002")
    rlab.run_agent("client002")  # and it keeps flapping past the budget
    rlab.wait_collected("client002")
    _settle(rlab, "flap")
    records = rlab.records("flap")
    assert len(records) == 2, ([r["_id"] for r in records], rlab.events("flap"))
    for earlier, later in zip(records, records[1:], strict=False):
        gap = (later["started"] - earlier["finished"]).total_seconds()
        assert gap >= 8.0, f"a run {gap:.1f}s after the last one ended; cool-down is 8s"
    history = rlab.events("flap")
    assert any("cool-down 8s" in e for e in history), history
    assert [e for e in history if "limit 2" in e] == [
        "skipped client002: 2 runs in the last hour, limit 2"
    ]


def test_a_policy_broken_on_every_client_opens_the_breaker_and_runs_nothing(
    rlab: RemediationLab,
):
    # The fleet reports the broken policy one client after the other, each report stored
    # (and judged) in its own round, as a fleet's timer runs would arrive. One round alone
    # sees a third of the fleet, under the 50% limit: the rule's 8 s hold keeps that client
    # pending while the breaker counts the clients that follow.
    rlab.publish(BROKEN_EVERYWHERE, "broken-everywhere")
    before = {c.name: rlab.runs_of(c.name) for c in rlab.lab.fleet}
    for client in before:
        rlab.run_agent(client)
        rlab.wait_collected(client)
    rlab.wait_for_event("breaker open for rule fleet", "fleet")
    check = rlab.hubctl("check")
    assert check.returncode == 2, check.stdout
    assert "remediation breaker open for rule fleet" in check.stdout
    listed = rlab.hubctl("remediation", "list")
    assert "breaker open" in listed.stdout and "fleet" in listed.stdout, listed.stdout
    assert "promise broken_everywhere not kept for 8s -> run_agent" in listed.stdout
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
    # Past the hold: the clients are due now, and the breaker holds them.
    rlab.wait_for_event(
        "skipped rule fleet: breaker open, waiting for hubctl remediation reset-breaker fleet",
        "fleet",
    )
    assert rlab.records("fleet") == []
    opened = [e for e in rlab.events("fleet") if e.startswith("breaker open")]
    assert opened == [
        "breaker open for rule fleet: 67% of clients triggered in the last 8s, limit 50%"
    ]
    assert {c.name: rlab.runs_of(c.name) for c in rlab.lab.fleet} == {
        name: n + 1 for name, n in before.items()
    }
    # The operator fixes the policy, then closes the breaker; it stays closed.
    rlab.publish(ALL_KEPT, "all-kept")
    rlab.run_agents()
    reset = rlab.hubctl("remediation", "reset-breaker", "fleet")
    assert reset.returncode == 0 and "breaker of rule fleet reset by" in reset.stdout, reset
    time.sleep(2 * ROUND)
    check = rlab.hubctl("check")
    assert "remediation breaker" not in check.stdout, check.stdout
    assert rlab.records("fleet") == []


@pytest.mark.slow  # overlapping multi-second agent runs on two clients: ~15 s
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


def test_a_dry_run_rule_decides_and_records_but_runs_nothing(rlab: RemediationLab):
    rlab.publish(DRY_BROKEN, "dry-broken")
    rlab.run_agent("client003")
    before = rlab.runs_of("client003")
    rlab.wait_for_event("would run agent on client003", "dry")
    time.sleep(2 * ROUND)
    assert rlab.events("dry") == [
        "would run agent on client003 (promise dry_broken not kept; dry run)"
    ]
    assert [r["status"] for r in rlab.records("dry")] == ["dry-run"]
    assert rlab.runs_of("client003") == before


def test_a_frozen_hub_suppresses_remediation_until_unfrozen(rlab: RemediationLab):
    standby = next(h for h in rlab.lab.hubs if h is not rlab.master())
    frozen = rlab.hubctl("freeze", standby.name, "60s")
    assert frozen.returncode == 0, frozen.stderr
    try:
        rlab.publish(BROKEN_WHILE_FROZEN, "broken-while-frozen")
        rlab.run_agent("client003")
        rlab.wait_for_event(f"skipped rule frozen: {standby.member} frozen", "frozen")
        time.sleep(ROUND)
        assert rlab.records("frozen") == []
    finally:
        assert rlab.hubctl("unfreeze", standby.name).returncode == 0
    rlab.wait_for_event("ran agent on client003 (promise broken_while_frozen not kept)", "frozen")


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


def _running_sleeps(seconds: int) -> list[int]:
    """Pids of `sleep SECONDS` processes on this machine (the slow fix's check)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"sleep" in argv[0] and str(seconds).encode() in argv[1:2]:
            found.append(int(proc.name))
    return found


def test_an_action_outliving_the_rule_s_timeout_is_stopped_by_the_client_and_recorded(
    rlab: RemediationLab,
):
    # The rule's action_timeout (2s) is the deadline the hub sends with its `run`; the
    # client stops the slow fix then (its check would sleep 37 s) and says so.
    rlab.publish(NEEDS_SLOW_FIX, "needs-slow-fix")
    rlab.run_agent("client002")
    before = rlab.runs_of("client002")
    timed_out = rlab.wait_for_event("agent run on client002 timed out", "deadline", 30)
    assert timed_out == [
        "agent run on client002 timed out: stopped by the client at the 2s deadline "
        "(promise needs_slow_fix not kept)"
    ]
    [record] = rlab.records("deadline")
    assert record["status"] == "timed-out" and record["timeout"] == 2.0
    assert (record["finished"] - record["started"]).total_seconds() < 2 + 3  # + ANSWER_GRACE
    assert rlab.runs_of("client002") == before  # stopped: it spooled no report
    assert _running_sleeps(37) == []  # its whole process group went with it


@pytest.mark.slow  # a member of the shared lab's set down and back: ~30 s
def test_a_failed_check_item_runs_an_allow_listed_command_once(rlab: RemediationLab):
    standby = next(h for h in rlab.lab.hubs if h is not rlab.master())
    assert rlab.lab.standin is not None
    assert rlab.hubctl("remediation", "resume", "member-down").returncode == 0
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
        assert rlab.hubctl("remediation", "pause", "member-down").returncode == 0
