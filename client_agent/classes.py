"""CFEngine-style classes: the hard classes of this host and time, and class expressions."""

from __future__ import annotations

import functools
import platform
import re
import socket
from dataclasses import dataclass
from datetime import datetime

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_NAME = re.compile(r"[A-Za-z0-9_]+")


class ClassExpressionError(ValueError):
    """A class expression that cannot be parsed; the message names the expression and where."""


def canonify(text: str) -> str:
    """CFEngine's canonify(): anything that cannot appear in a class name becomes `_`."""
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def time_classes(now: datetime) -> set[str]:
    """The time classes of `now`, read from its own wall clock (tests pass explicit datetimes)."""
    hour, minute = now.hour, now.minute
    start = minute - minute % 5
    quarter = minute // 15 + 1
    return {
        "any",
        _WEEKDAYS[now.weekday()],
        f"Hr{hour:02d}",
        f"Min{minute:02d}",
        f"Min{start:02d}_{(start + 5) % 60:02d}",
        f"Q{quarter}",
        f"Hr{hour:02d}_Q{quarter}",
        f"Day{now.day}",
        _MONTHS[now.month - 1],
        f"Yr{now.year}",
    }


def host_classes(hostname: str | None = None) -> set[str]:
    """The host's name (full and short, canonified), its OS, and `any`."""
    name = hostname if hostname is not None else socket.gethostname()
    found = {"any"}
    if name:
        found.add(canonify(name))
        found.add(canonify(name.split(".", 1)[0]))
    system = platform.system().lower()
    if system:
        found.add(canonify(system))
    return found


# The parse tree is frozen so the cached result can be shared safely between callers.
@dataclass(frozen=True)
class Name:
    name: str


@dataclass(frozen=True)
class Not:
    operand: Expr


@dataclass(frozen=True)
class And:
    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Expr, ...]


Expr = Name | Not | And | Or


class _Parser:
    """Recursive descent over: or := and ('|'|'||' and)*; and := not ('.'|'&' not)*;
    not := '!' not | atom; atom := NAME | '(' or ')'."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, problem: str, pos: int | None = None) -> ClassExpressionError:
        at = self.pos if pos is None else pos
        return ClassExpressionError(f"{problem} at {at} in {self.text!r}")

    def peek(self) -> str:
        # Whitespace is not CFEngine syntax, but tolerating it costs nothing and helps people.
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> Expr:
        if not self.text.strip():
            raise ClassExpressionError(f"empty class expression {self.text!r}")
        expr = self.parse_or()
        char = self.peek()
        if char == ")":
            raise self.fail("unbalanced parenthesis")
        if char:
            raise self.fail(f"unexpected {char!r}")
        return expr

    def parse_or(self) -> Expr:
        operands = [self.parse_and()]
        while self.peek() == "|":
            self.pos += 2 if self.text.startswith("||", self.pos) else 1
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def parse_and(self) -> Expr:
        operands = [self.parse_not()]
        while self.peek() in (".", "&"):
            self.pos += 1
            operands.append(self.parse_not())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def parse_not(self) -> Expr:
        if self.peek() == "!":
            self.pos += 1
            return Not(self.parse_not())
        return self.parse_atom()

    def parse_atom(self) -> Expr:
        char = self.peek()
        if char == "(":
            opened = self.pos
            self.pos += 1
            inner = self.parse_or()
            if self.peek() != ")":
                raise self.fail("unbalanced parenthesis", opened)
            self.pos += 1
            return inner
        match = _NAME.match(self.text, self.pos)
        if match:
            self.pos = match.end()
            return Name(match.group())
        if not char:
            raise self.fail("expected a class name or '(' but the expression ended")
        raise self.fail(f"expected a class name or '(' but found {char!r}")


@functools.lru_cache(maxsize=1024)
def parse_expression(expr: str) -> Expr:
    """Parse a class expression once; raises ClassExpressionError naming the position."""
    if not isinstance(expr, str):
        raise ClassExpressionError(f"a class expression must be a string, got {expr!r}")
    return _Parser(expr).parse()


def _holds(node: Expr, classes: set[str] | frozenset[str]) -> bool:
    if isinstance(node, Name):
        return node.name in classes
    if isinstance(node, Not):
        return not _holds(node.operand, classes)
    if isinstance(node, And):
        return all(_holds(op, classes) for op in node.operands)
    return any(_holds(op, classes) for op in node.operands)


def evaluate(expr: str, classes: set[str] | frozenset[str]) -> bool:
    """Whether `expr` holds given the set of defined classes."""
    return _holds(parse_expression(expr), classes)
