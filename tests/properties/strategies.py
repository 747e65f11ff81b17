"""Generators of outside input: hostile text, JSON and TOML documents, class expressions.

Hostile here means what an attacker or an unlucky disk produces: NUL and control bytes,
lone surrogates, huge numbers, deep nesting, sizes just past each stated limit.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import strategies as st

# Characters that matter to the parsers under test, so short texts hit their branches.
_SHARP = list("()!|&.:[]{}=\"'#,-_ \t\n\r\\/") + ["\0", "\x7f", "\u2028", "é", "\ud800", "٣"]
sharp_text = st.text(alphabet=st.sampled_from(_SHARP) | st.characters(), max_size=40)


@st.composite
def repeated(draw: st.DrawFn, pieces: list[str], low: int = 1, high: int = 5000) -> str:
    """A piece repeated many times: the shape of nesting and size attacks."""
    piece = draw(st.sampled_from(pieces))
    return piece * draw(st.integers(low, high))


hostile_text = st.one_of(
    st.text(max_size=60),
    sharp_text,
    repeated(["(", "!", "[", "{", "a|", "a.", "9", " ", "\0"]),
    st.builds(
        lambda a, b, c: a + b + c,
        repeated(["(", "!", "[", "{a="]),
        sharp_text,
        repeated([")", "]", "}"]),
    ),
)

big_numbers = st.sampled_from(
    [
        0,
        -1,
        1,
        2**31,
        2**53 + 1,
        2**63 - 1,
        2**63,
        2**64,
        -(2**63),
        10**30,
        1e9,
        1e300,
        1e-300,
        5e-324,
        math.inf,
        -math.inf,
        math.nan,
        -0.0,
    ]
)
numbers = st.one_of(big_numbers, st.integers(), st.floats())

json_scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


# What a TOML file can hold: no null, but dates and times.
toml_scalars = st.one_of(
    st.booleans(), numbers, st.text(max_size=20), st.datetimes(), st.dates(), st.times()
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def json_text(value: Any) -> str:
    """JSON as a peer might send it: NaN and Infinity included, as Python writes them."""
    return json.dumps(value)


def objects_with(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict]:
    """JSON objects of the expected fields: all present with near-valid values (so parsing
    gets to the end), or any of them with any values, and a stray one."""
    return st.fixed_dictionaries(fields) | st.fixed_dictionaries(
        {},
        optional={**{k: v | json_values for k, v in fields.items()}, "extra": json_values},
    )


def _toml_key(key: str) -> str:
    return key if key and all(c.isalnum() or c in "_-" for c in key) else json.dumps(key)


def toml_string(text: str) -> str:
    """A TOML basic string holding `text`; a lone surrogate, which TOML cannot hold, is
    written as its escape all the same, so the reader has to refuse it."""
    out = []
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code > 0xFFFF:
            out.append(f"\\U{code:08X}")
        else:
            out.append(f"\\u{code:04X}")
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))


def toml_table(header: str, table: dict[str, Any]) -> str:
    lines = [header] + [f"{_toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


# ----- class expressions --------------------------------------------------------------------

_CLASSES = ["any", "linux", "Monday", "Hr05", "web1", "nothere"]
DEFINED = frozenset({"any", "linux", "Monday", "Hr05"})


def _leaf() -> st.SearchStrategy[tuple[str, bool, bool]]:
    return st.sampled_from(_CLASSES).map(lambda n: (n, n in DEFINED, True))


def _combine(
    inner: st.SearchStrategy[tuple[str, bool, bool]],
) -> st.SearchStrategy[tuple[str, bool, bool]]:
    # (text, value, atomic): an operand that is not atomic is parenthesized where it is used.
    def wrap(e: tuple[str, bool, bool]) -> str:
        return e[0] if e[2] else "(" + e[0] + ")"

    def negate(e: tuple[str, bool, bool]) -> tuple[str, bool, bool]:
        return "!" + wrap(e), not e[1], True

    def paren(e: tuple[str, bool, bool]) -> tuple[str, bool, bool]:
        return "(" + e[0] + ")", e[1], True

    def join(op: str, es: list[tuple[str, bool, bool]]) -> tuple[str, bool, bool]:
        values = [e[1] for e in es]
        value = all(values) if op in (".", "&") else any(values)
        return op.join(wrap(e) for e in es), value, False

    return st.one_of(
        inner.map(negate),
        inner.map(paren),
        st.builds(
            join, st.sampled_from([".", "&", "|", "||"]), st.lists(inner, min_size=2, max_size=3)
        ),
    )


# (expression, its value given DEFINED)
class_expressions = st.recursive(_leaf(), _combine, max_leaves=25).map(lambda e: (e[0], e[1]))
