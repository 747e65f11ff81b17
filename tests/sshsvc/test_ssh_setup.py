"""One SSH setup everywhere: vetted algorithms (ssh-audit), product banner, no user config."""

from __future__ import annotations

import ast
import asyncio
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from client_agent.agent_run import run_agent
from client_agent.bootstrap import bootstrap
from client_agent.report_service import start_report_service
from client_agent.spool import Spool
from client_agent.state import ClientState
from hub.collector import Collector
from hub.config import CollectorSettings
from hubcluster import ssh_options
from hubcluster.hub_session import open_hub
from tests.sshsvc.harness import client_config

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("hub", "hubcluster", "client_agent", "hubctl")


def ssh_audit() -> str | None:
    beside = Path(sys.executable).parent / "ssh-audit"
    return str(beside) if beside.exists() else shutil.which("ssh-audit")


@pytest.fixture
def report_service(make_hubs, loop_thread, tmp_path):
    """A bootstrapped client's report service, as the collector reaches it."""
    hubs = make_hubs()
    hubs.publish({"a.txt": "a"})
    config = client_config(tmp_path)
    asyncio.run(bootstrap(config, hubs.addresses[0], hub_fingerprint=hubs.fingerprint))
    asyncio.run(run_agent(config))
    state = ClientState(config.workdir)
    spool = Spool(state.spool_dir, config.spool_max_bytes)
    acceptor = loop_thread.run(start_report_service(state, ("127.0.0.1", 0), spool))
    yield hubs, state, acceptor.get_port()
    loop_thread.close_acceptor(acceptor)
    spool.close()


def audit_fails(port: int) -> list[str]:
    tool = ssh_audit()
    assert tool is not None
    done = subprocess.run(
        [tool, "--no-colors", "--skip-rate-test", "-t", "10", "-p", str(port), "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "(kex)" in done.stdout, done.stdout + done.stderr  # it did audit something
    return [line for line in done.stdout.splitlines() if "[fail]" in line]


@pytest.mark.skipif(ssh_audit() is None, reason="ssh-audit is not installed")
def test_hub_and_report_service_pass_ssh_audit(report_service):
    hubs, _state, report_port = report_service
    hub_port = int(hubs.addresses[0].rsplit(":", 1)[1])
    assert audit_fails(hub_port) == []
    assert audit_fails(report_port) == []


def banner(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        return sock.makefile("rb").readline()


def test_banners_name_the_product_not_the_library(report_service):
    hubs, _state, report_port = report_service
    for port in (int(hubs.addresses[0].rsplit(":", 1)[1]), report_port):
        line = banner(port)
        assert line == b"SSH-2.0-hubcluster\r\n", line


def test_the_running_users_ssh_config_is_never_read(report_service, tmp_path, monkeypatch):
    """A ~/.ssh/config that would send every connection nowhere changes nothing."""
    hubs, state, report_port = report_service
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text("Host *\n    ProxyCommand /bin/false\n    Port 1\n")
    monkeypatch.setenv("HOME", str(home))
    assert Path(os.path.expanduser("~/.ssh/config")).is_file()

    async def peer_and_collector() -> None:
        async with open_hub(hubs.addresses[0], hubs.hub_key, hubs.hub_key, 5.0) as session:
            assert (await session.master()).hubs == hubs.addresses
        client_key = state.client_key().convert_to_public()
        collector = Collector(
            None,  # type: ignore[arg-type]  # a connection needs no database
            CollectorSettings(connect_timeout=5.0),
            "hub0",
            hubs.hub_key,
            lambda sha: client_key,
            lambda: True,
        )
        host = {"_id": "x", "address": "127.0.0.1", "report_port": report_port}
        link = await collector._connection(host)
        try:
            answer = await link.ask("reports --since 0 --limit 1", 1 << 20, 1 << 20)
            assert answer.exit_status == 0 and len(answer.lines) == 1, answer.stderr
        finally:
            await collector.close()

    asyncio.run(peer_and_collector())


def test_the_collectors_kept_connections_send_no_keepalive(report_service):
    """An idle kept connection would cost the master ~0.1 ms a probe (benchmarks/RESULTS.md)."""
    hubs, state, report_port = report_service
    client_key = state.client_key().convert_to_public()
    collector = Collector(
        None,  # type: ignore[arg-type]  # a connection needs no database
        CollectorSettings(connect_timeout=5.0),
        "hub0",
        hubs.hub_key,
        lambda sha: client_key,
        lambda: True,
    )

    async def connect() -> float:
        host = {"_id": "x", "address": "127.0.0.1", "report_port": report_port}
        link = await collector._connection(host)
        try:
            return link.conn._keepalive_interval  # asyncssh keeps no public view of it
        finally:
            await collector.close()

    assert asyncio.run(connect()) == ssh_options.COLLECTOR_KEEPALIVE_SECONDS == 0


def _ssh_calls(tree: ast.AST) -> list[ast.Call]:
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id == "asyncssh":
                if node.func.attr in ("connect", "listen", "get_server_host_key"):
                    calls.append(node)
    return calls


def test_every_ssh_endpoint_takes_the_shared_options():
    shared = {"client_options", "server_options", "host_key_probe_options"}
    seen, missing = 0, []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            for call in _ssh_calls(ast.parse(path.read_text(), str(path))):
                seen += 1
                spread = [
                    k.value.func.id
                    for k in call.keywords
                    if k.arg is None
                    and isinstance(k.value, ast.Call)
                    and isinstance(k.value.func, ast.Name)
                ]
                if not shared & set(spread):
                    missing.append(f"{path.relative_to(ROOT)}:{call.lineno}")
    assert seen >= 4  # hub service, report service, hub session, collector
    assert missing == []


def test_product_code_uses_no_private_asyncssh_names():
    private = ("MIN_SFTP_VERSION", "asyncssh.SSHServerProcess(")
    found = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text()
            found += [f"{path.relative_to(ROOT)}: {name}" for name in private if name in text]
    assert found == []
