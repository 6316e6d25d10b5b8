"""Domain errors shared by every command.

Each error carries the process exit status the CLI uses for it (from the one table,
:class:`mlops_platform.exit_status.ExitStatus`), so that a workflow step can tell a bad input
from an unavailable service or a failed gate. The statuses are documented in the README
("Exit status").
"""

from __future__ import annotations

from mlops_platform.exit_status import ExitStatus


class MlopsError(Exception):
    """Base class: an expected failure with a message meant for the user."""

    exit_code: int = ExitStatus.UNEXPECTED


class ConfigError(MlopsError):
    """Settings or a config file are invalid; the message names the variable or field."""

    exit_code = ExitStatus.INVALID_INPUT


class InvalidInputError(MlopsError):
    """An argument or the data given to a command cannot be used (missing column, non-numeric
    feature, empty window, ...). The model server's 422 for a request that does not fit the
    model is another class, :class:`mlops_serving.errors.ModelInputError`."""

    exit_code = ExitStatus.INVALID_INPUT


class NotFoundError(MlopsError):
    """A registered model, version or alias does not exist."""

    exit_code = ExitStatus.INVALID_INPUT


class ServiceUnavailableError(MlopsError):
    """A service the command needs (tracking server, object store) cannot be reached."""

    exit_code = ExitStatus.SERVICE_UNAVAILABLE


class GateFailedError(MlopsError):
    """A model version was registered but did not pass its evaluation gate."""

    exit_code = ExitStatus.GATE_REFUSED
