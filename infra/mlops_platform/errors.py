"""Domain errors shared by every command.

Each error carries the process exit status the CLI uses for it, so that a workflow step can
tell a bad input from an unavailable service or a failed gate. The statuses are documented in
the README ("Exit status").
"""

from __future__ import annotations


class MlopsError(Exception):
    """Base class: an expected failure with a message meant for the user."""

    exit_code = 1


class ConfigError(MlopsError):
    """Settings or a config file are invalid; the message names the variable or field."""

    exit_code = 2


class InvalidInputError(MlopsError):
    """The data given to a command cannot be used (missing column, non-numeric feature, ...)."""

    exit_code = 2


class NotFoundError(MlopsError):
    """A registered model, version or alias does not exist."""

    exit_code = 2


class ServiceUnavailableError(MlopsError):
    """A service the command needs (tracking server, object store) cannot be reached."""

    exit_code = 4


class GateFailedError(MlopsError):
    """A model version was registered but did not pass its evaluation gate."""

    exit_code = 3
