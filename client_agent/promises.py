"""Running a policy's promises under ifelapsed/expireafter locks (the grammar of the promises
file lives in hubcluster.promises_grammar, shared with the hub's publish check)."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hubcluster.atomic import atomic_write_text
from hubcluster.class_expressions import evaluate
from hubcluster.promises_grammar import Promise, Refusal, promise_problem

_log = logging.getLogger(__name__)

OUTPUT_LIMIT = 4096
# After SIGTERM, how long a command's process group gets to exit before SIGKILL.
TERM_GRACE = 2.0


@dataclass
class Outcome:
    name: str
    status: str  # kept | repaired | not_kept | skipped
    reason: str
    seconds: float = 0.0
    output: str = field(default="", repr=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _minutes(value: float) -> str:
    return f"{value:.2g}" if value < 1 else f"{value:.1f}".rstrip("0").rstrip(".")


class _Locks:
    """locks.json: per promise, when it last completed and which agent is running it now."""

    def __init__(self, state_dir: Path, log: logging.Logger) -> None:
        self.path = state_dir / "locks.json"
        self.guard = state_dir / "locks.json.lock"
        self.log = log
        self.unwritable = False
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._cannot_write(exc)

    def _cannot_write(self, exc: OSError) -> None:
        # A read-only or full disk must not stop the policy: run it, unlocked, and say so once.
        if not self.unwritable:
            self.unwritable = True
            self.log.warning(
                "cannot keep promise locks in %s (%s); promises run without them",
                self.path.parent,
                exc.strerror or exc,
            )

    @contextmanager
    def edit(self) -> Iterator[dict[str, dict[str, Any]]]:
        """Read-modify-write under flock, so two concurrent agents never lose each other's lock."""
        try:
            guard = open(self.guard, "a")
        except OSError as exc:
            self._cannot_write(exc)
            yield self._read()
            return
        with guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            try:
                locks = self._read()
                before = json.dumps(locks, sort_keys=True)
                yield locks
                if json.dumps(locks, sort_keys=True) != before:
                    text = json.dumps(locks, indent=1, sort_keys=True)
                    try:
                        atomic_write_text(self.path, text)
                    except OSError as exc:
                        self._cannot_write(exc)
            finally:
                fcntl.flock(guard, fcntl.LOCK_UN)

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            self.log.warning("lock file %s unreadable (%s); treating it as empty", self.path, exc)
            return {}
        try:
            data = json.loads(raw)
        except ValueError as exc:
            self.log.warning("lock file %s is garbage (%s); treating it as empty", self.path, exc)
            return {}
        if not isinstance(data, dict):
            self.log.warning("lock file %s is not a JSON object; treating it as empty", self.path)
            return {}
        return {k: v for k, v in data.items() if isinstance(v, dict)}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _lock_refusal(promise: Promise, record: dict[str, Any], now: float, log: logging.Logger) -> str:
    """Why this promise may not run now ('' if it may), breaking a stale in-progress lock."""
    running = record.get("running")
    if isinstance(running, dict):
        pid, start = running.get("pid"), _number(running.get("start"))
        age = (now - start) / 60 if start is not None else None
        alive = isinstance(pid, int) and _pid_alive(pid)
        if alive and age is not None and age < promise.expireafter:
            return f"locked: running in pid {pid} for {_minutes(age)} min"
        why = (
            "its agent is gone" if not alive else f"older than expireafter {promise.expireafter:g}"
        )
        log.warning("promise %s: breaking stale lock of pid %s (%s)", promise.name, pid, why)
        record.pop("running", None)
    last = _number(record.get("last_completed"))
    if last is not None:
        ago = (now - last) / 60
        if 0 <= ago < promise.ifelapsed:
            return f"locked: ran {_minutes(ago)} min ago, ifelapsed {promise.ifelapsed:g} min"
    return ""


class _Killed(Exception):
    pass


