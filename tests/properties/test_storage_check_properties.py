"""The collector's cheap checks say "fine" only where the full checks would.

`plain_json` lets the collector skip walking a report for BSON's key and depth limits, and
the report shapes have a fast path for well-formed objects; both must be conservative: never
"fine" for what the full check refuses.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from hub import bson_limits
from hub.bson_limits import MAX_DEPTH, plain_json, storage_problem
from hubcluster import report_kinds
from tests.properties.strategies import json_values

# Keys a walk refuses, among ordinary ones.
keys = st.one_of(st.text(max_size=6), st.sampled_from(["$set", "a\x00b", "\x00", "$", "ok"]))
values = st.recursive(
    json_values,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=30,
)


def nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@given(values, st.booleans())
def test_plain_json_is_never_wrong(value, ascii_only):
    text = json.dumps({"payload": value}, ensure_ascii=ascii_only)
    if plain_json(text):
        assert bson_limits._shape_problem(json.loads(text)) is None


@pytest.mark.parametrize(
    "record",
    [
        {"payload": {"$set": 1}},
        {"payload": [{"a\x00": 1}]},
        {"payload": nested(MAX_DEPTH + 1)},
    ],
)
def test_what_the_walk_refuses_is_never_plain(record):
    for ascii_only in (True, False):
        text = json.dumps(record, ensure_ascii=ascii_only)
        assert not plain_json(text)
        assert storage_problem(json.loads(text), plain_json(text)) is not None


promise = st.fixed_dictionaries(
    {
        report_kinds.PROMISE_NAME: st.text(max_size=3) | st.integers(),
        report_kinds.PROMISE_STATUS: st.sampled_from([*report_kinds.STATUSES, "odd"]),
        report_kinds.PROMISE_REASON: st.text(max_size=3) | st.none(),
        report_kinds.PROMISE_SECONDS: st.floats() | st.integers() | st.booleans(),
        report_kinds.PROMISE_OUTPUT: st.text(max_size=3),
    },
    optional={"extra": st.integers()},
)
field_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=3),
    st.lists(st.text(max_size=3), max_size=2),
    st.lists(promise | st.integers(), max_size=2),
)


def fitting(types: tuple[type, ...], nullable: bool) -> st.SearchStrategy[Any]:
    """Values of the field's own types, so that whole payloads are often well formed."""
    made = {
        str: st.text(max_size=3),
        int: st.integers(),
        float: st.floats(),
        list: st.lists(promise, max_size=2) | st.lists(st.text(max_size=3), max_size=2),
    }
    choices = st.one_of(*(made[t] for t in types))
    return choices | st.none() if nullable else choices


@given(st.data())
def test_the_fast_shape_check_agrees_with_the_full_one(data):
    kind = data.draw(st.sampled_from(report_kinds.KINDS))
    names = [f.name for f in report_kinds._SHAPES[kind]]
    payload = {}
    for f in report_kinds._SHAPES[kind]:
        odd = data.draw(st.integers(0, 7)) == 0
        payload[f.name] = data.draw(field_values if odd else fitting(f.types, f.nullable))
    if data.draw(st.booleans()):
        payload.pop(data.draw(st.sampled_from(names)))
    if data.draw(st.booleans()):
        payload["extra"] = 1
    fast = report_kinds.payload_problem(kind, payload)
    saved = dict(report_kinds._EXACT)
    report_kinds._EXACT.clear()  # every object checked the long way
    try:
        full = report_kinds.payload_problem(kind, payload)
    finally:
        report_kinds._EXACT.update(saved)
    assert fast == full
    event("well formed" if fast is None else "refused")
