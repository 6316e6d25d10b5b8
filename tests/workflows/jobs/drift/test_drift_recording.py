"""The drift job's result and how it is recorded: the checked version's `drift.*` tags (what the
promotion bot's model card shows without Prometheus) and the jobs' one failure policy (recording
after the result is best effort; MLflow failures before it are exit 2 or 4, never a traceback)."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, RESOURCE_DOES_NOT_EXIST
from support.project import EmbeddedStore, run_mlops

from mlops_platform import prediction_log
from mlops_platform import registry_names as names
from mlops_platform.errors import NotFoundError, ServiceUnavailableError
from mlops_platform.exit_status import ExitStatus
from mlops_workflows.jobs.failures import record, services_needed

MODEL = "wine-classifier"


def _log(store: Path, when: datetime, rows: int, feature_names: list[str]) -> None:
    from mlops_platform.settings import PlatformSettings
    from mlops_platform.storage import write_bytes

    rng = np.random.default_rng(3)
    table = prediction_log.build_table(
        model=MODEL, version="1", feature_names=feature_names, classes=["0", "1", "2"],
        timestamps_us=np.full(rows, int(when.timestamp() * 1_000_000), dtype=np.int64),
        request_ids=[f"r{i}" for i in range(rows)], rows=np.zeros(rows, dtype=np.int32),
        features=rng.normal(size=(rows, len(feature_names))), predictions=["0"] * rows, probabilities=None,
    )
    write_bytes(prediction_log.record_file_uri(str(store), MODEL, "1", when),
                prediction_log.table_to_parquet(table), PlatformSettings(home=store.parent / ".unused"))


@pytest.mark.integration
def test_a_check_of_the_log_tags_the_version_and_recording_failures_keep_the_result(
    trained_store: EmbeddedStore, tmp_path: Path
) -> None:
    from mlops_drift.baseline import read_baseline
    from mlops_platform.registry import Registry
    from mlops_platform.settings import PlatformSettings
    from mlops_workflows.promote.bot import Bot
    from mlops_workflows.promote.model_card import VersionFacts

    work = tmp_path / "work"
    shutil.copytree(trained_store.home, work / ".mlops")  # the session's registry stays untouched
    registry = Registry(PlatformSettings(MLOPS_HOME=str(work / ".mlops")))
    baseline = read_baseline(registry, registry.get_version(MODEL, version=1))
    assert baseline is not None
    feature_names = list(baseline.feature_names)
    store = tmp_path / "store"
    now = datetime.now(UTC)
    _log(store, now - timedelta(minutes=5), 40, feature_names)
    env = {"MLOPS_HOME": str(work / ".mlops"), "MLOPS_STORE_URI": str(store)}

    def drift(*args: str) -> Any:
        from support.project import base_env

        return run_mlops("drift", MODEL, "--version", "1", *args, cwd=work, env=base_env(**env))

    def tags() -> dict[str, str]:
        mv = registry.get_version(MODEL, version=1)
        return {k: v for k, v in (mv.tags or {}).items() if k.startswith(names.DRIFT_TAG_PREFIX)}

    first = drift("--last", "1h", "--min-rows", "10")
    assert first.returncode in (ExitStatus.OK, ExitStatus.DRIFT), first.stdout + first.stderr
    written = tags()
    assert set(written) == set(names.DRIFT_TAGS)
    assert written[names.TAG_DRIFT_ROWS] == "40"
    assert written[names.TAG_DRIFT_STATUS] in ("ok", "warning", "drift")
    assert registry.get_run(written[names.TAG_DRIFT_RUN]).data.tags[names.RUN_TAG_DRIFT_STATUS] == \
        written[names.TAG_DRIFT_STATUS]
    checked = datetime.strptime(written[names.TAG_DRIFT_CHECKED_AT], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((checked - now).total_seconds()) < 120

    # The bot's drift section without Prometheus is these tags.
    bot: Any = SimpleNamespace(settings=SimpleNamespace(prometheus_url=None))
    shown = Bot._drift_status(bot, MODEL, "production", VersionFacts(1, registered=True, tags=registry
                                                                        .get_version(MODEL, version=1).tags))
    assert f"`{names.TAG_DRIFT_ROWS}=40`" in shown and f"`{names.TAG_DRIFT_STATUS}=" in shown

    # MLflow refuses the job's run (its experiment is deleted): the result and its status stand.
    experiment = registry.client.get_experiment_by_name("drift/" + MODEL)
    registry.client.delete_experiment(experiment.experiment_id)
    again = drift("--last", "1h", "--min-rows", "10000")
    assert again.returncode == ExitStatus.INSUFFICIENT_DATA, again.stdout + again.stderr
    assert "could not be recorded in MLflow" in again.stderr and "Traceback" not in again.stderr
    after = tags()
    assert after[names.TAG_DRIFT_STATUS] == "insufficient_data" and after[names.TAG_DRIFT_RUN] == ""

    # A check of a file is not a check of the served traffic: the version's tags stay.
    sample = tmp_path / "sample.parquet"
    import pandas as pd

    pd.DataFrame(np.ones((5, len(feature_names))), columns=feature_names).to_parquet(sample)
    from_file = drift("--input", str(sample), "--min-rows", "10000")
    assert from_file.returncode == ExitStatus.INSUFFICIENT_DATA, from_file.stdout + from_file.stderr
    assert tags() == after


@pytest.mark.parametrize(
    ("raised", "expected", "status"),
    [
        (MlflowException("no model", error_code=RESOURCE_DOES_NOT_EXIST), NotFoundError, ExitStatus.INVALID_INPUT),
        (MlflowException("boom", error_code=INTERNAL_ERROR), ServiceUnavailableError, ExitStatus.SERVICE_UNAVAILABLE),
        (requests.ConnectionError("refused"), ServiceUnavailableError, ExitStatus.SERVICE_UNAVAILABLE),
    ],
)
def test_mlflow_failures_before_the_result_are_the_jobs_exit_status(
    raised: Exception, expected: type[Exception], status: ExitStatus
) -> None:
    with pytest.raises(expected) as caught, services_needed():
        raise raised
    assert caught.value.exit_code == status  # type: ignore[attr-defined]


def test_other_failures_pass_through_and_recording_is_best_effort(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(KeyError), services_needed():
        raise KeyError("a bug stays a bug (exit 1, with its traceback)")

    def failing() -> str:
        raise MlflowException("down", error_code=INTERNAL_ERROR)

    with caplog.at_level(logging.WARNING):
        assert record("the run could not be recorded", failing) is None
        assert record("never shown", lambda: "recorded") == "recorded"
    assert [r.getMessage() for r in caplog.records] == ["the run could not be recorded: down (the job's result stands)"]
