"""`client-agent serve`: only the pinned hub key gets in; `reports --since N` reads and acks."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from pathlib import Path

import asyncssh
import pytest

from client_agent.agent_run import run_agent
from client_agent.bootstrap import bootstrap
from client_agent.report_service import start_report_service
from client_agent.spool import Spool
from client_agent.state import ClientState
from hub.report_records import parse_report_lines
from hubcluster.reports_protocol import USAGE, parse_reports_command
from tests.sshsvc.harness import client_config


@pytest.fixture
def serving(make_hubs, loop_thread, tmp_path):
    hubs = make_hubs()
    hubs.publish({"a.txt": "a"})
    config = client_config(tmp_path)
    asyncio.run(bootstrap(config, hubs.addresses[0], hub_fingerprint=hubs.fingerprint))
    for _ in range(2):
        asyncio.run(run_agent(config))  # four records: outcome + inventory, twice
    state = ClientState(config.workdir)
    spool = Spool(state.spool_dir, config.spool_max_bytes)
    acceptor = loop_thread.run(start_report_service(state, ("127.0.0.1", 0), spool))
    yield hubs, state, spool, acceptor.get_port()
    loop_thread.close_acceptor(acceptor)
    spool.close()


def connect_as_collector(port: int, key, client_key):
    # As the collector connects: the hub key, and the client's key checked against ppkeys/.
    return asyncssh.connect(
        "127.0.0.1",
        port,
        username="hubcluster",
        client_keys=[key],
        known_hosts=([client_key.convert_to_public()], [], []),
        agent_path=None,
        config=None,
        connect_timeout=5,
    )


async def pull(port: int, key, client_key, command: str) -> asyncssh.SSHCompletedProcess:
    async with connect_as_collector(port, key, client_key) as conn:
        return await conn.run(command, check=False, timeout=10)


def test_hub_key_pulls_reports_as_the_collector_reads_them(serving):
    hubs, state, spool, port = serving
    client_key = state.client_key()
    result = asyncio.run(pull(port, hubs.hub_key, client_key, "reports --since 0 --limit 3"))
    assert result.exit_status == 0, result.stderr
    parsed = parse_report_lines(result.stdout, 0, 1 << 20)
    assert parsed.error is None and parsed.rejected == []
    assert [r["seq"] for r in parsed.records] == [1, 2, 3]
    assert [r["kind"] for r in parsed.records] == ["outcome", "inventory", "outcome"]
    assert parsed.records[1]["payload"]["hostname"] == "client1"

    result = asyncio.run(pull(port, hubs.hub_key, client_key, "reports --since 3"))
    assert [r["seq"] for r in parse_report_lines(result.stdout, 3, 1 << 20).records] == [4]
    assert spool.status()["acked_seq"] == 3 and spool.status()["records"] == 1

    result = asyncio.run(pull(port, hubs.hub_key, client_key, "reports --since 4"))
    assert result.exit_status == 0 and result.stdout == ""
    assert spool.status()["records"] == 0


async def stream(port: int, key, client_key, asks: list[str]) -> tuple[list[list[str]], int]:
    """Each ask's answer on one `reports --stream` channel, through its last (#) line."""
    async with connect_as_collector(port, key, client_key) as conn:
        process = await conn.create_process("reports --stream")
        answers = []
        for ask in asks:
            process.stdin.write(ask + "\n")
            lines = [await asyncio.wait_for(process.stdout.readline(), 10)]
            while not lines[-1].startswith("#"):
                lines.append(await asyncio.wait_for(process.stdout.readline(), 10))
            answers.append([line.rstrip("\n") for line in lines])
        process.stdin.write_eof()
        await asyncio.wait_for(process.wait_closed(), 10)
        return answers, process.exit_status


def test_one_stream_answers_every_ask_and_acknowledges_as_asked(serving):
    hubs, state, spool, port = serving
    asks = [
        "reports --since 0 --limit 3",
        "reports --since 3",
        "reports --since 3 --frob 1",
        f"reports --since 4 --epoch {spool.epoch}",
    ]
    answers, status = asyncio.run(stream(port, hubs.hub_key, state.client_key(), asks))
    assert status == 0  # the hub ended the stream; the service ended with it
    first, second, refused, last = answers
    assert first[-1] == second[-1] == "#end"
    assert [r["seq"] for r in parse_report_lines(first[:-1], 0, 1 << 20).records] == [1, 2, 3]
    assert [r["seq"] for r in parse_report_lines(second[:-1], 3, 1 << 20).records] == [4]
    assert refused == ["#error unexpected '--frob'; " + USAGE]
    assert last == ["#end"]
    assert spool.status()["acked_seq"] == 4 and spool.status()["records"] == 0


