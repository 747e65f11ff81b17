"""Class expressions, time classes and host classes."""

from __future__ import annotations

import platform
from datetime import datetime

import pytest

from client_agent.classes import host_classes, time_classes
from hubcluster.class_expressions import ClassExpressionError, evaluate, parse_expression

# Tuesday 2026-01-20 05:07
TUESDAY_0507 = time_classes(datetime(2026, 1, 20, 5, 7, 42))


def test_time_classes_for_a_fixed_datetime():
    assert TUESDAY_0507 == {
        "any",
        "Tuesday",
        "Hr05",
        "Min07",
        "Min05_10",
        "Q1",
        "Hr05_Q1",
        "Day20",
        "January",
        "Yr2026",
    }


@pytest.mark.parametrize(
    ("minute", "interval", "quarter"),
    [
        (0, "Min00_05", "Q1"),
        (14, "Min10_15", "Q1"),
        (15, "Min15_20", "Q2"),
        (30, "Min30_35", "Q3"),
        (34, "Min30_35", "Q3"),
        (44, "Min40_45", "Q3"),
        (45, "Min45_50", "Q4"),
        (59, "Min55_00", "Q4"),
    ],
)
def test_five_minute_intervals_and_quarters(minute, interval, quarter):
    found = time_classes(datetime(2026, 12, 6, 23, minute))
    assert interval in found
    assert quarter in found and f"Hr23_{quarter}" in found
    assert {"Sunday", "December", "Day6", "Hr23", f"Min{minute:02d}"} <= found


def test_host_classes_canonify_the_name():
    found = host_classes("web-01.eu.example.com")
    assert {"any", "web_01_eu_example_com", "web_01"} <= found
    assert platform.system().lower() in found


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("Tuesday.Hr05_Q1", True),
        ("Tuesday.Hr06_Q1", False),
        ("Tuesday&Hr05_Q1", True),
        ("linux&!Hr00", True),
        ("linux&!Hr05", False),
        ("(Monday|Friday).Min30_35", False),
        ("(Monday|Tuesday).Min05_10", True),
        ("any", True),
        ("!any", False),
        ("!!any", True),
        ("Monday||Tuesday", True),
        ("Monday|Friday", False),
        ("!(Monday|Friday)", True),
        (" Tuesday . Hr05 ", True),
    ],
)
def test_examples(expr, expected):
    assert evaluate(expr, TUESDAY_0507 | {"linux"}) is expected


def test_precedence_not_over_and_over_or():
    # '.' binds tighter than '|': a|b.c means a|(b.c)
    assert evaluate("a|b.c", {"a"}) is True
    assert evaluate("(a|b).c", {"a"}) is False
    assert evaluate("b.c|a", {"a"}) is True
    # '!' binds tighter than '.': !a.b means (!a).b
    assert evaluate("!a.b", {"b"}) is True
    assert evaluate("!a.b", {"a", "b"}) is False
    assert evaluate("!(a.b)", {"a"}) is True
    assert evaluate("a&b|c&d", {"c", "d"}) is True
    assert evaluate("a&b|c&d", {"a", "d"}) is False


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("(Monday|Friday", "unbalanced parenthesis at 0 in '(Monday|Friday'"),
        ("Monday)", "unbalanced parenthesis at 6 in 'Monday)'"),
        ("a.(b|(c)", "unbalanced parenthesis at 2"),
        ("Monday..Hr05", "at 7 in 'Monday..Hr05'"),
        ("Monday|", "ended at 7"),
        ("!", "ended at 1"),
        ("Monday-Friday", "unexpected '-' at 6"),
        ("a b", "unexpected 'b' at 2"),
        ("", "empty class expression"),
        ("()", "found ')' at 1"),
    ],
)
def test_malformed_expressions_name_position(expr, fragment):
    with pytest.raises(ClassExpressionError) as info:
        evaluate(expr, {"any"})
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_parse_is_cached():
    assert parse_expression("linux&!Hr00") is parse_expression("linux&!Hr00")
