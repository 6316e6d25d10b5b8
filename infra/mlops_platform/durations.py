"""The duration grammar, defined once: what ``--last 1h``, ``MLOPS_DRIFT_WINDOW``, the analysis
templates' ``interval`` and the Rollouts' pause durations are made of.

A duration is one or more ``<number><unit>`` parts, ``1h``, ``1m30s``, ``500ms`` (units ``ns``,
``us``/``µs``, ``ms``, ``s``, ``m``, ``h``; and ``d`` for days where the platform reads it).

- :func:`parse_go_duration`: Go's ``time.ParseDuration`` as Argo Rollouts and Argo Workflows read
  manifests: case-sensitive, no days (a manifest the controller would refuse fails here too).
- :func:`parse_duration`: what users type (flags, ``MLOPS_*`` settings): the same parts plus ``d``,
  any case, or a plain number of seconds; must be positive.
"""

from __future__ import annotations

import math
import re

from mlops_platform.errors import InvalidInputError

_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)"
_PARTS = re.compile(_PART)
GO_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
"""A Go duration (the manifests' grammar), anchored."""
_USER_DURATION = re.compile(rf"^(?:{_PART})+$")


class DurationError(InvalidInputError):
    """Not a duration of the expected grammar (exit 2, like any invalid input)."""


def _seconds(text: str) -> float:
    return sum(float(number) * _SECONDS[unit] for number, unit in _PARTS.findall(text))


def is_go_duration(text: str) -> bool:
    return GO_DURATION.match(text.strip()) is not None


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration (``30s``, ``1m30s``, ``500ms``)."""
    value = text.strip()
    if not is_go_duration(value):
        raise DurationError(f"invalid duration {text!r} (expected e.g. 30s, 1m, 1m30s)")
    return _seconds(value)


def parse_duration(text: str) -> float:
    """Seconds in ``30m``, ``1h``, ``2d``, ``1h30m``, ``90s`` or a plain number of seconds; positive."""
    value = text.strip().lower()
    body = value.removeprefix("-").removeprefix("+")
    if _USER_DURATION.match(body):
        seconds = _seconds(body) * (-1.0 if value.startswith("-") else 1.0)
    else:
        try:
            seconds = float(value)
        except ValueError:
            raise DurationError(f"invalid duration {text!r}: expected e.g. 90s, 30m, 1h, 2d") from None
    if not (seconds > 0 and math.isfinite(seconds)):
        raise DurationError(f"invalid duration {text!r}: must be positive")
    return seconds