def test_a_stream_refuses_an_ask_longer_than_a_line(serving):
    hubs, state, spool, port = serving
    asks = ["reports --since 0 " + "x" * 600]
    answers, status = asyncio.run(stream(port, hubs.hub_key, state.client_key(), asks))
    assert answers == [["#error an ask is one line of 512 at most"]] and status == 2
    assert spool.status()["acked_seq"] == 0


def test_any_key_but_the_hubs_is_refused(serving, make_hubs):
    hubs, state, _, port = serving
    client_key = state.client_key()
    strangers = [
        client_key,  # the client's own key
        asyncssh.generate_private_key("ssh-ed25519"),
        make_hubs(name="other").hub_key,  # another cluster's hub key
    ]
    for key in strangers:
        with pytest.raises(asyncssh.PermissionDenied):
            asyncio.run(pull(port, key, client_key, "reports --since 0"))
    assert state.pinned_hub_key() is not None


def test_wrong_client_host_key_is_detected_by_the_hub_side(serving):
    hubs, _, _, port = serving
    impostor = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        asyncio.run(pull(port, hubs.hub_key, impostor, "reports --since 0"))


def test_anything_but_reports_is_refused(serving):
    hubs, state, spool, port = serving
    client_key = state.client_key()
    for command, status, problem in [
        ("cat /etc/passwd", 2, "unknown command"),
        ("reports", 2, "--since is required"),
        ("reports --since -1", 2, "non-negative integer"),
        ("reports --since 0 --limit 0", 2, "--limit must be between"),
        ("reports --since 0 --since 1", 2, "unexpected '--since'"),
        ("reports --since 0 --epoch 'a b'", 2, "--epoch needs one spool epoch"),
        ("reports --since 99999999999999999999", 2, "19 digits at most"),
    ]:
        result = asyncio.run(pull(port, hubs.hub_key, client_key, command))
        assert result.exit_status == status, (command, result.stderr)
        assert problem in result.stderr, (command, result.stderr)
    assert spool.status()["acked_seq"] == 0  # no refused command acknowledged anything
    # A cursor past this spool's numbering (its state was lost) acknowledges nothing and
    # gets everything, under the spool's epoch, so that the hub starts a new cursor.
    for command in ("reports --since 99", "reports --since 2 --epoch other-epoch"):
        result = asyncio.run(pull(port, hubs.hub_key, client_key, command))
        assert result.exit_status == 0, (command, result.stderr)
        parsed = parse_report_lines(result.stdout, 99, 1 << 20, epoch="other-epoch")
        assert parsed.epoch == spool.epoch and parsed.error is None
        assert [r["seq"] for r in parsed.records] == [1, 2, 3, 4]
    assert spool.status()["acked_seq"] == 0

    async def sftp() -> None:
        async with asyncssh.connect(
            "127.0.0.1",
            port,
            username="hubcluster",
            client_keys=[hubs.hub_key],
            known_hosts=([client_key.convert_to_public()], [], []),
            agent_path=None,
            config=None,
        ) as conn:
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.start_sftp_client()

    asyncio.run(sftp())


def test_parse_reports_command():
    assert parse_reports_command("reports --since 5") == (5, 1000, None)
    assert parse_reports_command("reports --limit 7 --since 0 --epoch e-1") == (0, 7, "e-1")
    with pytest.raises(ValueError, match="unexpected '--frob'"):
        parse_reports_command("reports --since 1 --frob 2")


def test_cli_serve_runs_until_terminated(make_hubs, tmp_path):
    hubs = make_hubs()
    hubs.publish({"a.txt": "a"})
    config = client_config(tmp_path)
    asyncio.run(bootstrap(config, hubs.addresses[0], hub_fingerprint=hubs.fingerprint))
    asyncio.run(run_agent(config))
    agent = Path(sys.executable).with_name("client-agent")
    with socket.socket() as probe:  # a free port; the CLI, like users, must name one
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    proc = subprocess.Popen(
        [agent, "serve", "--listen", f"127.0.0.1:{free}", "--workdir", str(config.workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "serving reports on 127.0.0.1:" in line, proc.stderr.read()
        port = int(line.rsplit(":", 1)[1])
        client_key = ClientState(config.workdir).client_key()
        result = asyncio.run(pull(port, hubs.hub_key, client_key, "reports --since 0"))
        assert [r["seq"] for r in parse_report_lines(result.stdout, 0, 1 << 20).records] == [1, 2]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