def _run(command: str, deadline: float, cwd: Path) -> tuple[int, bytes]:
    """Run a shell command in its own process group; kill the whole group at the deadline."""
    proc = subprocess.Popen(
        command,
        shell=True,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=max(deadline - time.monotonic(), 0.0))
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        pass
    partial = b""
    for sig, wait in ((signal.SIGTERM, TERM_GRACE), (signal.SIGKILL, 1.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            partial, _ = proc.communicate(timeout=wait)
            if sig == signal.SIGTERM:
                # The shell exiting does not mean its children did; finish the group off.
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            break
        except subprocess.TimeoutExpired:
            continue
    else:
        # Something outside the group still holds our pipe; stop waiting for it.
        proc.kill()
        proc.wait()
    raise _Killed(partial or b"")


def _trim(output: bytes) -> str:
    text = output.decode("utf-8", errors="replace")
    if len(text) <= OUTPUT_LIMIT:
        return text
    # The end of a failing command's output is where the error usually is.
    return f"[{len(text) - OUTPUT_LIMIT} characters cut]\n" + text[-OUTPUT_LIMIT:]


def _exit_text(code: int) -> str:
    return f"signal {-code}" if code < 0 else f"exit {code}"


def _keep(promise: Promise, cwd: Path) -> tuple[str, str, bytes]:
    """Check, repair if needed, check again; returns (status, reason, output)."""
    # One expireafter budget for the whole promise: that is how long its lock claims it.
    deadline = time.monotonic() + promise.expireafter * 60
    output = b""
    phase = "check"
    try:
        code, out = _run(promise.check, deadline, cwd)
        output += out
        if code == 0:
            return "kept", "check passed", output
        if promise.repair is None:
            return "not_kept", f"check failed ({_exit_text(code)}), no repair", output
        phase = "repair"
        code, out = _run(promise.repair, deadline, cwd)
        output += b"--- repair ---\n" + out
        if code != 0:
            return "not_kept", f"repair failed ({_exit_text(code)})", output
        phase = "check after repair"
        code, out = _run(promise.check, deadline, cwd)
        output += b"--- check after repair ---\n" + out
        if code == 0:
            return "repaired", "repaired: check passed after repair", output
        return "not_kept", f"check still failed after repair ({_exit_text(code)})", output
    except _Killed as killed:
        output += killed.args[0]
        reason = f"killed after expireafter {promise.expireafter:g} min during {phase}"
        return "not_kept", reason, output
    except OSError as exc:
        return "not_kept", f"could not start {phase}: {exc}", output


def run_promises(
    promises: Sequence[Promise | Refusal],
    state_dir: Path,
    classes: set[str],
    now: float | None = None,
    log: logging.Logger | None = None,
) -> list[Outcome]:
    """Run each promise in order and say what happened to it. `now` (unix time) fixes the clock
    the locks are judged by; it advances with the real time spent in this run. Commands run
    in `state_dir`, so relative paths in a policy never land wherever the agent was started.
    A promise the grammar refuses (in the file, or here again) is skipped with one line."""
    log = log or _log
    locks = _Locks(Path(state_dir), log)
    started = time.monotonic()
    base = time.time() if now is None else now

    def clock() -> float:
        return base + (time.monotonic() - started)

    outcomes: list[Outcome] = []
    for promise in promises:
        begin = time.monotonic()
        problem = promise.problem if isinstance(promise, Refusal) else promise_problem(promise)
        if isinstance(promise, Refusal) or problem:
            refused = Outcome(promise.name, "skipped", f"refused: {problem}")
            log.warning("promise %s: skipped, %s", refused.name, refused.reason)
            outcomes.append(refused)
            continue
        if not evaluate(promise.condition, classes):
            reason = f"out of context: {promise.condition} is false"
            outcomes.append(Outcome(promise.name, "skipped", reason))
            continue
        with locks.edit() as table:
            record = table.setdefault(promise.name, {})
            refusal = _lock_refusal(promise, record, clock(), log)
            if not refusal:
                record["running"] = {"pid": os.getpid(), "start": clock()}
        if refusal:
            outcomes.append(Outcome(promise.name, "skipped", refusal))
            continue
        try:
            status, reason, output = _keep(promise, Path(state_dir))
        finally:
            with locks.edit() as table:
                record = table.setdefault(promise.name, {})
                record.pop("running", None)
                record["last_completed"] = clock()
        outcome = Outcome(promise.name, status, reason, time.monotonic() - begin, _trim(output))
        level = logging.WARNING if status == "not_kept" else logging.INFO
        log.log(level, "promise %s: %s (%s)", promise.name, status, reason)
        outcomes.append(outcome)
    return outcomes
