"""The lab runs as production does: hubd logs in as the hubd user from its config (a 0600
password file, mongod's certificate checked against the lab's CA), hubctl as the operator
from the environment, and no password is ever on a command line."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from hub.config import load_hub_config

HUBCTL = str(Path(sys.executable).with_name("hubctl"))


def without_credentials() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HUBCLUSTER_MONGO")}


def test_lab_hubs_log_in_as_hubd_and_the_operator_lines_work(lab):
    ca = lab.credentials.ca_file
    password = lab.credentials.password_file("hubd").read_text().strip()
    for hub in lab.hubs:
        access = load_hub_config(hub.config).mongo_access
        assert access is not None and access.username == "hubd" and access.tls_ca_file == ca
        toml = hub.config.read_text()
        [line] = [x for x in toml.splitlines() if x.startswith("password_file")]
        path = Path(line.split("=", 1)[1].strip().strip('"'))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and password not in toml
        assert hub.proc is not None and hub.proc.poll() is None  # a refusal stops hubd
        assert password not in Path(f"/proc/{hub.proc.pid}/cmdline").read_text()

    lines = lab.operator_lines(Path("lab"))
    env_file = lab.credentials.env_file("operator")
    assert len(lines) == 2 and all(len(line) <= 80 for line in lines), lines
    assert lines[1] == f"hubctl as the operator: . {env_file}"
    assert password not in env_file.read_text()
    sourced = subprocess.run(
        ["sh", "-c", f'. "{env_file}" && exec "$0" status --json --mongo "$1"', HUBCTL, lab.uri],
        capture_output=True,
        text=True,
        timeout=60,
        env=without_credentials(),
    )
    assert sourced.returncode == 0, sourced.stderr
    assert '"health": "healthy"' in sourced.stdout
    bare = subprocess.run(
        [HUBCTL, "status", "--mongo", lab.uri, "--timeout", "3s"],
        capture_output=True,
        text=True,
        timeout=60,
        env=without_credentials(),
    )
    assert bare.returncode != 0 and len(bare.stderr.strip().splitlines()) == 1, bare.stderr


def test_lab_up_shows_the_credentials_under_the_dir_as_typed(tmp_path):
    from hubctl.lab.cluster import LabCluster

    lab = LabCluster(tmp_path / "lab", credentials_dir=tmp_path / "lab" / "db")
    assert lab.operator_lines(Path(".lab")) == [
        "db users (SCRAM, TLS): password files in .lab/db/passwords",
        "hubctl as the operator: . .lab/db/operator.env",
    ]
    for name in ("hubcluster-admin", "hubd", "operator", "reader"):
        assert stat.S_IMODE((tmp_path / "lab" / "db" / "passwords" / name).stat().st_mode) == 0o600
    env = (tmp_path / "lab" / "db" / "operator.env").read_text()
    assert "export HUBCLUSTER_MONGO_USER=operator\n" in env
    assert "HUBCLUSTER_MONGO_PASSWORD_FILE=" in env and "HUBCLUSTER_MONGO_TLS_CA_FILE=" in env
