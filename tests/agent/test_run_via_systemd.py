"""A hub's `run` ask on a deployed client (serve.run_via = "systemd"): the unprivileged report
service hands it to the root run service through the spool, never running the agent itself.

The real `client-agent serve --config` answers over real SSH on 127.0.0.1 with the hub key;
the test plays systemd's hubcluster-agent-run.path: when the request file appears it starts
the real `client-agent run --config`, as the root run service would.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from client_agent.bootstrap import bootstrap
from client_agent.config import load_agent_config
from client_agent.run_handoff_runner import HandoffRunner
from client_agent.run_now import AGENT
from client_agent.spool import Spool
from client_agent.state import ClientState
from hubcluster.run_handoff import (
    REQUEST_FILE,
    RESULT_FILE,
    RunHandoffRequest,
    RunHandoffResult,
    new_request_id,
    take_request,
    write_request,
    write_result,
)
from hubcluster.run_request import EXIT_BUSY, RunReply
from hubctl.lab.ports import free_port

pytestmark = pytest.mark.timeout(120)

POLICY = """
[[promise]]
name = "asked"
check = "test -f {marker}"
repair = "touch {marker}"
if = "remediation_asked"
"""


class Client:
    def __init__(self, config_path: Path, marker: Path, port: int, hubs) -> None:
        self.config_path = config_path
        self.marker = marker
        self.port = port
        self.hubs = hubs
        config = load_agent_config(config_path)
        self.state = ClientState(config.workdir)
        self.spool_dir = self.state.spool_dir

    def records(self) -> int:
        with Spool(self.spool_dir) as spool:
            return spool.status()["last_seq"]

    async def ask(self, command: str) -> asyncssh.SSHCompletedProcess:
        async with asyncssh.connect(
            "127.0.0.1",
            self.port,
            username="hubcluster",
            client_keys=[self.hubs.hub_key],
            known_hosts=([self.state.client_key().convert_to_public()], [], []),
            agent_path=None,
            config=None,
            connect_timeout=5,
        ) as conn:
            return await conn.run(command, check=False, timeout=60)

    def agent_run(self) -> subprocess.CompletedProcess:
        """What hubcluster-agent-run.service runs (as root on a deployed client)."""
        return subprocess.run(
            [*AGENT, "run", "--config", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def play_path_unit(self, timeout: float = 20.0) -> subprocess.CompletedProcess:
        """PathExists= on the request file: start the run service once it is there."""
        deadline = time.monotonic() + timeout
        while not (self.spool_dir / REQUEST_FILE).exists():
            assert time.monotonic() < deadline, "no run request appeared"
            time.sleep(0.05)
        return self.agent_run()


def _serving_port(proc: subprocess.Popen) -> int:
    """The port from serve's 'serving reports on HOST:PORT' line, read within 20 s."""
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    seen = ""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            seen += line
            if "serving reports on" in line:
                return int(line.rsplit(":", 1)[1])
            if not line:
                break
    raise AssertionError(f"serve did not start: {seen} {proc.poll()}")


