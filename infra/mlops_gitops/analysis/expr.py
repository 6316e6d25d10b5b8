"""The subset of the expr language (github.com/expr-lang/expr) that Argo Rollouts conditions use.

``result`` is the measurement (a float for a scalar, a list of floats for a vector); functions
``len``, ``isNaN``, ``isInf``, ``asInt``, ``asFloat``; literals (numbers, ``true``/``false``,
``nil``); ``result[0]``; unary ``!``/``not``/``-``; ``* / %``, ``+ -``, comparisons,
``&&``/``and``, ``||``/``or`` (short-circuit) and ``c ? a : b``. Anything else, an index out of
range or a non-boolean outcome raises :class:`ExprError`, which Argo Rollouts reports as an
Error measurement.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<str>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')"
    r"|(?P<op>&&|\|\||==|!=|<=|>=|[-+*/%<>!?:()\[\],]))"
)


class ExprError(ValueError):
    """The condition cannot be evaluated."""


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ExprError(f"unexpected character {text[pos]!r} at {pos} in {text!r}")
        out.append(match.group(match.lastgroup or 0))
        pos = match.end()
    return out


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExprError(f"{what}: expected a number, got {type(value).__name__} {value!r}")
    return float(value)


def _len(value: Any) -> int:
    if isinstance(value, list | str):
        return len(value)
    raise ExprError(f"len() of {type(value).__name__}")


def _is_nan(value: Any) -> bool:
    return math.isnan(_number(value, "isNaN()"))


def _is_inf(value: Any) -> bool:
    return math.isinf(_number(value, "isInf()"))


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ExprError(f"asFloat({value!r})") from exc


def _as_int(value: Any) -> int:
    try:
        return int(float(value)) if not isinstance(value, str) else int(value)
    except (TypeError, ValueError) as exc:
        raise ExprError(f"asInt({value!r})") from exc


FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "len": _len, "isNaN": _is_nan, "isInf": _is_inf, "asFloat": _as_float, "asInt": _as_int,
}


class _Parser:
    """Recursive descent; each method returns a thunk so that && || ?: short-circuit."""

    def __init__(self, text: str, env: dict[str, Any]) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.env = env
        self.text = text

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise ExprError(f"expected {expected or 'more'} at token {self.pos} in {self.text!r}")
        self.pos += 1
        return token

    def parse(self) -> Callable[[], Any]:
        node = self.ternary()
        if self.peek() is not None:
            raise ExprError(f"unexpected {self.peek()!r} in {self.text!r}")
        return node

    def ternary(self) -> Callable[[], Any]:
        cond = self.or_()
        if self.peek() != "?":
            return cond
        self.take("?")
        yes = self.ternary()
        self.take(":")
        no = self.ternary()
        return lambda: yes() if _bool(cond()) else no()

    def or_(self) -> Callable[[], Any]:
        left = self.and_()
        while self.peek() in ("||", "or"):
            self.take()
            right = self.and_()
            left = (lambda a, b: lambda: _bool(a()) or _bool(b()))(left, right)
        return left

    def and_(self) -> Callable[[], Any]:
        left = self.compare()
        while self.peek() in ("&&", "and"):
            self.take()
            right = self.compare()
            left = (lambda a, b: lambda: _bool(a()) and _bool(b()))(left, right)
        return left

    def compare(self) -> Callable[[], Any]:
        left = self.additive()
        ops: dict[str, Callable[[Any, Any], bool]] = {
            "<": lambda a, b: _number(a, "<") < _number(b, "<"),
            "<=": lambda a, b: _number(a, "<=") <= _number(b, "<="),
            ">": lambda a, b: _number(a, ">") > _number(b, ">"),
            ">=": lambda a, b: _number(a, ">=") >= _number(b, ">="),
            "==": lambda a, b: bool(a == b),
            "!=": lambda a, b: bool(a != b),
        }
        while self.peek() in ops:
            op = ops[self.take()]
            right = self.additive()
            left = (lambda f, a, b: lambda: f(a(), b()))(op, left, right)
        return left

    def additive(self) -> Callable[[], Any]:
        left = self.term()
        while self.peek() in ("+", "-"):
            sign = 1.0 if self.take() == "+" else -1.0
            right = self.term()
            left = (lambda s, a, b: lambda: _number(a(), "+") + s * _number(b(), "-"))(sign, left, right)
        return left

    def term(self) -> Callable[[], Any]:
        left = self.unary()
        while self.peek() in ("*", "/", "%"):
            op = self.take()
            right = self.unary()
            left = (lambda o, a, b: lambda: _arith(o, a(), b()))(op, left, right)
        return left

    def unary(self) -> Callable[[], Any]:
        if self.peek() in ("!", "not"):
            self.take()
            operand = self.unary()
            return lambda: not _bool(operand())
        if self.peek() == "-":
            self.take()
            operand = self.unary()
            return lambda: -_number(operand(), "unary -")
        return self.postfix()

    def postfix(self) -> Callable[[], Any]:
        node = self.primary()
        while self.peek() == "[":
            self.take("[")
            index = self.ternary()
            self.take("]")
            node = (lambda n, i: lambda: _index(n(), i()))(node, index)
        return node

    def primary(self) -> Callable[[], Any]:
        token = self.take()
        if token == "(":
            node = self.ternary()
            self.take(")")
            return node
        if token[0].isdigit() or token[0] == ".":
            value: Any = float(token) if any(c in token for c in ".eE") else int(token)
            return lambda: value
        if token[0] in "\"'":
            text = token[1:-1]
            return lambda: text
        if token in ("true", "false"):
            flag = token == "true"
            return lambda: flag
        if token == "nil":
            return lambda: None
        if token in FUNCTIONS and self.peek() == "(":
            self.take("(")
            argument = self.ternary()
            self.take(")")
            function = FUNCTIONS[token]
            return lambda: function(argument())
        if token in self.env:
            value = self.env[token]
            return lambda: value
        raise ExprError(f"unknown name {token!r} in {self.text!r}")


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ExprError(f"expected a boolean, got {type(value).__name__} {value!r}")
    return value


def _arith(op: str, a: Any, b: Any) -> float:
    x, y = _number(a, op), _number(b, op)
    if op == "*":
        return x * y
    if y == 0:
        return math.nan if x == 0 else math.copysign(math.inf, x)
    return x / y if op == "/" else math.fmod(x, y)


def _index(value: Any, index: Any) -> Any:
    if not isinstance(value, list):
        raise ExprError(f"cannot index {type(value).__name__}")
    position = int(_number(index, "index"))
    if not -len(value) <= position < len(value):
        raise ExprError(f"index out of range: {position} (len {len(value)})")
    return value[position]


def evaluate(condition: str, result: Any) -> bool:
    """Evaluate an Argo Rollouts success or failure condition against a measurement."""
    outcome = _Parser(condition, {"result": result}).parse()()
    if not isinstance(outcome, bool):
        raise ExprError(f"expected bool, but got {type(outcome).__name__}")
    return outcome
