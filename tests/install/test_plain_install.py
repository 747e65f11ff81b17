"""What a hub runs, from what a hub gets: the wheel installed without extras.

hubctl, hubd and client-agent from a fresh virtualenv holding the wheel and its runtime
dependencies only (no mockupdb, no mongomock), against a stand-in run by the test venv.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.install.plain_install import PlainInstall

# The first test of a session may build the wheel and its virtualenv.
pytestmark = pytest.mark.timeout(600)

INSTALL_HINT = "error: hubctl lab needs the lab extra: pip install 'hubcluster[lab]'"


def run(
    plain: PlainInstall, program: str, *args: str, drop: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HUBCTL_MONGO_URI", *drop)}
    env["COLUMNS"] = "80"
    return subprocess.run(
        [str(plain.bin(program)), *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_the_install_has_no_extras(plain):
    for module in ("mockupdb", "mongomock"):
        done = subprocess.run([str(plain.bin("python")), "-c", f"import {module}"])
        assert done.returncode != 0, f"{module} is in the plain install"


@pytest.mark.parametrize("program", ["hubctl", "hubd", "client-agent"])
def test_every_program_starts_and_answers_help(plain, program):
    done = run(plain, program, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Usage: {program} ") and done.stderr == ""


@pytest.mark.parametrize("args", [["lab", "up"], ["lab"], ["lab", "--help"], ["lab", "mongo"]])
def test_hubctl_lab_names_the_extra_to_install(plain, args):
    done = run(plain, "hubctl", *args)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", INSTALL_HINT + "\n")


def test_init_replset_as_the_replset_role_runs_it(plain, standin):
    members = [arg for i, h in enumerate(standin.hosts, 1) for arg in ("--member", f"hub{i}={h}")]
    # As the role runs it: no user yet (the localhost exception), only the CA to trust.
    nobody = (
        "HUBCLUSTER_MONGO_USER",
        "HUBCLUSTER_MONGO_PASSWORD_FILE",
        "HUBCLUSTER_MONGO_PASSWORD",
    )
    done = run(
        plain,
        "hubctl",
        "init-replset",
        *members,
        "--election-timeout",
        "500ms",
        "--create-users",
        str(standin.passwords_dir),
        drop=nobody,
    )
    assert done.returncode == 0, done.stderr
    assert "replica set CFEngineNova: initiated" in done.stdout


def test_status_check_and_query_against_a_set(plain, standin_set):
    uri = standin_set.uri
    status = run(plain, "hubctl", "status", "--mongo", uri)
    assert status.returncode == 0, status.stderr
    assert all(host in status.stdout for host in standin_set.hosts)
    # The NRPE command: a set no hubd runs on has collected nothing, which is CRITICAL.
    check = run(plain, "hubctl", "check", "--mongo", uri)
    assert check.returncode == 2, check.stdout + check.stderr
    assert check.stdout.startswith("HUBCLUSTER CRITICAL - ")
    assert "no collection round has finished yet" in check.stdout
    hosts = run(plain, "hubctl", "query", "hosts", "--mongo", uri, "--json")
    assert (hosts.returncode, hosts.stdout.strip(), hosts.stderr) == (0, "[]", "")