@pytest.fixture
def client(make_hubs, tmp_path) -> Iterator[Client]:
    hubs = make_hubs()
    marker = tmp_path / "asked.flag"
    hubs.publish({"promises.toml": POLICY.format(marker=marker)})
    config_path = tmp_path / "agent.toml"
    config_path.write_text(
        f'[agent]\nworkdir = "{tmp_path / "client1"}"\nhostname = "client1"\n'
        f'connect_timeout = "2s"\n\n[serve]\nlisten = "127.0.0.1:{free_port()}"\n'
        'run_via = "systemd"\n'
    )
    config = load_agent_config(config_path)
    asyncio.run(bootstrap(config, hubs.addresses[0], hub_fingerprint=hubs.fingerprint))
    serve = subprocess.Popen(
        [*AGENT, "serve", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        yield Client(config_path, marker, _serving_port(serve), hubs)
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=20)


async def _ask_twice(client: Client) -> tuple[asyncssh.SSHCompletedProcess, ...]:
    first = asyncio.create_task(client.ask("run --define remediation_asked"))
    request = client.spool_dir / REQUEST_FILE
    for _ in range(200):  # the first ask is pending once its request is in the spool
        if request.exists():
            break
        await asyncio.sleep(0.05)
    assert request.exists(), "the report service wrote no run request"
    assert not client.marker.exists(), "the report service ran the agent itself"
    second = await client.ask("run")
    watcher = asyncio.create_task(asyncio.to_thread(client.play_path_unit))
    done = await first
    run = await watcher
    assert run.returncode == 0, run.stderr
    return done, second


def test_the_ask_runs_through_the_run_service_with_its_classes(client):
    # A result an earlier, timed-out ask left behind: not this ask's answer.
    stale = RunHandoffResult(new_request_id(), 0, "STALE result of an earlier request")
    write_result(client.spool_dir, stale)
    before = client.records()
    done, second = asyncio.run(_ask_twice(client))
    assert second.exit_status == 0, second.stderr
    assert RunReply.from_json(str(second.stdout)).exit_code == EXIT_BUSY
    assert done.exit_status == 0, done.stderr
    reply = RunReply.from_json(str(done.stdout))
    assert reply.exit_code == 0 and reply.summary.startswith("agent run: "), reply
    assert "promises: 1 repaired" in reply.summary, reply.summary
    assert client.marker.exists()  # the promise ran: its class was defined for this run
    assert client.records() > before
    assert not (client.spool_dir / REQUEST_FILE).exists()  # taken: it runs once
    # A run the timer starts later has no ask to answer: the class is not defined again.
    client.marker.unlink()
    later = client.agent_run()
    assert later.returncode == 0 and not client.marker.exists(), later.stderr


def test_a_request_with_bad_classes_is_refused_without_running(client):
    before = client.records()
    bad = {"request_id": new_request_id(), "classes": ["remediation_asked", "rm -rf /"]}
    (client.spool_dir / REQUEST_FILE).write_text(str(bad).replace("'", '"'))
    done = client.agent_run()
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "run request refused" in done.stderr, done.stderr
    assert "is not a class name" in done.stderr and "Traceback" not in done.stderr
    assert not client.marker.exists() and client.records() == before
    assert not (client.spool_dir / REQUEST_FILE).exists()  # refused once, not every run


def test_a_hostile_request_file_is_refused_in_one_line(client, tmp_path):
    secret = tmp_path / "root-only"
    secret.write_text('{"request_id": "x"}')
    (client.spool_dir / REQUEST_FILE).symlink_to(secret)
    done = client.agent_run()
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "run request refused" in done.stderr and secret.exists()
    os.mkfifo(client.spool_dir / REQUEST_FILE)
    done = client.agent_run()  # a FIFO must not block the run
    assert done.returncode == 2 and "not a regular file" in done.stderr, done.stderr


def test_waits_are_bounded_and_other_results_are_not_taken(tmp_path):
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    (spool_dir / RESULT_FILE).write_text("not json")  # malformed: refused, never a crash
    runner = HandoffRunner(spool_dir, timeout=1.0)
    restarted = HandoffRunner(spool_dir, timeout=1.0)

    async def scenario() -> tuple[RunReply, RunReply, RunReply]:
        first = asyncio.create_task(runner.run(("a",)))
        await asyncio.sleep(0.3)
        # The service restarted with the ask still pending: busy, from the file alone.
        busy = await restarted.run(())
        other = RunHandoffResult(new_request_id(), 0, "another request's result")
        await asyncio.to_thread(write_result, spool_dir, other)
        return await first, busy, await runner.run(())

    lost, busy, next_ask = asyncio.run(scenario())
    assert busy.exit_code == EXIT_BUSY
    assert lost.exit_code == 1 and "no run service took the request" in lost.summary
    assert not (spool_dir / REQUEST_FILE).exists()  # withdrawn: no run picks it up later
    assert next_ask.exit_code == 1 and next_ask.summary != "another request's result"


def test_a_taken_request_answers_with_its_own_result(tmp_path):
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    runner = HandoffRunner(spool_dir, timeout=10.0)

    def run_service() -> None:  # takes the request as `client-agent run` does
        deadline = time.monotonic() + 5
        while not (spool_dir / REQUEST_FILE).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        request = take_request(spool_dir)
        assert request is not None and request.classes == ("x", "y")
        write_result(spool_dir, RunHandoffResult(request.request_id, 3, "done with x y"))

    thread = threading.Thread(target=run_service)
    thread.start()
    reply = asyncio.run(runner.run(("x", "y")))
    thread.join(10)
    assert reply == RunReply(3, "done with x y")


def test_request_files_round_trip_and_refuse_bad_fields(tmp_path):
    request = RunHandoffRequest(new_request_id(), ("a", "b"))
    write_request(tmp_path, request)
    assert (tmp_path / REQUEST_FILE).stat().st_mode & 0o777 == 0o660
    assert RunHandoffRequest.from_json((tmp_path / REQUEST_FILE).read_text()) == request
    for bad in (
        '{"request_id": "../../etc", "classes": []}',
        f'{{"request_id": "{new_request_id()}", "classes": "a"}}',
        f'{{"request_id": "{new_request_id()}", "classes": [], "run": "sh"}}',
    ):
        with pytest.raises(ValueError) as caught:
            RunHandoffRequest.from_json(bad)
        assert "\n" not in str(caught.value)
