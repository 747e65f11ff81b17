"""What a remediation does: run a client's agent now, re-sync a hub's masterfiles, or run a
command from the hub config's allow-list. Each returns (status, what happened, in a few
words) and never raises: a failed action is a history line, not a stalled round.

One deadline per action, the rule's action_timeout: the client is sent it with the `run`
ask and stops its run then (answering EXIT_TIMED_OUT); the hub waits that long plus
ANSWER_GRACE for the answer to travel back, and calls the action timed out after that. A
client from before `run --deadline` refuses the option; it is asked once more without it,
and the hub keeps the deadline itself: it stops waiting then and closes the channel.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import Callable
from typing import Any

import asyncssh
from pymongo.errors import PyMongoError

from hub.remediation.ledger import DONE, FAILED, RESYNCS, TIMED_OUT
from hub.remediation.rules import RESYNC, RUN_AGENT, RemediationSettings, Rule
from hub.remediation.triggers import Trigger
from hub.store import HubStore
from hubcluster.messages import MessageError
from hubcluster.run_request import (
    EXIT_BUSY,
    EXIT_TIMED_OUT,
    RunReply,
    refuses_deadline,
    run_command_line,
)
from hubcluster.ssh_options import client_options

KeyLookup = Callable[[str], asyncssh.SSHKey | None]
RESYNC_POLL_SECONDS = 0.5
CONNECT_TIMEOUT = 10.0
# Past the deadline the client was sent: its "stopped" answer on its way back.
ANSWER_GRACE = 3.0
Outcome = tuple[str, str]  # (DONE | FAILED | TIMED_OUT, what happened)


class Actions:
    def __init__(
        self,
        store: HubStore,
        settings: RemediationSettings,
        hub_key: asyncssh.SSHKey,
        key_lookup: KeyLookup,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.store = store
        self.settings = settings
        self.hub_key = hub_key
        self.key_lookup = key_lookup
        self.connect_timeout = connect_timeout

    async def act(
        self, rule: Rule, trigger: Trigger, key: str, host: dict[str, Any] | None
    ) -> Outcome:
        timeout = self.settings.timeout_of(rule.name)
        waited = timeout + ANSWER_GRACE
        try:
            async with asyncio.timeout(waited):
                if rule.action == RUN_AGENT:
                    return await self.run_agent(rule, host, timeout)
                if rule.action == RESYNC:
                    return await self.resync(trigger.target, key)
                return await self.command(rule, trigger)
        except TimeoutError:
            return TIMED_OUT, f"no answer within {waited:g}s"

    async def run_agent(
        self, rule: Rule, host: dict[str, Any] | None, deadline: float | None = None
    ) -> Outcome:
        if host is None:
            return FAILED, "not a registered client"
        key = self.key_lookup(host["_id"])
        if key is None:
            return FAILED, "no key in ppkeys/ for this client"
        loop = asyncio.get_running_loop()
        ends = None if deadline is None else loop.time() + deadline
        try:
            async with asyncssh.connect(
                host["address"],
                int(host["report_port"]),
                **client_options(
                    client_keys=[self.hub_key],
                    known_hosts=([key], [], []),
                    connect_timeout=self.connect_timeout,
                ),
            ) as conn:
                done = await conn.run(run_command_line(rule.classes, deadline), check=False)
                if ends is not None and refuses_deadline(done.exit_status, str(done.stderr)):
                    old = await _run_until(conn, run_command_line(rule.classes), ends)
                    if old is None:
                        return TIMED_OUT, _untold(deadline)
                    done = old
        except (OSError, asyncssh.Error) as exc:
            return FAILED, f"{type(exc).__name__}: {str(exc) or 'no detail'}"[:200]
        return _answer(done)

    async def resync(self, hub: str, key: str) -> Outcome:
        """Ask `hub` (through the set: it reads its asks every few seconds) to sync now, and
        wait for its answer."""
        coll = self.store.db[RESYNCS]
        now = dt.datetime.now(dt.UTC)
        try:
            await asyncio.to_thread(
                coll.update_one,
                {"_id": key},
                {"$setOnInsert": {"hub": hub, "asked": now, "done": None}},
                upsert=True,
            )
            while True:
                await asyncio.sleep(RESYNC_POLL_SECONDS)
                doc = await asyncio.to_thread(coll.find_one, {"_id": key})
                if doc and doc.get("done") is not None:
                    return DONE if doc.get("ok") else FAILED, str(doc.get("result") or "synced")
        except PyMongoError as exc:
            return FAILED, f"the set did not take the ask: {exc}"[:200]

    async def command(self, rule: Rule, trigger: Trigger) -> Outcome:
        argv = self.settings.commands[rule.command]
        env = dict(os.environ)
        env.update(
            HUBCLUSTER_REMEDIATION_RULE=rule.name,
            HUBCLUSTER_REMEDIATION_TARGET=trigger.name,
            HUBCLUSTER_REMEDIATION_REASON=trigger.reason,
        )
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
            )
        except OSError as exc:
            return FAILED, f"cannot start {argv[0]}: {exc.strerror or exc}"
        try:
            out, _ = await proc.communicate()
        except asyncio.CancelledError:
            proc.kill()
            raise
        lines = out.decode("utf-8", "replace").strip().splitlines()
        tail = lines[-1][:200] if lines else "no output"
        return DONE if proc.returncode == 0 else FAILED, f"exit {proc.returncode}: {tail}"


async def _run_until(
    conn: asyncssh.SSHClientConnection, command: str, ends: float
) -> asyncssh.SSHCompletedProcess | None:
    """`command`'s answer if it comes before the loop time `ends`; else None, the channel
    closed (a client that was not told the deadline is not waited for past it)."""
    process = await conn.create_process(command)
    try:
        async with asyncio.timeout_at(ends):
            return await process.wait(check=False)
    except TimeoutError:
        return None
    finally:
        process.close()


def _untold(deadline: float | None) -> str:
    return (
        f"stopped waiting at the {deadline or 0.0:g}s deadline, which the client "
        "could not be told because it is older than run --deadline"
    )


def _answer(done: asyncssh.SSHCompletedProcess) -> Outcome:
    """What the client's answer to a `run` says."""
    if done.exit_status != 0:
        said = str(done.stderr or "").strip().splitlines()
        return FAILED, f"the client refused: {said[-1] if said else done.exit_status}"[:200]
    try:
        reply = RunReply.from_json(str(done.stdout or "").strip())
    except MessageError as exc:
        return FAILED, str(exc)[:200]
    if reply.exit_code == EXIT_BUSY:
        return FAILED, reply.summary
    if reply.exit_code == EXIT_TIMED_OUT:
        return TIMED_OUT, reply.summary[:200]
    return DONE, f"exit {reply.exit_code}: {reply.summary}"[:300]
