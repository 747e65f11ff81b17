"""The lab brings its clients up concurrently, each a client-agent process of its own.

Speed is measured by `benchmarks/lab_startup.py`; here: every client registered once and
serving, one clear error naming the clients that failed, and no client outliving the lab.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.mongo import DB_NAME, connect
from hubctl.lab.cluster import LabCluster


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_every_client_is_registered_once_and_serving(lab):
    client = connect(lab.uri, timeout=10)
    try:
        names = sorted(d["hostname"] for d in client[DB_NAME].hosts.find())
    finally:
        client.close()
    assert names == sorted(c.name for c in lab.fleet)
    assert all(c.proc is not None and c.proc.poll() is None for c in lab.fleet)
    assert len({c.proc.pid for c in lab.fleet}) == len(lab.fleet)
    master = lab.master()
    assert set(lab.policy_servers().values()) == {master.service}
    line = lab.ready_line()
    assert line.startswith("lab ready in ") and f", {len(lab.fleet)} clients " in line


def test_failed_bootstraps_are_named_in_one_error(lab, tmp_path):
    others = LabCluster(tmp_path / "others", clients=3, bootstrap_concurrency=2)
    others.fingerprint = "SHA256:" + "A" * 43  # not the hubs' key: every bootstrap refuses it
    others.write_clients()
    try:
        with pytest.raises(RuntimeError) as failed:
            others.bootstrap_clients(lab.master())
    finally:
        others.down()
    message = str(failed.value)
    assert message.startswith("bootstrap of client00")
    assert "failed: " in message and message.endswith("(and 2 more)")
    assert "\n" not in message


def test_no_client_outlives_the_lab(lab):
    pids = [c.proc.pid for c in lab.fleet]
    assert all(alive(pid) for pid in pids)
    # What the lab's own death does: its end of the zygote's stdin closes.
    lab.forker.close()
    assert not any(alive(pid) for pid in pids)
    assert all(c.proc.poll() is not None for c in lab.fleet)
