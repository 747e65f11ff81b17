"""Promises files: parsed or refused with PromisesError; every promise accepted can be run."""

from __future__ import annotations

import json
import shlex
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from client_agent.promises import run_promises
from hubcluster.promises_grammar import (
    MAX_COMMAND_BYTES,
    MAX_EXPIREAFTER,
    MAX_IFELAPSED,
    Promise,
    PromisesError,
    Refusal,
    parse_promises,
    promise_problem,
    read_promises,
)
from hubcluster.report_kinds import STATUSES
from tests.properties.strategies import (
    DEFINED,
    class_expressions,
    hostile_text,
    json_values,
    numbers,
    repeated,
    toml_table,
)

# Commands that do nothing harmful whatever text they carry: `:` ignores its arguments.
commands = st.one_of(
    st.sampled_from(["true", "false", "exit 3", "echo out; echo err >&2"]),
    st.text(max_size=30).map(lambda t: ": " + shlex.quote(t)),
    st.integers(MAX_COMMAND_BYTES - 4, MAX_COMMAND_BYTES + 4).map(lambda n: ": " + "x" * (n - 2)),
)
minutes = st.one_of(
    numbers,
    st.sampled_from([MAX_IFELAPSED, MAX_EXPIREAFTER, MAX_EXPIREAFTER + 1e-9, 1e-9]),
    st.floats(0, MAX_EXPIREAFTER),
)
conditions = st.one_of(class_expressions.map(lambda pair: pair[0]), hostile_text)
names = st.text(max_size=20) | st.sampled_from(["a", "b", "a"])
_optional = {
    "repair": commands | json_values,
    "ifelapsed": minutes | json_values,
    "expireafter": minutes | json_values,
    "if": conditions | json_values,
}
promise_tables = st.one_of(
    # mostly well-typed, so that many promises get as far as being run
    st.fixed_dictionaries(
        {"name": names, "check": commands},
        optional={
            "repair": commands,
            "ifelapsed": minutes,
            "expireafter": minutes,
            "if": conditions,
        },
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "name": names | json_values,
            "check": commands | json_values,
            **_optional,
            "bogus": json_values,
        },
    ),
)
promise_files = st.one_of(
    st.lists(promise_tables, max_size=4).map(
        lambda tables: "".join(toml_table("[[promise]]", t) for t in tables)
    ),
    hostile_text,
    st.builds(lambda a, b: a + b, st.just("[[promise]]\n"), hostile_text),
    repeated(["a = [", "[[promise]]\nname = 'x'\ncheck = 'true'\n", "x = {y = "], 1, 4000),
)


def _one_line(message: str) -> None:
    assert message and "\n" not in message, message


@given(promise_files)
def test_any_file_parses_or_is_refused_with_promises_errors(text):
    try:
        found = read_promises(text, "promises.toml")
    except PromisesError as exc:
        _one_line(str(exc))
        return
    for entry in found.entries:
        if isinstance(entry, Promise):
            assert promise_problem(entry) is None
            json.dumps(entry.name)  # goes into locks.json and reports
        else:
            assert isinstance(entry, Refusal) and entry.name
            _one_line(entry.problem)
            assert entry.problem.startswith("promises.toml")
    try:
        strict = parse_promises(text, "promises.toml")
    except PromisesError as exc:
        assert found.refusals and str(exc) == found.refusals[0].problem
    else:
        assert not found.refusals and strict == found.promises


@given(st.lists(promise_tables, min_size=1, max_size=3))
def test_what_the_agent_accepts_it_runs(tables):
    text = "".join(toml_table("[[promise]]", t) for t in tables)
    try:
        found = read_promises(text, "promises.toml")
    except PromisesError:
        return
    with tempfile.TemporaryDirectory() as state:
        outcomes = run_promises(found.entries, Path(state), set(DEFINED))
    assert [o.name for o in outcomes] == [
        e.name if isinstance(e, Promise) else e.name for e in found.entries
    ]
    for outcome, entry in zip(outcomes, found.entries, strict=True):
        assert outcome.status in STATUSES
        if isinstance(entry, Refusal):
            assert outcome.status == "skipped" and outcome.reason.startswith("refused: ")
        # What the spool will store: strict JSON, no NaN.
        json.dumps(outcome.to_dict(), allow_nan=False)
