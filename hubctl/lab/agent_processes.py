"""The lab's client-agent processes, forked from a parent that has imported client-agent once.

Every lab client is still its own process running client-agent's real command line
(`bootstrap`, `serve`), but a fresh interpreter spends about 0.3 s of CPU importing it: with
a bootstrap and a service per client that was 0.65 s per client, over a minute of CPU for
100 clients on 2 cores. So the lab starts one "zygote" process that imports client_agent.cli
and then forks a ready interpreter per command, reaps it and reports its exit status.

The zygote speaks JSON lines: it reads {"id", "args", "log"} and answers {"id", "pid"} once
forked, then {"pid", "exit"} when that child ends. When its stdin closes (the lab stopped or
died) it terminates the children still running and exits.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

LAZY_IMPORTS = ("pydantic", "typer._adapters", "typer._coercion")
ZYGOTE = [sys.executable, "-c", "from hubctl.lab.agent_processes import zygote; zygote()"]


# ----- in the zygote process ---------------------------------------------------------------
def _child(args: list[str], log: str) -> None:
    """In a forked child: output to `log`, then client-agent's own main(); never returns."""
    code = 1
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from client_agent.cli import main

        sys.argv = ["client-agent", *args]
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - a child must end here, whatever happened
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _reply(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def _reap(children: set[int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        _reply({"pid": pid, "exit": os.waitstatus_to_exitcode(status)})


def zygote() -> None:
    """The zygote's main loop: fork on request, report exits, stop when stdin closes."""
    import client_agent.cli  # noqa: F401 - imported once here, inherited by every child

    # typer imports these only when it first parses arguments: half of a child's CPU if not
    # imported here. Names that a typer version lacks are simply not warmed.
    for module in LAZY_IMPORTS:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)

    # Ctrl-C in the lab's terminal reaches the whole process group; the lab decides when
    # its clients stop, so the zygote must outlive the signal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    children: set[int] = set()
    buffered = b""
    while True:
        ready, _, _ = select.select([0], [], [], 0.05)
        _reap(children)
        if not ready:
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            break
        buffered += chunk
        while b"\n" in buffered:
            line, buffered = buffered.split(b"\n", 1)
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                _child(request["args"], request["log"])
            children.add(pid)
            _reply({"id": request["id"], "pid": pid})
    for pid in children:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while children and time.monotonic() < deadline:
        _reap(children)
        time.sleep(0.05)
    for pid in children:
        os.kill(pid, signal.SIGKILL)


# ----- in the lab ------------------------------------------------------------------------------
class AgentForker:
    """The lab's handle on its zygote; start() gives an AgentProcess."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(ZYGOTE, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._changed = threading.Condition()
        self._pids: dict[int, int] = {}
        self._exits: dict[int, int] = {}
        self._next = 0
        self._write = threading.Lock()
        threading.Thread(target=self._read, name="agent-zygote", daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            doc = json.loads(line)
            with self._changed:
                if "exit" in doc:
                    self._exits[doc["pid"]] = doc["exit"]
                else:
                    self._pids[doc["id"]] = doc["pid"]
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def start(self, args: list[str], log: Path, timeout: float = 30.0) -> AgentProcess:
        """`client-agent ARGS...` in a new process with its output appended to `log`."""
        assert self._proc.stdin is not None
        with self._write:
            self._next += 1
            request = self._next
            self._proc.stdin.write(
                (json.dumps({"id": request, "args": args, "log": str(log)}) + "\n").encode()
            )
            self._proc.stdin.flush()
        with self._changed:
            if not self._changed.wait_for(lambda: request in self._pids, timeout):
                raise RuntimeError(f"the lab's agent zygote did not start client-agent {args[0]}")
            return AgentProcess(self, args, self._pids.pop(request))

    def exit_code(self, pid: int) -> int | None:
        with self._changed:
            return self._exits.get(pid)

    def wait_exit(self, pid: int, timeout: float | None) -> int | None:
        with self._changed:
            self._changed.wait_for(
                lambda: pid in self._exits or self._proc.poll() is not None, timeout
            )
            return self._exits.get(pid)

    def close(self) -> None:
        """Close the zygote's stdin: it ends the children still running, then itself."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)


class AgentProcess:
    """One forked client-agent, with the part of Popen's API the lab uses."""

    def __init__(self, forker: AgentForker, args: list[str], pid: int) -> None:
        self._forker = forker
        self.args = args
        self.pid = pid

    @property
    def returncode(self) -> int | None:
        return self._forker.exit_code(self.pid)

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        code = self._forker.wait_exit(self.pid, timeout)
        if code is None:
            raise subprocess.TimeoutExpired(["client-agent", *self.args], timeout or 0)
        return code

    def _signal(self, sig: int) -> None:
        # Once reaped the pid may belong to someone else: never signal it then.
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)
