"""`hubctl lab mongo` in its own process, driven by `hubctl lab ctl` from another."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from hub.mongo import DB_NAME, connect, use_access
from hub.replset import ReplicaSet
from hubctl.lab.standin.credentials import ClusterCredentials

HUBCTL = [sys.executable, "-c", "from hubctl.app import main; main()"]


def test_lab_mongo_prints_uri_and_control_and_stops_on_sigterm():
    proc = subprocess.Popen(
        HUBCTL + ["lab", "mongo", "--election-timeout", "500ms"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        uri = proc.stdout.readline().strip()
        control = proc.stdout.readline().strip()
        env_file = Path(proc.stdout.readline().strip())
        assert uri.startswith("mongodb://127.0.0.1:") and uri.endswith("replicaSet=CFEngineNova")
        assert control.startswith("127.0.0.1:")
        # line 3: the operator's credentials, beside the password files and the CA
        creds = ClusterCredentials(env_file.parent)
        hosts = uri.split("//", 1)[1].split("/", 1)[0].split(",")
        assert creds.initiate(uri, hosts, "CFEngineNova") == "initiated"
        use_access(creds.access("operator"))
        rs = ReplicaSet(uri)
        primary = rs.wait_for_primary(10)
        killed = subprocess.run(
            HUBCTL + ["lab", "ctl", "--control", control, "kill", primary],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert killed.returncode == 0, killed.stderr
        assert rs.wait_for_primary(15, exclude=primary) != primary
        status = subprocess.run(
            HUBCTL + ["lab", "ctl", "--control", control, "status"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        states = {m["name"]: m for m in json.loads(status.stdout)["members"]}
        assert states[primary]["alive"] is False
        unknown = subprocess.run(
            HUBCTL + ["lab", "ctl", "--control", control, "kill", "127.0.0.1:1"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert unknown.returncode == 1 and "no member '127.0.0.1:1'" in unknown.stderr
        rs.close()
    finally:
        use_access(None)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "stand-in stopped" in err


def test_lab_mongo_initiate_prints_its_lines_once_its_users_can_log_in():
    """A script reads the lines and logs in at once: the users exist by then."""
    proc = subprocess.Popen(
        HUBCTL + ["lab", "mongo", "--initiate", "--election-timeout", "500ms"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        uri = proc.stdout.readline().strip()
        proc.stdout.readline()  # the control address
        creds = ClusterCredentials(Path(proc.stdout.readline().strip()).parent)
        use_access(creds.access("hubd"))
        client = connect(uri, timeout=10)
        try:
            assert client[DB_NAME]["rounds"].count_documents({}) == 0
        finally:
            client.close()
    finally:
        use_access(None)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert proc.returncode == 0
