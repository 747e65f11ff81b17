"""Fixtures: one lab with remediation rules for the tests that leave it as they found it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.remediation.lab_fleet import RemediationLab, start_lab

# One rule per scenario, each on its own promise, so the scenarios never fire each other's.
# max_concurrent = 1: the concurrency test needs it, and no other test runs two at once.
RULES = """
[remediation]
max_concurrent = 1
action_timeout = "30s"

[remediation.commands]
note-member-down = ["/bin/sh", "-c", "echo \\"$HUBCLUSTER_REMEDIATION_REASON\\" >> {notes}"]

[[remediation.rules]]
name = "budget"
trigger = "promise_not_kept"
promise = "keeps_failing"
action = "run_agent"
classes = ["remediation_budget"]
max_runs = 2
window = "1h"
cooldown = "0s"
breaker_percent = 50

[[remediation.rules]]
name = "flap"
trigger = "promise_not_kept"
promise = "flapping"
action = "run_agent"
max_runs = 3
window = "1h"
cooldown = "4s"
breaker_percent = 50

[[remediation.rules]]
name = "fleet"
trigger = "promise_not_kept"
promise = "broken_everywhere"
action = "run_agent"
max_runs = 5
cooldown = "0s"
breaker_percent = 50

[[remediation.rules]]
name = "slow"
trigger = "promise_not_kept"
promise = "slow_and_broken"
action = "run_agent"
max_runs = 2
cooldown = "0s"
breaker_percent = 100

[[remediation.rules]]
name = "dry"
trigger = "promise_not_kept"
promise = "dry_broken"
action = "run_agent"
max_runs = 5
cooldown = "0s"
breaker_percent = 50
dry_run = true

[[remediation.rules]]
name = "frozen"
trigger = "promise_not_kept"
promise = "broken_while_frozen"
action = "run_agent"
max_runs = 1
cooldown = "0s"
breaker_percent = 50

[[remediation.rules]]
name = "member-down"
trigger = "check"
check = "member down"
action = "command"
command = "note-member-down"
max_runs = 1
cooldown = "0s"

[[remediation.rules]]
name = "asked"
trigger = "promise_not_kept"
promise = "never_present"
action = "run_agent"
max_runs = 1
cooldown = "0s"
"""


@pytest.fixture(scope="package")
def rlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemediationLab]:
    notes = tmp_path_factory.mktemp("remediation-notes") / "member-down.txt"
    lab = start_lab(tmp_path_factory.mktemp("remediation-lab"), RULES.format(notes=notes))
    lab.notes = notes
    yield lab
    lab.save_history()
    lab.lab.down()
