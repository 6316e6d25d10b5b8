"""Exit statuses of every ``mlops`` command: one table, one meaning per value.

Workflow steps branch on these (``when: "{{tasks.drift.exitCode}} == 10"``, ``retryStrategy``
expressions such as ``asInt(lastRetry.exitCode) != 2 && asInt(lastRetry.exitCode) != 3``,
``mlops workflow expect-exit CODE --allowed 0,10,11``), and the README's "Exit status" table
lists them; change a value only together with every such consumer.

Errors carry theirs (:attr:`mlops_platform.errors.MlopsError.exit_code`); outcomes that are not
errors (drift detected, insufficient data) are returned by the command.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    """Success (``drift``: no drift; ``analysis run``: Successful)."""
    UNEXPECTED = 1
    """An unexpected error (a bug, or a failure no other status names)."""
    INVALID_INPUT = 2
    """Invalid input or configuration: bad config or argument, missing column, unknown model, a
    binary the command needs is missing. Retrying the same step cannot help."""
    GATE_REFUSED = 3
    """A gate refused: training registered the version with ``gate=failed``; ``promote`` or
    ``rollback`` wrote nothing; ``analysis run``: Failed."""
    SERVICE_UNAVAILABLE = 4
    """A service the command needs is unreachable or failing (tracking server, object store, Git
    host, Prometheus; ``analysis run``: Error). Retrying later may help."""
    CONFLICT = 5
    """``promote``/``rollback``: Git moved under the bot and nothing was forced."""
    INCONCLUSIVE = 6
    """``analysis run``: Inconclusive (neither success nor failure condition held)."""
    DRIFT = 10
    """``drift``: a feature or the predicted-class distribution reached the alert threshold."""
    INSUFFICIENT_DATA = 11
    """``drift``: fewer rows than the minimum; nothing compared, no alarm."""
    INTERRUPTED = 130
    """Interrupted (Ctrl-C, SIGINT)."""


DRIFT_OUTCOMES = frozenset({ExitStatus.OK, ExitStatus.DRIFT, ExitStatus.INSUFFICIENT_DATA})
"""What a completed drift check may return; a drift step continues on any of them."""
