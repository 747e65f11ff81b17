"""The master killed in the middle of a remediation: the new master does not run it again
(the idempotency key was on a majority before the run began) and goes on with the same
budget (the records are in the replica set)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import wait_until
from tests.remediation.lab_fleet import RemediationLab, start_lab

RULES = """
[remediation]
action_timeout = "15s"

[[remediation.rules]]
name = "slowfix"
trigger = "promise_not_kept"
promise = "slow_broken"
action = "run_agent"
classes = ["remediating"]
max_runs = 2
window = "1h"
cooldown = "0s"
breaker_percent = 50
"""

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
check = "sleep 6; true"
if = "remediating"
ifelapsed = 0
"""


@pytest.fixture
def flab(tmp_path) -> Iterator[RemediationLab]:
    lab = start_lab(tmp_path / "lab", RULES)
    yield lab
    lab.save_history()
    lab.lab.down()


def test_a_new_master_neither_reruns_a_remediation_nor_forgets_the_budget(flab):
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
    assert first["by"] == old.name
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
    assert records[1]["status"] in ("done", "failed")  # a slow machine may time it out
    assert records[0]["evidence"] != records[1]["evidence"]
    # The client ran: three timer runs, the old master's and the new master's. No more.
    wait_until(lambda: flab.runs_of("client001") >= before + 5, 30, 0.2, "the runs to end")
    assert flab.runs_of("client001") == before + 5
