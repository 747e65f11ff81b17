"""A client from before `run --deadline`: the hub asks once more without the option and
keeps the deadline itself.

The client here is a real asyncssh report service (the product's ReportServer and SSH
options: its key, the pinned hub key) whose `run` parser is the one clients had before the deadline
(hubcluster/run_request.py at 42cb6b1): any option but --define is refused with exit 2 and
its usage line.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import pytest

from client_agent.report_service import ReportServer
from client_agent.state import ClientState
from hub.remediation.actions import Actions
from hub.remediation.ledger import DONE, TIMED_OUT
from hub.remediation.rules import RUN_AGENT, RemediationSettings, Rule
from hub.remediation.sentences import timed_out
from hub.remediation.triggers import Trigger
from hubcluster.run_request import RunReply
from hubcluster.ssh_admission import Admission
from hubcluster.ssh_options import server_options

pytestmark = pytest.mark.timeout(60)

OLD_USAGE = "usage: run [--define CLASS]..."  # the old RUN_USAGE


@dataclass
class OldClient:
    """What the old service was asked, and when a run's channel was closed under it."""

    run_seconds: float
    commands: list[str] = field(default_factory=list)
    ran: list[list[str]] = field(default_factory=list)
    closed_after: list[float] = field(default_factory=list)

    async def serve(self, process: asyncssh.SSHServerProcess) -> None:
        self.commands.append(process.command or "")
        words = shlex.split(process.command or "")
        classes: list[str] = []
        rest = words[1:]
        while rest:  # the old parse_run_command
            option = rest.pop(0)
            if option != "--define" or not rest:
                process.stderr.write(f"unexpected {option[:60]!r}; {OLD_USAGE}\n")
                process.exit(2)
                return
            classes.append(rest.pop(0))
        self.ran.append(classes)
        started = time.monotonic()
        try:
            # The agent's run; the hub closing the channel ends the wait (EOF or an error).
            await asyncio.wait_for(process.stdin.read(), self.run_seconds)
        except TimeoutError:
            process.stdout.write(RunReply(0, "ran: 1 promise kept").to_json() + "\n")
            process.exit(0)
            return
        except (asyncssh.Error, OSError):
            pass
        self.closed_after.append(time.monotonic() - started)


async def _start(tmp_path: Path, old: OldClient, hub_key: asyncssh.SSHKey):
    state = ClientState(tmp_path / "client")
    state.ensure_key_pair()
    state.pin_hub_key(hub_key)
    acceptor = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_factory=lambda: ReportServer(state, Admission("old report service")),
        process_factory=old.serve,
        **server_options(host_keys=[state.client_key()]),
    )
    return acceptor, state


async def _remediate(tmp_path: Path, old: OldClient, deadline: float) -> tuple[str, str, float]:
    hub_key = asyncssh.generate_private_key("ssh-ed25519")
    acceptor, state = await _start(tmp_path, old, hub_key)
    rule = Rule(
        "old",
        "promise_not_kept",
        RUN_AGENT,
        promise="p",
        classes=("remediating",),
        action_timeout=deadline,
    )
    settings = RemediationSettings(rules=(rule,))
    client_key = state.client_key().convert_to_public()
    # run_agent never reads the set, so no store.
    actions = Actions(None, settings, hub_key, lambda sha: client_key, connect_timeout=5)
    host = {"_id": "sha-old", "address": "127.0.0.1", "report_port": acceptor.get_port()}
    trigger = Trigger("old", "sha-old", "client-old", "report 1", "promise p not kept")
    started = time.monotonic()
    try:
        status, result = await actions.act(rule, trigger, "old/sha-old/report 1", host)
        took = time.monotonic() - started
        await asyncio.sleep(0.2)  # the close on its way to the service
    finally:
        acceptor.close()
        await acceptor.wait_closed()
    return status, result, took


def test_an_old_client_is_asked_again_without_the_deadline(tmp_path):
    old = OldClient(run_seconds=0.2)
    status, result, _ = asyncio.run(_remediate(tmp_path, old, deadline=5))
    assert (status, result) == (DONE, "exit 0: ran: 1 promise kept")
    assert old.commands == ["run --deadline 5 --define remediating", "run --define remediating"]
    assert old.ran == [["remediating"]]  # one run: the refused ask ran nothing


def test_the_hub_keeps_the_deadline_an_old_client_could_not_be_told(tmp_path):
    old = OldClient(run_seconds=30)
    status, result, took = asyncio.run(_remediate(tmp_path, old, deadline=1.5))
    assert status == TIMED_OUT
    assert result == (
        "stopped waiting at the 1.5s deadline, which the client could not be told because "
        "it is older than run --deadline"
    )
    assert 1.4 < took < 4, f"gave up after {took:.1f}s, the deadline is 1.5 s"
    assert old.ran == [["remediating"]]
    assert len(old.closed_after) == 1 and old.closed_after[0] < 4, old.closed_after
    said = timed_out(RUN_AGENT, "client-old", "promise p not kept", result)
    assert said.count(". ") == 0 and said.startswith("agent run on client-old timed out: ")
