"""One failure policy for both jobs (``mlops batch-predict``, ``mlops drift``).

A job has a result: batch-predict's is the committed output, drift's the report and its exit
status (0, 10, 11). Failures are handled by when they happen, the same way in both jobs:

- **Before the result** (resolving the version, loading the model or its baseline, reading the
  input, writing the output): the job fails with the exit status of the cause
  (:class:`mlops_platform.exit_status.ExitStatus`): 2 for bad input or an unknown model, version
  or alias; 4 for a service that is unreachable or failing. The storage helpers already raise
  those; :func:`services_needed` turns what MLflow's client raises into them too (a missing
  resource is 2, any other MLflow or HTTP error 4), so the WorkflowTemplates' retry on 4 applies
  and nothing ends in a traceback with 1.
- **After the result** (the job's MLflow run, the version's ``drift.*`` tags, the Pushgateway):
  recording is best effort (:func:`record`): a failure is a warning and the result's status
  stands. A retry could not do better: batch-predict would find its output committed and refuse to
  overwrite it, drift would compare the same window again.
- Each run updates its Pushgateway group whatever happens (last run; last success or failed),
  through :func:`mlops_platform.pushgateway.push_or_warn`, which never fails a job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from mlops_platform.errors import MlopsError, NotFoundError, ServiceUnavailableError

log = logging.getLogger(__name__)

T = TypeVar("T")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def service_failure(exc: Exception) -> MlopsError | None:
    """The job error an exception from MLflow's client (or its HTTP layer) means; None for others."""
    import requests
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        code = str(getattr(exc, "error_code", ""))
        if "RESOURCE_DOES_NOT_EXIST" in code or "NOT_FOUND" in code:
            return NotFoundError(f"MLflow: {_first_line(exc)}")
        return ServiceUnavailableError(f"MLflow tracking server failed: {_first_line(exc)}")
    if isinstance(exc, requests.RequestException):
        return ServiceUnavailableError(f"MLflow tracking server unreachable: {_first_line(exc)}")
    return None


@contextmanager
def services_needed() -> Iterator[None]:
    """Before the result: MLflow failures become the job's exit status (2 missing, 4 failing)."""
    try:
        yield
    except MlopsError:
        raise
    except Exception as exc:
        mapped = service_failure(exc)
        if mapped is None:
            raise
        raise mapped from exc


def record(what: str, action: Callable[[], T]) -> T | None:
    """After the result: run ``action`` (recording it somewhere); on failure warn and return None."""
    try:
        return action()
    except Exception as exc:
        log.warning("%s: %s (the job's result stands)", what, _first_line(exc))
        return None
