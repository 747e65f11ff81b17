"""The policy's promises file, and running its promises under ifelapsed/expireafter locks."""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import re
import signal
import subprocess
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from client_agent.classes import ClassExpressionError, evaluate, parse_expression
from hubcluster.atomic import atomic_write_text

_log = logging.getLogger(__name__)

# CFEngine's defaults, in minutes.
DEFAULT_IFELAPSED = 1.0
DEFAULT_EXPIREAFTER = 120.0
OUTPUT_LIMIT = 4096
# After SIGTERM, how long a command's process group gets to exit before SIGKILL.
TERM_GRACE = 2.0

_KEYS = ("name", "check", "repair", "ifelapsed", "expireafter", "if")
_HEADER = re.compile(r"^\s*\[\[\s*promise\s*\]\]")


class PromisesError(ValueError):
    """A promises file that cannot be used; the message names the file, the line and the problem."""


@dataclass(frozen=True)
class Promise:
    name: str
    check: str
    repair: str | None = None
    ifelapsed: float = DEFAULT_IFELAPSED
    expireafter: float = DEFAULT_EXPIREAFTER
    condition: str = "any"  # the file's `if`, which Python cannot use as a name


@dataclass
class Outcome:
    name: str
    status: str  # kept | repaired | not_kept | skipped
    reason: str
    seconds: float = 0.0
    output: str = field(default="", repr=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_promises(path: Path) -> list[Promise]:
    """Read and validate a promises file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromisesError(f"{path}: no such promises file") from None
    except UnicodeDecodeError:
        raise PromisesError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise PromisesError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_promises(text, str(path))


class _Locator:
    """Finds the line of a promise's key in the source, so errors point where to edit."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.headers = [i for i, line in enumerate(self.lines) if _HEADER.match(line)]

    def line(self, index: int, key: str | None = None) -> int | None:
        if index >= len(self.headers):
            # Not written as [[promise]] blocks (an inline array, say): best effort by key.
            return self.search(0, len(self.lines), key) if key else None
        start = self.headers[index]
        end = self.headers[index + 1] if index + 1 < len(self.headers) else len(self.lines)
        found = self.search(start, end, key) if key else None
        return found if found is not None else start + 1

    def search(self, start: int, end: int, key: str) -> int | None:
        pattern = re.compile(
            rf"^\s*(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')\s*="
        )
        for i in range(start, end):
            if pattern.match(self.lines[i]):
                return i + 1
        return None

    def table(self, key: str) -> int | None:
        quoted = re.escape(key)
        pattern = re.compile(rf"""^\s*\[+\s*(?:{quoted}|"{quoted}"|'{quoted}')\s*[\].]""")
        for i, line in enumerate(self.lines):
            if pattern.match(line):
                return i + 1
        return self.search(0, len(self.lines), key)


def parse_promises(text: str, source: str) -> list[Promise]:
    """Validate promises TOML text; `source` names the file in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
        if at:
            problem = message[: at.start()]
            raise PromisesError(
                f"{source}:{at.group(1)}: invalid TOML: {problem} (column {at.group(2)})"
            ) from None
        end = len(text.splitlines()) or 1
        raise PromisesError(f"{source}:{end}: invalid TOML: {message}") from None

    where = _Locator(text)
    for key in data:
        if key != "promise":
            line = where.table(key)
            problem = f"unknown top-level key {key!r} (expected [[promise]] tables)"
            raise PromisesError(f"{source}:{line}: {problem}" if line else f"{source}: {problem}")
    entries = data.get("promise", [])
    if not isinstance(entries, list):
        raise PromisesError(
            f"{source}: 'promise' must be an array of tables, written as [[promise]]"
        )

    promises: list[Promise] = []
    first_line: dict[str, int] = {}
    for index, raw in enumerate(entries):
        entry = _Entry(raw, index, source, where)
        promise = entry.promise()
        if promise.name in first_line:
            raise entry.fail(
                f"duplicate promise name {promise.name!r} "
                f"(first defined at line {first_line[promise.name]})",
                "name",
            )
        first_line[promise.name] = where.line(index, "name") or index + 1
        promises.append(promise)
    return promises


class _Entry:
    """One [[promise]] table being validated; every refusal names its line."""

    def __init__(self, raw: Any, index: int, source: str, where: _Locator) -> None:
        self.raw, self.index, self.source, self.where = raw, index, source, where

    def fail(self, problem: str, key: str | None = None) -> PromisesError:
        line = self.where.line(self.index, key)
        where = f"{self.source}:{line}" if line else self.source
        return PromisesError(f"{where}: {problem}")

    def promise(self) -> Promise:
        if not isinstance(self.raw, dict):
            raise self.fail("each promise must be a table, written as [[promise]]")
        for key in self.raw:
            if key not in _KEYS:
                raise self.fail(f"unknown key {key!r} (known: {', '.join(_KEYS)})", key)
        name = self.text("name", required=True)
        check = self.text("check", required=True)
        assert name is not None and check is not None
        repair = self.text("repair", required=False)
        ifelapsed = self.minutes("ifelapsed", DEFAULT_IFELAPSED)
        expireafter = self.minutes("expireafter", DEFAULT_EXPIREAFTER)
        if expireafter == 0:
            raise self.fail("'expireafter' must be more than 0 minutes", "expireafter")
        condition = self.text("if", required=False) or "any"
        try:
            parse_expression(condition)
        except ClassExpressionError as exc:
            raise self.fail(f"'if': {exc}", "if") from None
        return Promise(name, check, repair, ifelapsed, expireafter, condition)

    def text(self, key: str, required: bool) -> str | None:
        if key not in self.raw:
            if not required:
                return None
            label = self.raw.get("name")
            which = f"promise {label!r}" if isinstance(label, str) else f"promise #{self.index + 1}"
            raise self.fail(f"{which}: missing required key {key!r}")
        value = self.raw[key]
        if not isinstance(value, str):
            raise self.fail(f"{key!r} must be a string, got {type(value).__name__}", key)
        if not value.strip():
            raise self.fail(f"{key!r} must not be empty", key)
        return value

    def minutes(self, key: str, default: float) -> float:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"{key!r} must be a number of minutes, got {type(value).__name__}", key)
        if not math.isfinite(value):
            raise self.fail(f"{key!r} must be a finite number of minutes, got {value}", key)
        if value < 0:
            raise self.fail(f"{key!r} must not be negative minutes, got {value}", key)
        return float(value)


def _minutes(value: float) -> str:
    return f"{value:.2g}" if value < 1 else f"{value:.1f}".rstrip("0").rstrip(".")


class _Locks:
    """locks.json: per promise, when it last completed and which agent is running it now."""

    def __init__(self, state_dir: Path, log: logging.Logger) -> None:
        self.path = state_dir / "locks.json"
        self.guard = state_dir / "locks.json.lock"
        self.log = log
        state_dir.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def edit(self) -> Iterator[dict[str, dict[str, Any]]]:
        """Read-modify-write under flock, so two concurrent agents never lose each other's lock."""
        with open(self.guard, "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            try:
                locks = self._read()
                before = json.dumps(locks, sort_keys=True)
                yield locks
                if json.dumps(locks, sort_keys=True) != before:
                    atomic_write_text(self.path, json.dumps(locks, indent=1, sort_keys=True))
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
    promises: list[Promise],
    state_dir: Path,
    classes: set[str],
    now: float | None = None,
    log: logging.Logger | None = None,
) -> list[Outcome]:
    """Run each promise in order and say what happened to it. `now` (unix time) fixes the clock
    the locks are judged by; it advances with the real time spent in this run. Commands run
    in `state_dir`, so relative paths in a policy never land wherever the agent was started."""
    log = log or _log
    locks = _Locks(Path(state_dir), log)
    started = time.monotonic()
    base = time.time() if now is None else now

    def clock() -> float:
        return base + (time.monotonic() - started)

    outcomes: list[Outcome] = []
    for promise in promises:
        begin = time.monotonic()
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
