"""CFEngine class expressions: the grammar the hub checks at publish and the agent evaluates.

    or  := and ('|' | '||' and)*
    and := not ('.' | '&' not)*
    not := '!' not | atom
    atom := NAME | '(' or ')'          NAME is [A-Za-z0-9_]+

Stated limits, so that every expression `masterfiles publish` accepts is one every agent can
parse and evaluate: at most MAX_EXPRESSION_LENGTH characters, and at most
MAX_EXPRESSION_DEPTH levels of parentheses and negations, counted together along any path.
Past either limit the expression is refused with ClassExpressionError, never a RecursionError.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

MAX_EXPRESSION_LENGTH = 4096
MAX_EXPRESSION_DEPTH = 64
# How much of an expression an error message quotes, so the message stays one short line.
_QUOTED = 60

_NAME = re.compile(r"[A-Za-z0-9_]+")


class ClassExpressionError(ValueError):
    """A class expression that cannot be parsed; the message names the expression and where."""


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


def _quote(text: str) -> str:
    shown = repr(text)  # escaped first, so control characters cannot break the line
    if len(shown) <= _QUOTED:
        return shown
    return f"{shown[:_QUOTED]}... ({len(text)} characters)"


class _Parser:
    """Recursive descent whose depth is bounded by MAX_EXPRESSION_DEPTH, not by the input."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    def fail(self, problem: str, pos: int | None = None) -> ClassExpressionError:
        at = self.pos if pos is None else pos
        return ClassExpressionError(f"{problem} at {at} in {_quote(self.text)}")

    def deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_EXPRESSION_DEPTH:
            raise self.fail(
                f"nested more than {MAX_EXPRESSION_DEPTH} levels of parentheses and negations"
            )

    def peek(self) -> str:
        # Whitespace is not CFEngine syntax, but tolerating it costs nothing and helps people.
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> Expr:
        if not self.text.strip():
            raise ClassExpressionError(f"empty class expression {_quote(self.text)}")
        if len(self.text) > MAX_EXPRESSION_LENGTH:
            raise ClassExpressionError(
                f"class expression longer than {MAX_EXPRESSION_LENGTH} characters: "
                f"{_quote(self.text)}"
            )
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
        # A run of negations is read in a loop, so only the depth limit bounds it.
        negations = 0
        while self.peek() == "!":
            self.pos += 1
            self.deeper()
            negations += 1
        node = self.parse_atom()
        self.depth -= negations
        for _ in range(negations):
            node = Not(node)
        return node

    def parse_atom(self) -> Expr:
        char = self.peek()
        if char == "(":
            opened = self.pos
            self.pos += 1
            self.deeper()
            inner = self.parse_or()
            if self.peek() != ")":
                raise self.fail("unbalanced parenthesis", opened)
            self.pos += 1
            self.depth -= 1
            return inner
        match = _NAME.match(self.text, self.pos)
        if match:
            self.pos = match.end()
            return Name(match.group())
        if not char:
            raise self.fail("expected a class name or '(' but the expression ended")
        raise self.fail(f"expected a class name or '(' but found {char!r}")


def parse_expression(expr: str) -> Expr:
    """Parse a class expression once; raises ClassExpressionError naming the position."""
    if not isinstance(expr, str):
        raise ClassExpressionError(f"a class expression must be a string, got {expr!r:.{_QUOTED}}")
    return _parse_cached(expr)


@functools.lru_cache(maxsize=1024)
def _parse_cached(expr: str) -> Expr:
    return _Parser(expr).parse()


def _holds(node: Expr, classes: set[str] | frozenset[str]) -> bool:
    # Recursion here is bounded: a parsed tree is at most a few times MAX_EXPRESSION_DEPTH deep.
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
