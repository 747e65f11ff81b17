"""Fixtures: one lab with remediation rules for the tests that leave it as they found it.

Rounds are 1 s in the lab, so the default hold is 2 s; most rules act at once (hold 0s) to
keep the tests short, and each test that needs the hold says so in its rule. The rules whose
triggers any test would set off (a silent client, hubs a moment apart after a publish, the
failover test's killed member) start paused; their tests resume them and pause them again.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hub.remediation.ledger import Ledger
from hub.store import HubStore
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
# hold: the default, two rounds
max_runs = 2
window = "1h"
cooldown = "0s"
breaker_percent = 50

[[remediation.rules]]
name = "flap"
trigger = "promise_not_kept"
promise = "flapping"
action = "run_agent"
hold = "0s"
max_runs = 2
window = "1h"
cooldown = "8s"
breaker_percent = 50

[[remediation.rules]]
name = "fleet"
trigger = "promise_not_kept"
promise = "broken_everywhere"
action = "run_agent"
hold = "8s"
max_runs = 5
cooldown = "0s"
breaker_percent = 50

[[remediation.rules]]
name = "slow"
trigger = "promise_not_kept"
promise = "slow_and_broken"
action = "run_agent"
hold = "0s"
max_runs = 2
cooldown = "0s"
breaker_percent = 100

[[remediation.rules]]
name = "dry"
trigger = "promise_not_kept"
promise = "dry_broken"
action = "run_agent"
hold = "0s"
max_runs = 5
cooldown = "0s"
breaker_percent = 50
dry_run = true

[[remediation.rules]]
name = "frozen"
trigger = "promise_not_kept"
promise = "broken_while_frozen"
action = "run_agent"
hold = "0s"
max_runs = 1
cooldown = "0s"
breaker_percent = 50

[[remediation.rules]]
name = "member-down"
trigger = "check"
check = "member down"
action = "command"
command = "note-member-down"
hold = "0s"
max_runs = 1
cooldown = "0s"

[[remediation.rules]]
name = "asked"
trigger = "promise_not_kept"
promise = "never_present"
action = "run_agent"
max_runs = 1
cooldown = "0s"

[[remediation.rules]]
name = "maint"
trigger = "promise_not_kept"
promise = "broken_in_maintenance"
action = "run_agent"
hold = "0s"
max_runs = 1
cooldown = "0s"
breaker_percent = 50

[[remediation.rules]]
name = "deadline"
trigger = "promise_not_kept"
promise = "needs_slow_fix"
action = "run_agent"
classes = ["remediation_slow"]
action_timeout = "2s"
hold = "0s"
max_runs = 1
cooldown = "0s"
breaker_percent = 50

[[remediation.rules]]
name = "slowfix"
trigger = "promise_not_kept"
promise = "slow_broken"
action = "run_agent"
classes = ["remediating"]
action_timeout = "8s"
hold = "0s"
max_runs = 2
window = "1h"
cooldown = "0s"
breaker_percent = 50

[[remediation.rules]]
name = "pending"
trigger = "promise_not_kept"
promise = "pending_broken"
action = "run_agent"
classes = ["remediation_pending"]
hold = "6s"
max_runs = 2
cooldown = "0s"
breaker_percent = 50

[[remediation.rules]]
name = "stale"
trigger = "stale_client"
stale_after = "6s"
action = "run_agent"
hold = "0s"
max_runs = 1
cooldown = "0s"
breaker_percent = 100

[[remediation.rules]]
name = "diverged"
trigger = "masterfiles_diverged"
diverged_for = "2s"
action = "resync_masterfiles"
hold = "0s"
max_runs = 1
cooldown = "0s"
"""

# Paused from the start (see above); a test resumes one and pauses it again.
PAUSED_AT_START = ("stale", "diverged", "member-down")


@pytest.fixture(scope="package")
def rlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemediationLab]:
    notes = tmp_path_factory.mktemp("remediation-notes") / "member-down.txt"
    lab = start_lab(tmp_path_factory.mktemp("remediation-lab"), RULES.format(notes=notes))
    lab.notes = notes
    client = lab.lab.client()
    try:
        # At once, well before stale_after: the clients contacted the hub as they bootstrapped.
        ledger = Ledger(HubStore(client))
        for rule in PAUSED_AT_START:
            ledger.set_paused(rule, True, "tests/remediation/conftest.py")
    finally:
        client.close()
    yield lab
    lab.save_history()
    lab.close()
    lab.lab.down()
