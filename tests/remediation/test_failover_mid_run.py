"""The master killed in the middle of a remediation: the new master does not run it again
(the idempotency key was on a majority before the run began) and goes on with the same
budget (the records are in the replica set)."""

from __future__ import annotations

import pytest

from tests.conftest import wait_until
from tests.remediation.lab_fleet import RemediationLab

# The shared lab (tests/remediation/conftest.py, rule "slowfix"): this test kills its master
# and revives it as a standby before it ends.
pytestmark = pytest.mark.timeout(300)

# The timer's runs break slow_broken; a remediation's run (class `remediating`) takes a few
# seconds and reports no new evidence, so the new master sees the very evidence the old one
# acted on, however long the election takes.
SLOW_BROKEN = """\
[[promise]]
name = "slow_broken"
check = "false"
if = "client001.!remediating"
ifelapsed = 0

[[promise]]
name = "slow_repair"
check = "sleep 5; true"
if = "remediating"
ifelapsed = 0
"""


def test_a_new_master_neither_reruns_a_remediation_nor_forgets_the_budget(rlab: RemediationLab):
    old = rlab.master()
    try:
        _scenario(rlab, old.name)
    finally:
        rlab.lab.revive(old.name)
        wait_until(
            lambda: rlab.lab.member_state(old.name) == "SECONDARY",
            30,
            0.2,
            f"{old.name} back as a standby",
        )


def _scenario(flab: RemediationLab, old_name: str) -> None:
    flab.publish(SLOW_BROKEN, "slow-broken")
    before = flab.runs_of("client001")
    flab.run_agents()
    first = wait_until(
        lambda: [r for r in flab.records("slowfix") if r["status"] == "running"],
        60,
        0.1,
        "the first remediation to start",
    )[0]
    old = flab.master()
    assert old.name == old_name and first["by"] == old.name
    flab.lab.kill(old.name)  # its mongod and its hubd, mid-run
    new = wait_until(
        lambda: (m := flab.lab.master()) is not None and m.name != old.name and m,
        30,
        0.1,
        "a new master",
    )
    flab.wait_for_event(
        "skipped client001: already remediated by "
        f"{old.name} for this evidence (promise slow_broken not kept)",
        "slowfix",
    )
    flab.wait_for_event(f"remediation of client001 by {old.name} never finished", "slowfix")
    flab.run_agents()  # the timer's next run: still broken, new evidence
    flab.wait_for_event("ran agent on client001 (promise slow_broken not kept)", "slowfix")
    flab.run_agents()
    flab.wait_for_event("skipped client001: 2 runs in the last hour, limit 2", "slowfix", 90)
    records = flab.records("slowfix")
    assert [r["by"] for r in records] == [old.name, new.name]
    assert records[0]["status"] == "interrupted"
    assert records[1]["status"] in ("done", "timed-out")  # a slow machine may time it out
    assert records[0]["evidence"] != records[1]["evidence"]
    # The client ran: three timer runs, the old master's and the new master's. No more.
    wait_until(lambda: flab.runs_of("client001") >= before + 5, 30, 0.2, "the runs to end")
    assert flab.runs_of("client001") == before + 5
