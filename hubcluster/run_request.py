"""The `run` command a hub master sends to a client's report service, and its answer.

Like `cf-runagent`: the hub asks a client to run its agent now, optionally with classes
defined for that run. The report service lets in only the pinned hub key, so only a hub can
ask. One definition here, used by the hub's remediation and by the client's service.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict, dataclass

from hubcluster.messages import MessageError, _check_fields, _load_object

RUN_COMMAND = "run"
RUN_USAGE = "usage: run [--define CLASS]..."
# A class name as the class expressions know it (hubcluster.class_expressions).
_CLASS = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_CLASSES = 32
# The summary is the agent's own one line; a longer one is cut, not refused.
MAX_SUMMARY = 2000
EXIT_BUSY = 75  # EX_TEMPFAIL: the client runs its agent already; the hub did not start one


def class_problem(name: object) -> str | None:
    """Why `name` cannot be a class to define, or None."""
    if not isinstance(name, str) or not _CLASS.match(name):
        return f"{str(name)[:70]!r} is not a class name (letters, digits, _; at most 64)"
    return None


def run_command_line(classes: tuple[str, ...] = ()) -> str:
    """The command line the hub sends."""
    for name in classes:
        problem = class_problem(name)
        if problem:
            raise ValueError(problem)
    return " ".join([RUN_COMMAND, *(f"--define {c}" for c in classes)])


def is_run_command(command: str) -> bool:
    return command.split(maxsplit=1)[:1] == [RUN_COMMAND]


def parse_run_command(command: str) -> tuple[str, ...]:
    """The classes a `run` command asks for; ValueError with a usage message otherwise."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise ValueError(f"{exc}; {RUN_USAGE}") from None
    if not words or words[0] != RUN_COMMAND:
        raise ValueError(f"unknown command {command[:60]!r}; {RUN_USAGE}")
    classes: list[str] = []
    rest = words[1:]
    while rest:
        option = rest.pop(0)
        if option != "--define" or not rest:
            raise ValueError(f"unexpected {option[:60]!r}; {RUN_USAGE}")
        name = rest.pop(0)
        problem = class_problem(name)
        if problem:
            raise ValueError(problem)
        classes.append(name)
    if len(classes) > MAX_CLASSES:
        raise ValueError(f"at most {MAX_CLASSES} classes, got {len(classes)}")
    return tuple(dict.fromkeys(classes))


@dataclass(frozen=True)
class RunReply:
    """What the client answers once the run ended: its exit status and its summary line."""

    exit_code: int
    summary: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, data: str | bytes) -> RunReply:
        what = "run reply"
        obj = _load_object(data, what)
        _check_fields(obj, what, ("exit_code", "summary"))
        code, summary = obj["exit_code"], obj["summary"]
        if isinstance(code, bool) or not isinstance(code, int) or not -255 <= code <= 255:
            raise MessageError(f"{what}.exit_code: expected an exit status, got {code!r:.40}")
        if not isinstance(summary, str):
            raise MessageError(f"{what}.summary: expected a string")
        return cls(code, summary[:MAX_SUMMARY])
