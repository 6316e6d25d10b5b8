"""The model-name rule, defined once.

A model the platform manages (trained from ``workflows/models/<name>.yaml``, promoted through
``serving/manifests/models/<name>/``) has a name that becomes a folder, a Git branch, Kubernetes
object names and label values: a lower-case DNS label (RFC 1123, at most 63 characters).
Training configs (:mod:`mlops_workflows.training.config`) and the promotion bot check it here.

The model server can also serve a version registered outside training (bring your own model),
whose MLflow name the platform did not choose; it accepts any name of :data:`SERVED_NAME_PATTERN`
(letters, digits, ``.``, ``_``, ``-``: what may follow ``/v2/models/`` and be a metric label),
which every managed name satisfies.
"""

from __future__ import annotations

import re

from mlops_platform.errors import InvalidInputError

MODEL_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
"""A lower-case DNS label: what a managed model's name must match."""

SERVED_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]*"
"""A name the model server accepts in ``NAME:VERSION`` / ``NAME@ALIAS`` (unanchored, to embed)."""

_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)


def is_model_name(name: str) -> bool:
    return _MODEL_NAME.match(name) is not None


def check_model_name(name: str) -> str:
    """``name`` if it is a managed model's name; else :class:`InvalidInputError` (exit 2)."""
    if not is_model_name(name):
        raise InvalidInputError(f"model name {name!r} is not a lower-case DNS label (a-z, 0-9, '-')")
    return name
