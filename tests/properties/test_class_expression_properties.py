"""Class expressions: parsed or refused with ClassExpressionError, and what parses evaluates."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hubcluster.class_expressions import (
    MAX_EXPRESSION_DEPTH,
    MAX_EXPRESSION_LENGTH,
    ClassExpressionError,
    evaluate,
    parse_expression,
)
from tests.properties.strategies import DEFINED, class_expressions, hostile_text, json_values


@given(st.one_of(hostile_text, json_values))
def test_any_input_parses_or_is_refused_in_one_line(text):
    try:
        parse_expression(text)
    except ClassExpressionError as exc:
        message = str(exc)
        assert "\n" not in message and len(message) < 300
    else:
        assert isinstance(evaluate(text, DEFINED), bool)


@given(class_expressions)
def test_well_formed_expressions_within_the_limits_parse_and_evaluate_right(pair):
    text, value = pair
    if len(text) > MAX_EXPRESSION_LENGTH:
        return
    try:
        got = evaluate(text, DEFINED)
    except ClassExpressionError as exc:
        assert "nested more than" in str(exc), exc
        # Only nesting may refuse a well-formed expression, and only with enough of it.
        assert text.count("(") + text.count("!") > MAX_EXPRESSION_DEPTH
    else:
        assert got is value


@given(st.integers(0, 3 * MAX_EXPRESSION_DEPTH), st.sampled_from(["(", "!", "(!"]))
def test_nesting_is_refused_exactly_past_the_stated_depth(levels, opener):
    per = len(opener)
    text = opener * levels + "any" + ")" * (levels * opener.count("("))
    if levels * per <= MAX_EXPRESSION_DEPTH:
        assert evaluate(text, DEFINED) is (levels * opener.count("!") % 2 == 0)
    else:
        try:
            parse_expression(text)
        except ClassExpressionError as exc:
            assert f"nested more than {MAX_EXPRESSION_DEPTH} levels" in str(exc)
        else:
            raise AssertionError(f"accepted {levels * per} levels")
