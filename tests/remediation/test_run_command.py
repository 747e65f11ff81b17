"""The client's `run` command (like cf-runagent): only the hub key may ask, and it runs the
real agent with the classes asked for. Against a lab client's real `client-agent serve`."""

from __future__ import annotations

import asyncio
import threading
import time

import asyncssh
import pytest

from client_agent.run_handoff_runner import HandoffRunner
from hub.keystore import KeyStore
from hubcluster.keys import load_private_key
from hubcluster.run_handoff import REQUEST_FILE, take_request
from hubcluster.run_request import (
    EXIT_TIMED_OUT,
    MAX_RUN_SECONDS,
    RunReply,
    parse_run_command,
    run_command_line,
)
from hubcluster.ssh_options import client_options
from tests.remediation.lab_fleet import RemediationLab

# A lab (three hubd, clients, the stand-in) starts in the first test; allow for a busy CI.
pytestmark = pytest.mark.timeout(300)


async def _ask(port: int, key: asyncssh.SSHKey, command: str) -> asyncssh.SSHCompletedProcess:
    async with asyncssh.connect(
        "127.0.0.1",
        port,
        **client_options(client_keys=[key], known_hosts=None, connect_timeout=10),
    ) as conn:
        return await conn.run(command, check=False, timeout=120)


def test_run_refuses_a_caller_without_the_hub_key(rlab: RemediationLab):
    client = rlab.lab.fleet[0]
    before = rlab.runs_of(client.name)
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(_ask(client.port, stranger, "run"))
    assert rlab.runs_of(client.name) == before


def test_run_with_the_hub_key_runs_the_agent_with_the_classes_asked(rlab: RemediationLab):
    client = rlab.lab.fleet[0]
    hub_key = load_private_key(KeyStore(rlab.lab.hubs[0].workdir / "ppkeys").hub_private_key_path)
    before = rlab.runs_of(client.name)
    done = asyncio.run(_ask(client.port, hub_key, "run --define remediation_test"))
    assert done.exit_status == 0, done.stderr
    reply = RunReply.from_json(str(done.stdout))
    assert reply.summary and reply.exit_code in (0, 1), reply
    assert rlab.runs_of(client.name) == before + 1
    bad = asyncio.run(_ask(client.port, hub_key, "run --define 'not a class'"))
    assert bad.exit_status == 2 and "is not a class name" in str(bad.stderr)
    assert rlab.runs_of(client.name) == before + 1


SLOW_WHEN_ASKED = """\
[[promise]]
name = "slow_when_asked"
check = "sleep 41"
if = "remediation_slow"
ifelapsed = 0
"""


def test_run_stops_the_agent_at_the_deadline_the_hub_sent(rlab: RemediationLab):
    rlab.publish(SLOW_WHEN_ASKED, "slow-when-asked")
    client = rlab.lab.fleet[2]
    hub_key = load_private_key(KeyStore(rlab.lab.hubs[0].workdir / "ppkeys").hub_private_key_path)
    before = rlab.runs_of(client.name)
    started = time.monotonic()
    done = asyncio.run(_ask(client.port, hub_key, "run --deadline 1.5 --define remediation_slow"))
    took = time.monotonic() - started
    assert done.exit_status == 0, done.stderr
    reply = RunReply.from_json(str(done.stdout))
    assert reply == RunReply(EXIT_TIMED_OUT, "stopped by the client at the 1.5s deadline")
    assert took < 10, f"answered after {took:.1f}s; the check sleeps 41 s"
    assert rlab.runs_of(client.name) == before


def test_the_deadline_is_on_the_command_line_and_bounded_by_the_client_s_maximum():
    assert run_command_line(("a",), 30) == "run --deadline 30 --define a"
    ask = parse_run_command("run --deadline 30 --define a")
    assert (ask.classes, ask.deadline, ask.seconds()) == (("a",), 30.0, 30.0)
    assert parse_run_command("run --deadline 86400").seconds() == MAX_RUN_SECONDS
    assert parse_run_command("run").seconds() == MAX_RUN_SECONDS  # a hub that names none
    for bad in ("0", "-1", "nan", "inf", "soon"):
        with pytest.raises(ValueError, match="--deadline needs a number of seconds above 0"):
            parse_run_command(f"run --deadline {bad}")


def test_the_systemd_handoff_answers_at_the_hub_s_deadline_not_its_own_maximum(tmp_path):
    runner = HandoffRunner(tmp_path)  # its own maximum: an hour

    def run_service() -> None:  # takes the ask, as `client-agent run` does, and runs on
        deadline = time.monotonic() + 5
        while not (tmp_path / REQUEST_FILE).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert take_request(tmp_path) is not None

    thread = threading.Thread(target=run_service)
    thread.start()
    started = time.monotonic()
    reply = asyncio.run(runner.run(("x",), deadline=1.0))
    took = time.monotonic() - started
    thread.join(10)
    assert reply == RunReply(EXIT_TIMED_OUT, "still running in the run service at the 1s deadline")
    assert took < 5
