"""The promises file's grammar: what `masterfiles publish` accepts and what an agent will run.

    [[promise]]
    name = "motd"                  # required; printable, at most MAX_NAME_LENGTH characters
    check = "test -f /etc/motd"    # required shell command; no NUL, at most MAX_COMMAND_BYTES
    repair = "touch /etc/motd"     # optional shell command, same limits
    ifelapsed = 5                  # minutes, 0..MAX_IFELAPSED (a year; default 1)
    expireafter = 10               # minutes, more than 0, at most MAX_EXPIREAFTER (a week;
                                   # default 120): the time a run of the promise may take
    if = "linux.!Sunday"           # class expression (hubcluster.class_expressions)

The hub checks a file strictly (any bad promise refuses the publish); the agent reads it
leniently (a bad promise is refused on its own and the rest run), with the same checks, so
whatever publish accepts an agent can run, and an agent is safe from a policy that was
published by an older hub or put in place by hand.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from hubcluster.class_expressions import ClassExpressionError, parse_expression
from hubcluster.config_check import loads_toml

# CFEngine's defaults, in minutes.
DEFAULT_IFELAPSED = 1.0
DEFAULT_EXPIREAFTER = 120.0
# ifelapsed is only compared with clock readings: a year is longer than any policy needs.
MAX_IFELAPSED = 525_600.0
# expireafter becomes the timeout of a running command, and poll() takes at most ~24.8 days
# of milliseconds (1e9 minutes overflowed it and killed every agent): a week it is.
MAX_EXPIREAFTER = 10_080.0
_MAXIMA = {"ifelapsed": (MAX_IFELAPSED, "a year"), "expireafter": (MAX_EXPIREAFTER, "a week")}
MAX_NAME_LENGTH = 200
# Linux refuses a single exec argument over 128 KiB; half of that leaves room for the shell.
MAX_COMMAND_BYTES = 65_536

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


@dataclass(frozen=True)
class Refusal:
    """A promise the grammar refused; an agent reports it as skipped and runs the others."""

    name: str  # the promise's own name when it has a usable one, else "promise #N"
    problem: str  # names the file and the line


@dataclass
class PromisesFile:
    entries: list[Promise | Refusal]

    @property
    def promises(self) -> list[Promise]:
        return [e for e in self.entries if isinstance(e, Promise)]

    @property
    def refusals(self) -> list[Refusal]:
        return [e for e in self.entries if isinstance(e, Refusal)]


def _text_problem(key: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"{key!r} must be a string, got {type(value).__name__}"
    if not value.strip():
        return f"{key!r} must not be empty"
    if key == "name":
        if len(value) > MAX_NAME_LENGTH:
            return f"'name' must be at most {MAX_NAME_LENGTH} characters, got {len(value)}"
        if not value.isprintable():
            # Names go into one-line logs and reports; a newline would forge a second line.
            return "'name' must be printable text (no control characters)"
        return None
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return f"{key!r} is not valid Unicode text"
    if "\0" in value:
        return f"{key!r} must not contain a NUL character (a command cannot carry one)"
    if size > MAX_COMMAND_BYTES:
        return f"{key!r} must be at most {MAX_COMMAND_BYTES} bytes, got {size}"
    return None


def _minutes_problem(key: str, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{key!r} must be a number of minutes, got {type(value).__name__}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{key!r} must be a finite number of minutes, got {value}"
    if value < 0:
        return f"{key!r} must not be negative minutes, got {value}"
    maximum, spoken = _MAXIMA[key]
    if value > maximum:
        return f"{key!r} must be at most {maximum:g} minutes ({spoken}), got {value:g}"
    if key == "expireafter" and value == 0:
        return "'expireafter' must be more than 0 minutes"
    return None


def _condition_problem(value: Any) -> str | None:
    problem = _text_problem("if", value)
    if problem:
        return problem
    try:
        parse_expression(value)
    except ClassExpressionError as exc:
        return f"'if': {exc}"
    return None


def value_problem(key: str, value: Any) -> str | None:
    """What is wrong with `value` for the promise key `key` (the file's spelling), or None."""
    if key in ("name", "check", "repair"):
        return _text_problem(key, value)
    if key in ("ifelapsed", "expireafter"):
        return _minutes_problem(key, value)
    if key == "if":
        return _condition_problem(value)
    return f"unknown key {key!r:.60} (known: {', '.join(_KEYS)})"


def promise_problem(promise: Promise) -> str | None:
    """The first thing wrong with a Promise, by the same rules as the file; None if runnable.

    The agent asks again before running, so a Promise made some other way gets the same limits.
    """
    for f in fields(promise):
        value = getattr(promise, f.name)
        if f.name == "repair" and value is None:
            continue
        problem = value_problem("if" if f.name == "condition" else f.name, value)
        if problem:
            return problem
    return None


def load_promises(path: Path) -> list[Promise]:
    """Read and validate a promises file strictly: any bad promise refuses the file."""
    return _strict(load_promises_file(path))


def parse_promises(text: str, source: str) -> list[Promise]:
    """Validate promises TOML text strictly; `source` names the file in error messages."""
    return _strict(read_promises(text, source))


def _strict(found: PromisesFile) -> list[Promise]:
    if found.refusals:
        raise PromisesError(found.refusals[0].problem)
    return found.promises


def load_promises_file(path: Path) -> PromisesFile:
    """Read a promises file leniently; PromisesError only when the file as a whole is unusable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromisesError(f"{path}: no such promises file") from None
    except UnicodeDecodeError:
        raise PromisesError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise PromisesError(f"{path}: cannot read: {exc.strerror}") from None
    return read_promises(text, str(path))


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


def read_promises(text: str, source: str) -> PromisesFile:
    """Validate promises TOML text, each promise on its own; `source` names the file."""
    try:
        data = loads_toml(text)
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
            problem = f"unknown top-level key {key!r:.60} (expected [[promise]] tables)"
            raise PromisesError(f"{source}:{line}: {problem}" if line else f"{source}: {problem}")
    entries = data.get("promise", [])
    if not isinstance(entries, list):
        raise PromisesError(
            f"{source}: 'promise' must be an array of tables, written as [[promise]]"
        )

    found: list[Promise | Refusal] = []
    first_line: dict[str, int] = {}
    for index, raw in enumerate(entries):
        entry = _Entry(raw, index, source, where)
        name = raw.get("name") if isinstance(raw, dict) else None
        try:
            promise = entry.promise()
            if promise.name in first_line:
                raise entry.fail(
                    f"duplicate promise name {promise.name!r} "
                    f"(first defined at line {first_line[promise.name]})",
                    "name",
                )
        except PromisesError as exc:
            # Reported under its own name only if that name is usable and not taken already.
            usable = value_problem("name", name) is None and name not in first_line
            found.append(Refusal(str(name) if usable else f"promise #{index + 1}", str(exc)))
        else:
            found.append(promise)
        if isinstance(name, str) and name not in first_line:
            first_line[name] = where.line(index, "name") or index + 1
    return PromisesFile(found)


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
                raise self.fail(value_problem(key, None) or "", key)
        for key in ("name", "check"):
            if key not in self.raw:
                label = self.raw.get("name")
                which = (
                    f"promise {label!r:.60}"
                    if isinstance(label, str)
                    else f"promise #{self.index + 1}"
                )
                raise self.fail(f"{which}: missing required key {key!r}")
        for key in _KEYS:
            problem = value_problem(key, self.raw[key]) if key in self.raw else None
            if problem:
                raise self.fail(problem, key)
        get = self.raw.get
        return Promise(
            name=self.raw["name"],
            check=self.raw["check"],
            repair=get("repair"),
            ifelapsed=float(get("ifelapsed", DEFAULT_IFELAPSED)),
            expireafter=float(get("expireafter", DEFAULT_EXPIREAFTER)),
            condition=get("if", "any"),
        )
