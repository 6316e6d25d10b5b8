"""The expressions of Argo Workflows templates that decide what runs, evaluated as Argo evaluates them.

Three places use them, each with its own names:

- ``when`` of a step or DAG task (govaluate, after ``{{...}}`` substitution): ``10 == 10``,
  ``'staging' != 'none'``;
- ``depends`` of a DAG task: ``train.Succeeded``, ``drift.Succeeded || drift.Failed``, a bare task
  name (= Succeeded, Skipped or Daemoned);
- ``retryStrategy.expression`` (expr): ``asInt(lastRetry.exitCode) != 2 && asInt(lastRetry.exitCode) != 3``.

The grammar is the part of both languages those templates use: numbers, quoted strings, ``true`` /
``false``, dotted names (resolved by the caller), ``asInt(...)`` / ``asFloat(...)`` / ``string(...)``,
``!``, comparisons (``== != < <= > >=``), ``&&``, ``||`` and parentheses. Anything else raises
:class:`UnsupportedExpression`, so a template that needs more fails clearly instead of running the
wrong branch.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from mlops_platform.errors import ConfigError

__all__ = ["UnsupportedExpression", "evaluate"]


class UnsupportedExpression(ConfigError):
    """An expression the local Argo Workflows stand-in does not evaluate."""


_TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<str>'[^']*'|\"[^\"]*\")|(?P<op>==|!=|<=|>=|&&|\|\||[<>!()])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z_][A-Za-z0-9_\-]*)*))"
)
_FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "asInt": lambda v: int(float(v)),
    "asFloat": float,
    "string": str,
}


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise UnsupportedExpression(f"expression {text!r}: cannot read {text[pos:]!r}")
        kind = match.lastgroup
        assert kind is not None
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def evaluate(text: str, resolve: Callable[[str], Any]) -> Any:
    """The value of ``text``; ``resolve`` gives the value of each dotted name (or raises)."""
    tokens = _tokens(text)
    pos = 0

    def peek() -> tuple[str, str] | None:
        return tokens[pos] if pos < len(tokens) else None

    def take(value: str | None = None) -> tuple[str, str]:
        nonlocal pos
        token = peek()
        if token is None or (value is not None and token[1] != value):
            raise UnsupportedExpression(f"expression {text!r}: expected {value or 'more'} at token {pos + 1}")
        pos += 1
        return token

    def primary() -> Any:
        kind, value = take()
        if kind == "num":
            return float(value) if "." in value else int(value)
        if kind == "str":
            return value[1:-1]
        if kind == "op" and value == "(":
            result = disjunction()
            take(")")
            return result
        if kind == "op" and value == "!":
            return not primary()
        if kind == "name":
            if value in ("true", "false"):
                return value == "true"
            if peek() == ("op", "("):
                if value not in _FUNCTIONS:
                    raise UnsupportedExpression(f"expression {text!r}: function {value}() is not supported")
                take("(")
                argument = disjunction()
                take(")")
                try:
                    return _FUNCTIONS[value](argument)
                except (TypeError, ValueError) as exc:
                    raise UnsupportedExpression(f"expression {text!r}: {value}({argument!r}): {exc}") from None
            return resolve(value)
        raise UnsupportedExpression(f"expression {text!r}: unexpected {value!r}")

    def comparison() -> Any:
        left = primary()
        token = peek()
        if token is not None and token[0] == "op" and token[1] in ("==", "!=", "<", "<=", ">", ">="):
            take()
            right = primary()
            return _compare(token[1], left, right, text)
        return left

    def conjunction() -> Any:
        result = comparison()
        while peek() == ("op", "&&"):
            take()
            right = comparison()
            result = bool(result) and bool(right)
        return result

    def disjunction() -> Any:
        result = conjunction()
        while peek() == ("op", "||"):
            take()
            right = conjunction()
            result = bool(result) or bool(right)
        return result

    if not tokens:
        raise UnsupportedExpression("empty expression")
    value = disjunction()
    if pos != len(tokens):
        raise UnsupportedExpression(f"expression {text!r}: unexpected {tokens[pos][1]!r}")
    return value


def _compare(op: str, left: Any, right: Any, text: str) -> bool:
    numbers = (int, float)
    if isinstance(left, numbers) != isinstance(right, numbers) and op not in ("==", "!="):
        raise UnsupportedExpression(f"expression {text!r}: compares {left!r} with {right!r}")
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)
