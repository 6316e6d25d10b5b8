"""Metric names in a PromQL expression, without a full parser.

Template placeholders (``{{args.x}}``, ``$var``), string literals, label matchers ``{...}``,
range and subquery selectors ``[...]`` and the label lists of ``by``/``without``/``on``/
``ignoring``/``group_left``/``group_right`` are removed first; what is left that looks like an
identifier, is not a keyword and is not called like a function is a metric name.
"""

from __future__ import annotations

import re

_PLACEHOLDER = re.compile(r"\{\{.*?\}\}|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![A-Za-z0-9_:.])([A-Za-z_:][A-Za-z0-9_:]*)(?![A-Za-z0-9_:])")
_KEYWORDS = frozenset({
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset",
    "bool", "inf", "nan", "atan2", "start", "end", "step", "e", "x",
})


def metric_names(expr: str) -> set[str]:
    text = _PLACEHOLDER.sub(" 0 ", expr)
    text = _STRING.sub(" ", text)
    text = re.sub(r"#[^\n]*", " ", text)
    for pattern in (_BRACES, _BRACKETS):
        previous = None
        while previous != text:
            previous, text = text, pattern.sub(" ", text)
    text = _LABEL_LISTS.sub(" ", text)
    names: set[str] = set()
    for match in _IDENT.finditer(text):
        name = match.group(1)
        rest = text[match.end():].lstrip()
        if rest.startswith("(") or name.lower() in _KEYWORDS:
            continue
        if re.fullmatch(r"[0-9].*|[eE][0-9]*", name):
            continue
        names.add(name)
    return names
