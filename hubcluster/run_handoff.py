"""The run request and run result files a report service and a root agent run hand over.

On a deployed client the report service is an unprivileged user, while the agent run is
root's (its promises repair the system). So a hub's `run` ask does not spawn the agent: the
service writes REQUEST_FILE into the shared spool directory, systemd's path unit starts the
root run service, the run takes the request (its classes) and writes RESULT_FILE, which the
service reads back. The spool directory is writable by the service's group, so each side
reads the other's file as untrusted: a regular file (never through a symlink or a FIFO),
small, one JSON object, every field checked.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

from hubcluster.atomic import atomic_write_text
from hubcluster.messages import MessageError, _check_fields, _load_object
from hubcluster.run_request import MAX_CLASSES, class_problem, run_ended

REQUEST_FILE = "run-request.json"
RESULT_FILE = "run-result.json"
# Both files are shared by the root run and the service's group (the spool's setgid group).
FILE_MODE = 0o660
MAX_FILE_BYTES = 16 * 1024
_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


def new_request_id() -> str:
    return secrets.token_hex(16)


def _request_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not _REQUEST_ID.match(value):
        raise MessageError(f"{what}.request_id: expected 32 hex digits, got {str(value)[:40]!r}")
    return value


@dataclass(frozen=True)
class RunHandoffRequest:
    request_id: str
    classes: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps({"request_id": self.request_id, "classes": list(self.classes)})

    @classmethod
    def from_json(cls, data: str | bytes) -> RunHandoffRequest:
        what = "run request"
        obj = _load_object(data, what)
        _check_fields(obj, what, ("request_id", "classes"))
        request_id = _request_id(obj["request_id"], what)
        classes = obj["classes"]
        if not isinstance(classes, list) or len(classes) > MAX_CLASSES:
            raise MessageError(f"{what}.classes: expected a list of at most {MAX_CLASSES} names")
        for name in classes:
            problem = class_problem(name)
            if problem:
                raise MessageError(f"{what}.classes: {problem}")
        return cls(request_id, tuple(dict.fromkeys(classes)))


@dataclass(frozen=True)
class RunHandoffResult:
    request_id: str
    exit_code: int
    summary: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, data: str | bytes) -> RunHandoffResult:
        what = "run result"
        obj = _load_object(data, what)
        _check_fields(obj, what, ("request_id", "exit_code", "summary"))
        return cls(_request_id(obj["request_id"], what), *run_ended(obj, what))


def read_shared_file(path: Path) -> bytes | None:
    """The bytes of `path`, None when it is absent; MessageError (one line) when it is not a
    small regular file. No symlink is followed, and a FIFO never blocks the reader."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:  # ELOOP: a symlink
        raise MessageError(f"{path.name}: cannot open ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise MessageError(f"{path.name}: not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise MessageError(f"{path.name}: {info.st_size} bytes, at most {MAX_FILE_BYTES}")
        return os.read(fd, MAX_FILE_BYTES + 1)[:MAX_FILE_BYTES]
    finally:
        os.close(fd)


def write_request(directory: Path, request: RunHandoffRequest) -> None:
    atomic_write_text(directory / REQUEST_FILE, request.to_json() + "\n", FILE_MODE)


def request_pending(directory: Path) -> bool:
    return os.path.lexists(directory / REQUEST_FILE)


def take_request(directory: Path) -> RunHandoffRequest | None:
    """The pending request, removed so that it runs once; None when there is none.
    A bad one is removed too and raises MessageError (one line)."""
    path = directory / REQUEST_FILE
    if not os.path.lexists(path):
        # Nothing to take, and nothing to remove: a read-only spool must not stop the run.
        return None
    try:
        data = read_shared_file(path)
        if data is None:
            return None
        return RunHandoffRequest.from_json(data)
    finally:
        path.unlink(missing_ok=True)


def withdraw_request(directory: Path, request_id: str) -> bool:
    """Remove our own request if no run took it yet; True when it was still pending."""
    path = directory / REQUEST_FILE
    try:
        data = read_shared_file(path)
        if data is None or RunHandoffRequest.from_json(data).request_id != request_id:
            return False
    except MessageError:
        return False
    path.unlink(missing_ok=True)
    return True


def write_result(directory: Path, result: RunHandoffResult) -> None:
    atomic_write_text(directory / RESULT_FILE, result.to_json() + "\n", FILE_MODE)


def read_result(directory: Path, request_id: str) -> RunHandoffResult | None:
    """The result of request `request_id`, None until it is there. A result of another
    request (one that timed out earlier) is not this one's: None too. MessageError when the
    file is malformed."""
    data = read_shared_file(directory / RESULT_FILE)
    if data is None:
        return None
    result = RunHandoffResult.from_json(data)
    return result if result.request_id == request_id else None
