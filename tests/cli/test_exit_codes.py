"""One exit-status scheme for hubctl, hubd and client-agent: 0 ok, 1 failed, 2 usage,
3 unreachable (README.md, "Exit statuses"), run through the installed console scripts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hubcluster import exit_codes

BIN = Path(sys.executable).parent
README = Path(__file__).resolve().parents[2] / "README.md"


def run(program: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HUBCTL_MONGO_URI"}
    return subprocess.run(
        [str(BIN / program), *args], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nobody listens once the probe is closed


def test_the_scheme():
    assert (
        exit_codes.EXIT_OK,
        exit_codes.EXIT_FAILED,
        exit_codes.EXIT_USAGE,
        exit_codes.EXIT_UNREACHABLE,
    ) == (0, 1, 2, 3)


def test_unreachable_is_3_in_every_program(closed_port, tmp_path):
    hub = f"127.0.0.1:{closed_port}"
    agent = run(
        "client-agent", "bootstrap", hub, "--trust-on-first-use", "--workdir", str(tmp_path)
    )
    assert agent.returncode == 3, agent.stderr
    assert agent.stderr.startswith("client-agent: error: ") and "Traceback" not in agent.stderr
    uri = f"mongodb://{hub}/?replicaSet=rs"
    hubctl = run("hubctl", "status", "--mongo", uri, "--timeout", "1")
    assert hubctl.returncode == 3 and "cannot reach any member" in hubctl.stderr


def test_usage_is_2_in_every_program(tmp_path):
    both = run(
        "client-agent",
        "bootstrap",
        "127.0.0.1:1",
        "--trust-on-first-use",
        "--hub-fingerprint",
        "SHA256:x",
        "--workdir",
        str(tmp_path),
    )
    assert both.returncode == 2 and "give exactly one of" in both.stderr
    not_bootstrapped = run("client-agent", "run", "--workdir", str(tmp_path / "none"))
    assert not_bootstrapped.returncode == 2 and "run client-agent bootstrap" in (
        not_bootstrapped.stderr
    )
    hubd = run("hubd", "run", "--config", str(tmp_path / "missing.toml"))
    assert hubd.returncode == 2 and hubd.stderr.startswith("hubd: error: ")
    hubctl = run("hubctl", "status", "--mongo", "mongodb://x:1,,/")
    assert hubctl.returncode == 2 and "bad MongoDB URI" in hubctl.stderr


def test_the_readme_states_the_scheme():
    text = " ".join(README.read_text().split())
    for line in (
        "| 0 | ok |",
        "| 1 | failed |",
        "| 2 | usage |",
        "| 3 | unreachable |",
    ):
        assert line in text


def test_status_keeps_the_scheme_in_its_help_and_the_readme():
    # status once exited 2 for "no primary", which a script could not tell from usage.
    help_text = " ".join(run("hubctl", "status", "--help").stdout.split())
    assert "Exit 0 healthy, 1 degraded or no primary" in help_text
    text = " ".join(README.read_text().split())
    assert "2 no primary" not in text
    assert "`hubctl status` keeps the scheme: 0 healthy, 1 when the set is not as it" in text
