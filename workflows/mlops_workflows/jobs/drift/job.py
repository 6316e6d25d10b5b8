"""The drift job behind ``mlops drift``: load, compare, report, record, push.

Compares a window of the prediction log of one model version (or an input file) with the
baseline statistics stored with that version, writes a JSON and an HTML report, logs both to an
MLflow run (experiment ``drift/<model>``, tagged with the model version) and, when
``MLOPS_PUSHGATEWAY_URL`` is set, pushes the results to the Pushgateway group
``{job="mlops-drift", model, version}`` (metric names in :mod:`mlops_platform.metric_names`).

Exit status (:class:`mlops_platform.exit_status.ExitStatus`; distinct from the failures' 1-4, so that a
workflow can branch on it):

==  ==========================================================================================
0   no drift (status ``ok``, or ``warning``: some PSI between the warn and alert thresholds)
10  drift detected: a feature or the predicted-class distribution reached the alert threshold
11  insufficient data: fewer rows than the minimum; nothing compared, no alarm
==  ==========================================================================================

Failures keep the CLI's codes: 2 invalid input (no such model/version, no baseline, unreadable
input), 4 a service (tracking server, object store) unreachable, 1 unexpected.

The prediction log is read with its one reader, :func:`mlops_platform.prediction_log.read_window`
(columns projected, files in parallel); a file that cannot be read (corrupt, or not in the record
schema) is left out and listed in the report, so one bad file does not blind the monitoring. If no
file can be read at all, the input is invalid (exit 2).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from mlops_drift.baseline import read_baseline
from mlops_drift.html import render_html
from mlops_drift.report import DriftReport, Thresholds, build_report
from mlops_platform import metric_names as mn
from mlops_platform import prediction_log
from mlops_platform import registry_names as reg
from mlops_platform.durations import parse_duration
from mlops_platform.errors import InvalidInputError, NotFoundError
from mlops_platform.exit_status import ExitStatus
from mlops_platform.pushgateway import Sample, push_or_warn
from mlops_workflows.jobs.drift.settings import DriftSettings
from mlops_workflows.jobs.failures import record, services_needed

if TYPE_CHECKING:
    from mlops_platform.registry import Registry

log = logging.getLogger(__name__)

EXIT_CODES: dict[str, ExitStatus] = {
    "ok": ExitStatus.OK,
    "warning": ExitStatus.OK,
    "drift": ExitStatus.DRIFT,
    "insufficient_data": ExitStatus.INSUFFICIENT_DATA,
}
"""The exit status of each report status."""

REPORT_JSON = "drift-report.json"
REPORT_HTML = "drift-report.html"
EXPERIMENT_PREFIX = "drift/"
PREDICTION_COLUMN = prediction_log.PREDICTION_COLUMN


@dataclass(frozen=True)
class DriftRequest:
    model: str
    version: int | None = None
    alias: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    last: str | None = None  # a duration ending now, e.g. "1h"
    input_uri: str | None = None
    report_dir: str | None = None  # a folder or s3:// prefix for the two reports
    psi_warn: float | None = None
    psi_alert: float | None = None
    min_rows: int | None = None


@dataclass
class DriftOutcome:
    report: DriftReport
    exit_code: int
    run_id: str | None
    run_url: str | None
    pushed: bool
    report_uris: list[str] = field(default_factory=list)


@dataclass
class _Rows:
    features: dict[str, npt.NDArray[np.float64]]
    predictions: npt.NDArray[np.generic] | None
    files_read: int
    skipped: list[str]


# -- reading ------------------------------------------------------------------------------------


def window(request: DriftRequest, settings: DriftSettings, now: datetime) -> tuple[datetime, datetime]:
    """``[since, until)`` of the request: explicit bounds, or ``last`` (default: the settings' window)."""
    until = _utc(request.until) if request.until is not None else now
    if request.since is not None:
        since = _utc(request.since)
    else:
        since = until - timedelta(seconds=parse_duration(request.last or settings.window))
    if since >= until:
        raise InvalidInputError(f"empty window: since {since.isoformat()} is not before until {until.isoformat()}")
    return since, until


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def read_prediction_log(
    settings: DriftSettings, model: str, version: str, feature_names: list[str], since: datetime, until: datetime
) -> _Rows:
    """The logged rows of ``model``/``version`` with ``since <= timestamp < until``
    (:func:`mlops_platform.prediction_log.read_window`, the one reader of the log)."""
    window = prediction_log.read_window(
        settings.effective_store_uri, settings, model, version, since, until,
        feature_names=feature_names,
        columns=[*(prediction_log.feature_column(n) for n in feature_names), PREDICTION_COLUMN],
        threads=settings.read_threads,
    )
    table = window.table
    features = {
        name: np.asarray(table[prediction_log.feature_column(name)].to_numpy(), dtype=np.float64)
        for name in feature_names
    }
    predictions = np.asarray(table[PREDICTION_COLUMN].to_numpy(zero_copy_only=False), dtype=object)
    return _Rows(features, predictions, window.files_read, window.skipped)


def read_input(settings: DriftSettings, uri: str, feature_names: list[str]) -> _Rows:
    """Rows of a CSV/Parquet file or folder; features named as in the signature or ``feature.<name>``
    (a copy of the prediction log), predictions from an optional ``prediction`` column."""
    from mlops_platform.tables import file_columns, iter_batches, list_inputs, plan_units, to_float64

    block = 16 << 20
    fs, files = list_inputs(uri, settings)
    parts: dict[str, list[npt.NDArray[np.float64]]] = {name: [] for name in feature_names}
    predictions: list[npt.NDArray[np.generic]] = []
    with_predictions = True
    for file in files:
        present = set(file_columns(fs, file, block))
        names = {
            n: (n if n in present else prediction_log.feature_column(n)) for n in feature_names
        }
        missing = [n for n, column in names.items() if column not in present]
        if missing:
            raise InvalidInputError(f"{file.uri}: missing feature column(s) {', '.join(missing)}")
        has_prediction = PREDICTION_COLUMN in present
        with_predictions = with_predictions and has_prediction
        columns = [*names.values(), *([PREDICTION_COLUMN] if has_prediction else [])]
        for unit in plan_units(fs, [file]):
            for batch in iter_batches(fs, unit, columns, chunk_rows=1 << 20, csv_block_bytes=block,
                                      csv_text_columns=list(names.values())):
                for name, column in names.items():
                    values, _ = to_float64(batch.column(column), column)
                    parts[name].append(values)
                if has_prediction:
                    predictions.append(np.asarray(batch.column(PREDICTION_COLUMN).to_pylist(), dtype=object))
    features = {n: np.concatenate(v) if v else np.empty(0, dtype=np.float64) for n, v in parts.items()}
    labels = np.concatenate(predictions) if with_predictions and predictions else None
    return _Rows(features, labels, len(files), [])


# -- recording ----------------------------------------------------------------------------------


def log_to_mlflow(registry: Registry, report: DriftReport, files: dict[str, str]) -> tuple[str, str]:
    """An MLflow run holding the report's figures and both files; its id and URL."""
    metrics: dict[str, float] = {"rows": float(report.rows), "files_skipped": float(len(report.files_skipped))}
    if report.max_feature_psi is not None:
        metrics["max_feature_psi"] = report.max_feature_psi
    if report.prediction is not None and report.prediction.psi is not None:
        metrics["prediction_psi"] = report.prediction.psi
    for feature in report.features:
        if feature.psi is not None:
            metrics[f"psi.{feature.name}"] = feature.psi
        if feature.ks_statistic is not None:
            metrics[f"ks.{feature.name}"] = feature.ks_statistic
    return registry.record_job_run(
        EXPERIMENT_PREFIX + report.model,
        run_name=f"drift-{report.model}-v{report.version}",
        tags={
            reg.RUN_TAG_JOB: reg.JOB_DRIFT,
            reg.RUN_TAG_MODEL_NAME: report.model,
            reg.RUN_TAG_MODEL_VERSION: report.version,
            reg.RUN_TAG_DRIFT_STATUS: report.status,
            reg.RUN_TAG_SOURCE: report.source[:5000],
        },
        params={
            "psi_warn": report.thresholds.psi_warn,
            "psi_alert": report.thresholds.psi_alert,
            "min_rows": report.min_rows,
            "since": report.since.isoformat() if report.since else "",
            "until": report.until.isoformat() if report.until else "",
        },
        metrics=metrics,
        texts={f"drift/{name}": text for name, text in files.items()},
    )


def insufficient_runs(registry: Registry, report: DriftReport, limit: int) -> int:
    """Consecutive recorded runs of the report's version, newest first, with insufficient data
    (the run just recorded included); looks back ``limit`` runs at most."""
    if report.status != "insufficient_data":
        return 0
    statuses = registry.recent_job_run_tags(
        EXPERIMENT_PREFIX + report.model, {reg.RUN_TAG_MODEL_VERSION: report.version}, reg.RUN_TAG_DRIFT_STATUS, limit
    )
    count = 0
    for status in statuses:
        if status != "insufficient_data":
            break
        count += 1
    return max(count, 1)


def version_tags(report: DriftReport, run_id: str | None) -> dict[str, str]:
    """The ``drift.*`` tags of the checked version: its latest result, which the promotion bot's
    model card shows when no Prometheus is configured (:data:`mlops_platform.registry_names.DRIFT_TAGS`)."""
    tags = {
        reg.TAG_DRIFT_STATUS: report.status,
        reg.TAG_DRIFT_CHECKED_AT: (report.until or report.generated_at).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        reg.TAG_DRIFT_ROWS: str(report.rows),
        reg.TAG_DRIFT_MAX_FEATURE_PSI: f"{report.max_feature_psi:.4f}" if report.max_feature_psi is not None else "",
        reg.TAG_DRIFT_RUN: run_id or "",  # empty: this result could not be recorded in MLflow
    }
    return tags


def report_samples(
    report: DriftReport, schedule_interval_s: float, now: float, insufficient: int = 0, insufficient_limit: int = 3
) -> list[Sample]:
    """The series of a completed run (the whole Pushgateway group, replaced at once)."""
    samples = [
        Sample(mn.DRIFT_INSUFFICIENT_RUNS, float(insufficient)),
        Sample(mn.DRIFT_INSUFFICIENT_RUNS_LIMIT, float(insufficient_limit)),
        Sample(mn.DRIFT_ROWS, float(report.rows)),
        Sample(mn.DRIFT_STATUS, float(mn.DRIFT_STATUS_CODES[report.status])),
        Sample(mn.DRIFT_PSI_THRESHOLD, report.thresholds.psi_warn, {mn.LABEL_LEVEL: "warn"}),
        Sample(mn.DRIFT_PSI_THRESHOLD, report.thresholds.psi_alert, {mn.LABEL_LEVEL: "alert"}),
        Sample(mn.DRIFT_EXPECTED_INTERVAL, schedule_interval_s),
        Sample(mn.DRIFT_LAST_RUN, now),
        Sample(mn.DRIFT_LAST_SUCCESS, now),
    ]
    samples.extend(
        Sample(mn.DRIFT_FEATURE_PSI, f.psi, {mn.LABEL_FEATURE: f.name}) for f in report.features if f.psi is not None
    )
    if report.max_feature_psi is not None:
        samples.append(Sample(mn.DRIFT_FEATURE_PSI_MAX, report.max_feature_psi))
    if report.prediction is not None and report.prediction.psi is not None:
        samples.append(Sample(mn.DRIFT_PREDICTION_PSI, report.prediction.psi))
    return samples


def _write_reports(report_dir: str, files: dict[str, str], settings: DriftSettings) -> list[str]:
    from mlops_platform.storage import join_uri, write_bytes

    uris = []
    for name, text in files.items():
        uri = join_uri(report_dir, name)
        write_bytes(uri, text.encode(), settings)
        uris.append(uri)
    return uris


# -- the job ------------------------------------------------------------------------------------


T = TypeVar("T")


def _first(*values: T | None) -> T:
    """The first value that is set (the last one always is)."""
    for value in values:
        if value is not None:
            return value
    raise ValueError("no value set")


def run_drift(settings: DriftSettings, request: DriftRequest, now: datetime | None = None) -> DriftOutcome:
    """Run one drift check; raises MlopsError on failure (after pushing the failure when it can).

    Every run, whatever its outcome, updates the per-model group (its last-run time, and its
    last-success time when it completed), so a check that never gets as far as a version (the
    alias does not exist yet) is visible to the "no successful run yet" alert."""
    succeeded = False
    try:
        outcome = _run_drift(settings, request, now)
        succeeded = True
        return outcome
    finally:
        _push_model_group(settings, request.model, succeeded)


def _push_model_group(settings: DriftSettings, model: str, succeeded: bool) -> None:
    stamp = time.time()
    samples = [
        Sample(mn.DRIFT_MODEL_LAST_RUN, stamp),
        Sample(mn.DRIFT_MODEL_EXPECTED_INTERVAL, settings.schedule_interval_s),
    ]
    if succeeded:
        samples.append(Sample(mn.DRIFT_MODEL_LAST_SUCCESS, stamp))
    # POST: a failed run leaves the last success of an earlier run in place.
    push_or_warn(settings.pushgateway_url, mn.DRIFT_PUSH_JOB, {mn.LABEL_MODEL: model}, samples, replace=False)


def _run_drift(settings: DriftSettings, request: DriftRequest, now: datetime | None) -> DriftOutcome:
    from mlops_platform.registry import open_registry

    now = now or datetime.now(UTC)
    with services_needed():
        registry = open_registry(settings)
        registry.check_reachable()
        version = registry.get_version(request.model, version=request.version, alias=request.alias)
    number = str(version.version)
    grouping = {mn.LABEL_MODEL: request.model, mn.LABEL_VERSION: number}
    try:
        with services_needed():
            report, files, report_uris = _check(settings, request, registry, version, now)
    except Exception:
        _push_failure(settings, grouping)
        raise
    # The result is the report and its exit status; recording it is best effort (jobs.failures).
    recorded = record("the drift result stands but could not be recorded in MLflow",
                      lambda: log_to_mlflow(registry, report, files))
    run_id, run_url = recorded if recorded is not None else (None, None)
    if request.input_uri is None:  # a check of served traffic, not of a file: the version's latest result
        record(f"the {reg.DRIFT_TAG_PREFIX}* tags of {request.model} v{number} could not be set",
               lambda: registry.set_version_tags(request.model, number, version_tags(report, run_id)))
    counted = record("recent drift runs could not be read",
                     lambda: insufficient_runs(registry, report, settings.insufficient_runs_alert))
    insufficient = counted if counted is not None else int(report.status == "insufficient_data")
    if insufficient >= settings.insufficient_runs_alert:
        log.warning(
            "%s v%s: %d drift run(s) in a row had too few rows to compare (alert from %d)",
            request.model, number, insufficient, settings.insufficient_runs_alert,
        )
    pushed = push_or_warn(
        settings.pushgateway_url,
        mn.DRIFT_PUSH_JOB,
        grouping,
        report_samples(
            report, settings.schedule_interval_s, time.time(), insufficient, settings.insufficient_runs_alert
        ),
        replace=True,
    )
    return DriftOutcome(report, EXIT_CODES[report.status], run_id, run_url, pushed, report_uris)


def _check(
    settings: DriftSettings, request: DriftRequest, registry: Registry, version: Any, now: datetime
) -> tuple[DriftReport, dict[str, str], list[str]]:
    """Everything before the result: the baseline, the rows, the report and its files."""
    number = str(version.version)
    baseline = read_baseline(registry, version)
    if baseline is None:
        raise NotFoundError(
            f"{request.model} v{number} has no baseline statistics; attach them with "
            f"`mlops baseline create {request.model} --version {number} --data FILE`"
        )
    # Precedence: the command's flags, then the model's own policy (its training config's
    # `drift:` section, stored with the baseline), then the MLOPS_DRIFT_* defaults.
    policy = baseline.monitoring
    try:
        thresholds = Thresholds(
            psi_warn=_first(request.psi_warn, policy.psi_warn, settings.psi_warn),
            psi_alert=_first(request.psi_alert, policy.psi_alert, settings.psi_alert),
        )
    except ValidationError as exc:
        raise InvalidInputError(f"PSI thresholds: {exc.errors()[0]['msg']}") from None
    min_rows = _first(request.min_rows, policy.min_rows, settings.min_rows)
    if request.input_uri is not None:
        rows = read_input(settings, request.input_uri, list(baseline.feature_names))
        since = until = None
        source = request.input_uri
    else:
        since, until = window(request, settings, now)
        rows = read_prediction_log(settings, request.model, number, list(baseline.feature_names), since, until)
        source = prediction_log.version_prefix(settings.effective_store_uri, request.model, number)
    report = build_report(
        baseline,
        rows.features,
        rows.predictions,
        model=request.model,
        version=number,
        thresholds=thresholds,
        min_rows=min_rows,
        source=source,
        since=since,
        until=until,
        files_read=rows.files_read,
        files_skipped=rows.skipped,
        now=now,
    )
    files = {
        REPORT_JSON: json.dumps(report.model_dump(mode="json"), indent=2) + "\n",
        REPORT_HTML: render_html(report),
    }
    report_uris = _write_reports(request.report_dir, files, settings) if request.report_dir else []
    return report, files, report_uris


def _push_failure(settings: DriftSettings, grouping: dict[str, str]) -> None:
    """Update only the last-run time: the last success (and its results) stay in the group."""
    push_or_warn(settings.pushgateway_url, mn.DRIFT_PUSH_JOB, grouping,
                 [Sample(mn.DRIFT_LAST_RUN, time.time())], replace=False)
