"""The triggers besides a promise not kept, and the maintenance window, in the shared lab.

A client whose agent stopped contacting the hubs (stale_client: the remediation runs its
agent, and it is fresh again); a hub whose masterfiles left the cluster's release by hand
(masterfiles_diverged: the re-sync brings it back); a maintenance window opened with
`hubctl maintenance start` holds every rule until `hubctl maintenance end`.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import time

import pytest

from hub.masterfiles import current_release_id, is_complete, releases_dir
from tests.conftest import wait_until
from tests.remediation.lab_fleet import ROUND, RemediationLab

pytestmark = pytest.mark.timeout(300)

BROKEN_IN_MAINTENANCE = """\
[[promise]]
name = "broken_in_maintenance"
check = "false"
if = "client003"
ifelapsed = 0
"""

KEPT = """\
[[promise]]
name = "kept"
check = "true"
"""


def _last_contact(rlab: RemediationLab) -> dict[str, dt.datetime]:
    def read(db) -> dict[str, dt.datetime]:
        names = {d["_id"]: d["hostname"] for d in db.hosts.find()}
        return {
            names[d["_id"]]: d["latest"].replace(tzinfo=dt.UTC)
            for d in db.last_seen.find()
            if d["_id"] in names
        }

    return rlab.read(read)


def test_a_stale_client_gets_its_agent_run_and_is_fresh_again(rlab: RemediationLab):
    names = [c.name for c in rlab.lab.fleet]
    before = {name: rlab.runs_of(name) for name in names}
    assert rlab.hubctl("remediation", "resume", "stale").returncode == 0
    try:
        for name in names:  # each goes silent 6 s after its last agent run
            rlab.wait_for_event(f"ran agent on {name} (", "stale", 40)
    finally:
        assert rlab.hubctl("remediation", "pause", "stale").returncode == 0
    ran = [e for e in rlab.events("stale") if e.startswith("ran agent")]
    assert len(ran) == 3, ran
    for line in ran:
        assert re.fullmatch(
            r"ran agent on client00[1-3] \(silent for \d+s, stale after 6s\)", line
        ), line
    records = rlab.records("stale")
    assert sorted((r["name"], r["status"]) for r in records) == [(n, "done") for n in names]
    # The run contacted the hub: each client's last contact is after its remediation began.
    wait_until(
        lambda: all(
            _last_contact(rlab)[r["name"]] > r["started"].replace(tzinfo=dt.UTC) for r in records
        ),
        10,
        0.2,
        "every remediated client contacting a hub again",
    )
    assert {name: rlab.runs_of(name) for name in names} == {
        name: n + 1 for name, n in before.items()
    }


def test_a_hub_whose_masterfiles_left_the_cluster_s_release_is_re_synced(rlab: RemediationLab):
    serving = rlab.publish(KEPT, "kept-for-resync")  # and the lab's first release is older
    master = rlab.master()
    standby = next(h for h in rlab.lab.hubs if h is not master)
    assert current_release_id(master.workdir / "masterfiles") == serving
    root = standby.workdir / "masterfiles"
    wait_until(lambda: current_release_id(root) == serving, 20, 0.2, "the standby in sync")
    older = next(
        d.name
        for d in sorted(releases_dir(root).iterdir())
        if d.name != serving and is_complete(root, d.name)
    )
    # Someone rolls the standby back by hand; its generation file still names the newest
    # generation, so its own periodic sync finds nothing to do.
    subprocess.run(["ln", "-sfn", f"releases/{older}", str(root / "current")], check=True)
    time.sleep(2)  # two of its syncs (1 s) and a state write (2 s): it stays rolled back
    assert current_release_id(root) == older
    assert rlab.hubctl("remediation", "resume", "diverged").returncode == 0
    try:
        [line] = rlab.wait_for_event(f"re-synced masterfiles on {standby.name}", "diverged")
    finally:
        assert rlab.hubctl("remediation", "pause", "diverged").returncode == 0
    assert line.startswith(
        f"re-synced masterfiles on {standby.name} (masterfiles {older}, master serves {serving}"
    ), line
    assert current_release_id(root) == serving
    [record] = rlab.records("diverged")
    assert record["status"] == "done", record
    assert record["result"].startswith(f"{standby.name}: current moved back from {older}")


def test_a_maintenance_window_holds_remediation_until_it_ends(rlab: RemediationLab):
    standby = next(h for h in rlab.lab.hubs if h is not rlab.master())
    opened = rlab.hubctl("maintenance", "start", standby.name, "--for", "60s")
    assert opened.returncode == 0, opened.stderr
    try:
        rlab.publish(BROKEN_IN_MAINTENANCE, "broken-in-maintenance")
        rlab.run_agent("client003")
        rlab.wait_for_event(
            f"skipped rule maint: maintenance window open for {standby.member}", "maint"
        )
        time.sleep(ROUND)  # another round: still nothing
        assert rlab.records("maint") == []
    finally:
        ended = rlab.hubctl("maintenance", "end")
        assert ended.returncode == 0, ended.stderr
    rlab.wait_for_event("ran agent on client003 (promise broken_in_maintenance not kept)", "maint")
    assert [r["status"] for r in rlab.records("maint")] in (["running"], ["done"])
