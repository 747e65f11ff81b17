"""The report kinds an agent stores and hubs read: one definition of each payload's shape.

The agent builds payloads with `outcome_payload` / `inventory_payload`, the collector checks
every received payload with `payload_problem` before storing it, and the hub's queries read
stored payloads through the field-name constants below. A field renamed here is renamed for
all three; a field renamed in only one of them fails the tests that run the collector and
the queries on real agent output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypedDict

# ----- kinds ----------------------------------------------------------------------------------

OUTCOME = "outcome"  # one agent run: which release ran and each promise's status
INVENTORY = "inventory"  # facts about the host, refreshed every run
GAP = "gap"  # written by the spool where its size cap dropped reports

# ----- promise statuses -------------------------------------------------------------------------

KEPT = "kept"
REPAIRED = "repaired"
NOT_KEPT = "not_kept"
SKIPPED = "skipped"  # out of context (class expression) or locked (ifelapsed)
STATUSES = (KEPT, REPAIRED, NOT_KEPT, SKIPPED)

# ----- field names --------------------------------------------------------------------------
# Final, so that the TypedDicts below are checked against the payloads built with these names.
# Stored reports keep the payload under this key (see hubcluster.messages.REPORT_FIELDS).
PAYLOAD = "payload"

# one promise's result inside an outcome
PROMISE_NAME: Final = "name"
PROMISE_STATUS: Final = "status"
PROMISE_REASON: Final = "reason"
PROMISE_SECONDS: Final = "seconds"
PROMISE_OUTPUT: Final = "output"

# an outcome payload
OUTCOME_RELEASE: Final = "release"
OUTCOME_SERVER: Final = "server"
OUTCOME_EXIT_CODE: Final = "exit_code"
OUTCOME_ERROR: Final = "error"  # why the policy could not run at all, else None
OUTCOME_PROMISES: Final = "promises"

# a gap payload: the spool dropped `count` reports numbered `first`..`last`, and why
GAP_FIRST: Final = "first"
GAP_LAST: Final = "last"
GAP_COUNT: Final = "count"
GAP_REASON: Final = "reason"

# an inventory payload
INV_HOSTNAME: Final = "hostname"
INV_OS: Final = "os"
INV_KERNEL: Final = "kernel"
INV_UPTIME: Final = "uptime"
INV_ADDRESSES: Final = "addresses"
INV_AGENT_VERSION: Final = "agent_version"
INV_POLICY_RELEASE: Final = "policy_release"
INV_POLICY_SERVER: Final = "policy_server"


class PromiseResult(TypedDict):
    name: str
    status: str
    reason: str
    seconds: float
    output: str


class OutcomePayload(TypedDict):
    release: str | None
    server: str | None
    exit_code: int
    error: str | None
    promises: list[PromiseResult]


class InventoryPayload(TypedDict):
    hostname: str
    os: str
    kernel: str
    uptime: float | None
    addresses: list[str]
    agent_version: str
    policy_release: str | None
    policy_server: str | None


# ----- constructors (the agent's side) -----------------------------------------------------


def promise_result(
    name: str, status: str, reason: str, seconds: float, output: str = ""
) -> PromiseResult:
    # No check here: an agent never fails a run over its report; the collector checks.
    return {
        PROMISE_NAME: name,
        PROMISE_STATUS: status,
        PROMISE_REASON: reason,
        PROMISE_SECONDS: float(seconds),
        PROMISE_OUTPUT: output,
    }


def outcome_payload(
    *,
    release: str | None,
    server: str | None,
    exit_code: int,
    error: str | None,
    promises: list[PromiseResult],
) -> OutcomePayload:
    return {
        OUTCOME_RELEASE: release,
        OUTCOME_SERVER: server,
        OUTCOME_EXIT_CODE: exit_code,
        OUTCOME_ERROR: error,
        OUTCOME_PROMISES: promises,
    }


def inventory_payload(
    *,
    hostname: str,
    os: str,
    kernel: str,
    uptime: float | None,
    addresses: list[str],
    agent_version: str,
    policy_release: str | None,
    policy_server: str | None,
) -> InventoryPayload:
    return {
        INV_HOSTNAME: hostname,
        INV_OS: os,
        INV_KERNEL: kernel,
        INV_UPTIME: uptime,
        INV_ADDRESSES: addresses,
        INV_AGENT_VERSION: agent_version,
        INV_POLICY_RELEASE: policy_release,
        INV_POLICY_SERVER: policy_server,
    }


# ----- validation (the collector's side) ----------------------------------------------------


@dataclass(frozen=True)
class _Field:
    name: str
    types: tuple[type, ...]
    nullable: bool = False

    def problem(self, value: Any) -> str | None:
        if value is None and self.nullable:
            return None
        # bool is an int to Python, never a number or a string to us
        if isinstance(value, bool) and bool not in self.types:
            return f"{self.name} must be {self._expected()}, got {value!r}"
        if not isinstance(value, self.types):
            return f"{self.name} must be {self._expected()}, got {type(value).__name__}"
        return None

    def _expected(self) -> str:
        names = {str: "a string", int: "an integer", float: "a number", list: "a list"}
        types = (float,) if float in self.types else self.types  # an integer is a number too
        text = " or ".join(names.get(t, t.__name__) for t in types)
        return f"{text} or null" if self.nullable else text


_NUMBER = (int, float)
_PROMISE_FIELDS = (
    _Field(PROMISE_NAME, (str,)),
    _Field(PROMISE_STATUS, (str,)),
    _Field(PROMISE_REASON, (str,)),
    _Field(PROMISE_SECONDS, _NUMBER),
    _Field(PROMISE_OUTPUT, (str,)),
)
_SHAPES: dict[str, tuple[_Field, ...]] = {
    OUTCOME: (
        _Field(OUTCOME_RELEASE, (str,), nullable=True),
        _Field(OUTCOME_SERVER, (str,), nullable=True),
        _Field(OUTCOME_EXIT_CODE, (int,)),
        _Field(OUTCOME_ERROR, (str,), nullable=True),
        _Field(OUTCOME_PROMISES, (list,)),
    ),
    INVENTORY: (
        _Field(INV_HOSTNAME, (str,)),
        _Field(INV_OS, (str,)),
        _Field(INV_KERNEL, (str,)),
        _Field(INV_UPTIME, _NUMBER, nullable=True),
        _Field(INV_ADDRESSES, (list,)),
        _Field(INV_AGENT_VERSION, (str,)),
        _Field(INV_POLICY_RELEASE, (str,), nullable=True),
        _Field(INV_POLICY_SERVER, (str,), nullable=True),
    ),
    GAP: (
        _Field(GAP_FIRST, (int,)),
        _Field(GAP_LAST, (int,)),
        _Field(GAP_COUNT, (int,)),
        _Field(GAP_REASON, (str,)),
    ),
}
KINDS = tuple(_SHAPES)


def _exact_types(fields: tuple[_Field, ...]) -> tuple[frozenset[str], tuple[tuple[str, Any], ...]]:
    """The names, and each field's types as `type(value)` gives them (no bool as a number)."""
    none = (type(None),)
    return frozenset(f.name for f in fields), tuple(
        (f.name, frozenset(f.types + none if f.nullable else f.types)) for f in fields
    )


