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
RUN_USAGE = "usage: run [--deadline SECONDS] [--define CLASS]..."
# A client from before --deadline refuses `run --deadline S ...` with exit 2 and this line,
# its parser's own (the deadline comes first on the command line, so it is the word refused).
PRE_DEADLINE_REFUSAL = "unexpected '--deadline'; usage: run [--define CLASS]..."
PRE_DEADLINE_EXIT = 2
# A class name as the class expressions know it (hubcluster.class_expressions).
_CLASS = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_CLASSES = 32
# The summary is the agent's own one line; a longer one is cut, not refused.
MAX_SUMMARY = 2000
EXIT_BUSY = 75  # EX_TEMPFAIL: the client runs its agent already; the hub did not start one
EXIT_TIMED_OUT = 124  # as timeout(1): the run outlived the deadline and was stopped
# The longest a client lets a hub's run go, whatever deadline it is sent: the deployed run
# service's own limit (the Ansible role's client_run_timeout, 1h), and the longest
# action_timeout a hub config takes. One figure, so the hub never waits for a run the
# client has already stopped.
MAX_RUN_SECONDS = 3600.0


@dataclass(frozen=True)
class RunAsk:
    """What a `run` command asks: the classes to define, and how long the hub waits for the
    answer (None: the client's maximum)."""

    classes: tuple[str, ...] = ()
    deadline: float | None = None

    def seconds(self, maximum: float = MAX_RUN_SECONDS) -> float:
        """How long this run may go on the client: the hub's deadline, never over `maximum`."""
        return maximum if self.deadline is None else min(self.deadline, maximum)


def class_problem(name: object) -> str | None:
    """Why `name` cannot be a class to define, or None."""
    if not isinstance(name, str) or not _CLASS.match(name):
        return f"{str(name)[:70]!r} is not a class name (letters, digits, _; at most 64)"
    return None


def run_command_line(classes: tuple[str, ...] = (), deadline: float | None = None) -> str:
    """The command line the hub sends: with `deadline`, the seconds it will wait."""
    for name in classes:
        problem = class_problem(name)
        if problem:
            raise ValueError(problem)
    words = [RUN_COMMAND]
    if deadline is not None:
        words.append(f"--deadline {deadline:g}")
    return " ".join([*words, *(f"--define {c}" for c in classes)])


def refuses_deadline(exit_status: int | None, stderr: str) -> bool:
    """Whether a `run --deadline` was answered by a client older than the deadline."""
    said = stderr.strip().splitlines()
    return exit_status == PRE_DEADLINE_EXIT and said[-1:] == [PRE_DEADLINE_REFUSAL]


def is_run_command(command: str) -> bool:
    return command.split(maxsplit=1)[:1] == [RUN_COMMAND]


def _deadline(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):  # also refuses nan
        raise ValueError(f"--deadline needs a number of seconds above 0, got {text[:30]!r}")
    return seconds


def parse_run_command(command: str) -> RunAsk:
    """What a `run` command asks for; ValueError with a usage message otherwise."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise ValueError(f"{exc}; {RUN_USAGE}") from None
    if not words or words[0] != RUN_COMMAND:
        raise ValueError(f"unknown command {command[:60]!r}; {RUN_USAGE}")
    classes: list[str] = []
    deadline = None
    rest = words[1:]
    while rest:
        option = rest.pop(0)
        if option not in ("--define", "--deadline") or not rest:
            raise ValueError(f"unexpected {option[:60]!r}; {RUN_USAGE}")
        if option == "--deadline":
            deadline = _deadline(rest.pop(0))
            continue
        name = rest.pop(0)
        problem = class_problem(name)
        if problem:
            raise ValueError(problem)
        classes.append(name)
    if len(classes) > MAX_CLASSES:
        raise ValueError(f"at most {MAX_CLASSES} classes, got {len(classes)}")
    return RunAsk(tuple(dict.fromkeys(classes)), deadline)


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
        return cls(*run_ended(obj, what))


def run_ended(obj: dict, what: str) -> tuple[int, str]:
    """The exit status and summary of an ended run in `obj` (a reply or a hand-off result),
    the summary cut to MAX_SUMMARY; MessageError naming the field otherwise."""
    code, summary = obj["exit_code"], obj["summary"]
    if isinstance(code, bool) or not isinstance(code, int) or not -255 <= code <= 255:
        raise MessageError(f"{what}.exit_code: expected an exit status, got {code!r:.40}")
    if not isinstance(summary, str):
        raise MessageError(f"{what}.summary: expected a string")
    return code, summary[:MAX_SUMMARY]
