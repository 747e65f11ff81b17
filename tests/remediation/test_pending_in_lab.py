"""`hubctl remediation list` shows the triggers a rule holds before acting, as the master
published them after its rounds, in the shared lab: a client whose promise fails is pending
for the rule's hold (6 s), and no longer once it was remediated or once its trigger cleared.
A figure whose publisher is not the master now is not shown as current.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from typing import Any

import pytest
from typer.testing import CliRunner

from hub.remediation.pending import PENDING, read_pending
from hub.store import HubStore
from hubctl.app import app
from hubctl.lab.child_commands import CLIENT_AGENT
from hubctl.remediation_commands import pending_lines
from tests.conftest import wait_until
from tests.remediation.lab_fleet import RemediationLab

pytestmark = pytest.mark.timeout(300)

RULE = "pending"
PENDING_BROKEN = """\
[[promise]]
name = "pending_broken"
check = "false"
if = "client002.!remediation_pending"
ifelapsed = 0
"""


def _published(rlab: RemediationLab) -> dict[str, Any]:
    return rlab.read(lambda db: db[PENDING].find_one({"_id": "current"}) or {})


def _waiting(rlab: RemediationLab) -> list[str]:
    return [w["name"] for w in (_published(rlab).get("rules") or {}).get(RULE, [])]


def _published_after(rlab: RemediationLab, when: dt.datetime) -> bool:
    doc = _published(rlab)
    return bool(doc) and doc["published"].replace(tzinfo=dt.UTC) > when


def _hubctl(rlab: RemediationLab, *args: str) -> str:
    """hubctl in this process (a process of its own costs about 2 s of start-up a call)."""
    out = CliRunner().invoke(app, [*args, "--mongo", rlab.lab.uri], env={"COLUMNS": "80"})
    assert out.exit_code == 0, out.output
    return out.stdout


def _listed(rlab: RemediationLab, master: str) -> list[str]:
    """`hubctl remediation list` at 80 columns: RULE's pending lines under the master's
    current figure."""
    text = _hubctl(rlab, "remediation", "list")
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), text
    assert any(
        re.fullmatch(rf"pending as of \d+s ago \(published by {master}, the master\)", line)
        for line in lines
    ), text
    [row] = [line for line in lines if line.startswith(f"│ {RULE} ")]
    below = lines[lines.index(row) + 1]  # the State cell's second line
    waiting = [line for line in lines if line.startswith(f"  {RULE}: ")]
    assert bool(waiting) == below.rstrip(" │").endswith(f"{len(waiting)} pending"), text
    return waiting


def _listed_json(rlab: RemediationLab) -> dict[str, Any]:
    rows = json.loads(_hubctl(rlab, "remediation", "list", "--json"))
    [row] = [r for r in rows if r["rule"] == RULE]
    return dict(row["pending"])


def _fails_on_client002(rlab: RemediationLab) -> None:
    rlab.run_agent("client002")
    rlab.wait_collected("client002")
    wait_until(lambda: _waiting(rlab) == ["client002"], 10, 0.1, "client002 pending")


def test_a_trigger_in_its_hold_is_listed_until_remediated_or_cleared(rlab: RemediationLab):
    rlab.publish(PENDING_BROKEN, "pending-broken")
    master = rlab.master().name
    _fails_on_client002(rlab)
    [line] = _listed(rlab, master)
    assert re.fullmatch(rf"  {RULE}: client002 pending \d+s, hold ends in [1-6]s", line), line
    pending = _listed_json(rlab)
    assert (pending["count"], pending["current"], pending["by"]) == (1, True, master), pending
    assert [t["name"] for t in pending["targets"]] == ["client002"]
    assert rlab.records(RULE) == []  # held, not run

    # Remediated: the hold ends, the master runs the agent (defining remediation_pending,
    # so the promise is no longer evaluated) and the client is no longer pending.
    rlab.wait_for_event("ran agent on client002 (promise pending_broken not kept)", RULE, 30)
    ran = rlab.records(RULE)[0]["started"].replace(tzinfo=dt.UTC)
    wait_until(lambda: _published_after(rlab, ran), 10, 0.1, "a round after the run")
    assert _waiting(rlab) == []
    assert _listed(rlab, master) == []

    # Cleared: failing again starts a new hold; a run whose report keeps the promise out of
    # the failures (the class defined) ends it before the master acts.
    _fails_on_client002(rlab)
    config = next(c.config for c in rlab.lab.fleet if c.name == "client002")
    cleared = subprocess.run(
        [*CLIENT_AGENT, "run", "--config", str(config), "--define", "remediation_pending"],
        capture_output=True,
        timeout=120,
    )
    assert cleared.returncode == 0, cleared.stderr
    rlab.wait_collected("client002")
    wait_until(lambda: _waiting(rlab) == [], 10, 0.1, "client002 no longer pending")
    assert _listed(rlab, master) == []
    assert len(rlab.records(RULE)) == 1  # the second hold never ended: nothing ran


def test_a_figure_from_a_hub_that_is_not_the_master_now_is_not_current(rlab: RemediationLab):
    master = rlab.master()
    standby = next(h for h in rlab.lab.hubs if h is not master)
    wait_until(lambda: _published(rlab).get("by") == master.name, 10, 0.1, "a published figure")
    client = rlab.lab.client()
    try:
        store = HubStore(client)
        now = dt.datetime.now(dt.UTC)
        assert read_pending(store, master.member, now).current
        # The standby's member became primary: the master's figure is a former master's.
        moved = read_pending(store, standby.member, now)
        assert moved.by == master.name and not moved.current and moved.of(RULE) is None
        [said] = pending_lines(moved, [RULE], now)
        assert re.fullmatch(
            rf"pending: not shown: published \d+s ago by {master.name}, not the master now", said
        ), said
        # The master silent for ten minutes: its figure is nobody's current one.
        later = read_pending(store, master.member, now + dt.timedelta(minutes=10))
        assert not later.current
    finally:
        client.close()