# Reports arrive by the thousand a second: most are well formed, and this check, a key set
# comparison and one type lookup a field, says so without building the messages below.
_EXACT = {fields: _exact_types(fields) for fields in (*_SHAPES.values(), _PROMISE_FIELDS)}


def _object_problem(obj: Mapping[str, Any], fields: tuple[_Field, ...]) -> str | None:
    exact = _EXACT.get(fields)
    if exact is not None and obj.keys() == exact[0]:
        for name, types in exact[1]:
            if type(obj[name]) not in types:
                break
        else:
            return None
    names = [f.name for f in fields]
    missing = [n for n in names if n not in obj]
    if missing:
        return f"missing {', '.join(missing)}"
    unknown = sorted(set(obj) - set(names))
    if unknown:
        return f"unknown fields {', '.join(unknown)}"
    for f in fields:
        problem = f.problem(obj[f.name])
        if problem:
            return problem
    return None


def payload_problem(kind: str, payload: Mapping[str, Any]) -> str | None:
    """What is wrong with a `kind` report's payload, in one phrase; None when it is good."""
    fields = _SHAPES.get(kind)
    if fields is None:
        return f"unknown report kind {kind!r} (known: {', '.join(KINDS)})"
    problem = _object_problem(payload, fields)
    if problem:
        return f"{kind} payload: {problem}"
    if kind == OUTCOME:
        return _promises_problem(payload[OUTCOME_PROMISES])
    if kind == INVENTORY and not all(isinstance(a, str) for a in payload[INV_ADDRESSES]):
        return f"inventory payload: {INV_ADDRESSES} must be a list of strings"
    return None


def _promises_problem(promises: list[Any]) -> str | None:
    for index, item in enumerate(promises):
        where = f"outcome payload: {OUTCOME_PROMISES}[{index}]"
        if not isinstance(item, dict):
            return f"{where} must be an object"
        problem = _object_problem(item, _PROMISE_FIELDS)
        if problem:
            return f"{where}: {problem}"
        if item[PROMISE_STATUS] not in STATUSES:
            return f"{where}: status {item[PROMISE_STATUS]!r} is none of {', '.join(STATUSES)}"
    return None


# ----- reading (the hub's side) ------------------------------------------------------------


def promise_statuses(payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(promise name, status) of each promise in a stored outcome payload, in run order."""
    return [(p[PROMISE_NAME], p[PROMISE_STATUS]) for p in payload[OUTCOME_PROMISES]]
