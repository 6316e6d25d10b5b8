"""Errors of the promotion bot beyond the shared ones (:mod:`mlops_platform.errors`)."""

from __future__ import annotations

from mlops_platform.errors import MlopsError
from mlops_platform.exit_status import ExitStatus


class PromotionConflictError(MlopsError):
    """Git moved under the bot: a push stayed rejected after retries, or someone else's commits sit on
    the promotion branch. Nothing was forced; a person decides."""

    exit_code = ExitStatus.CONFLICT


class GitHostError(MlopsError):
    """The Git host API refused a request for a reason other than auth, rate limit or availability."""

    exit_code = ExitStatus.UNEXPECTED
