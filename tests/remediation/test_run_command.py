"""The client's `run` command (like cf-runagent): only the hub key may ask, and it runs the
real agent with the classes asked for. Against a lab client's real `client-agent serve`."""

from __future__ import annotations

import asyncio

import asyncssh
import pytest

from hub.keystore import KeyStore
from hubcluster.keys import load_private_key
from hubcluster.run_request import RunReply
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
