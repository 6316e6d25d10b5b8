"""Names and labels of every Prometheus metric the platform exports: a contract, defined once.

Argo Rollouts AnalysisTemplates, PrometheusRules and dashboards query these series by name, so a
rename here is a breaking change for the manifests. Components build their prometheus-client
objects from these specs (the model server in ``mlops_serving.metrics``) and the README lists
them. Counter names carry their ``_total`` suffix as exposed; histograms expose ``_bucket``,
``_sum`` and ``_count`` series under their name.

The model server runs ONE process per container (scaled with replicas), so every series of a pod
comes from one process and no prometheus-client multiprocess mode is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# -- label names -----------------------------------------------------------------------------
LABEL_MODEL = "model"  # registered model name
LABEL_VERSION = "version"  # registered model version number, as a string
LABEL_ENDPOINT = "endpoint"  # one of SERVING_ENDPOINTS
LABEL_CODE = "code"  # HTTP status code, as a string ("200", "422", ...)
CODE_CLIENT_CLOSED = "499"
"""``code`` of a request whose client closed the connection before its body was complete (nginx's
convention). Not an answer: the canary analysis, the error-ratio alert and the promotion bot's
health check leave it out of both sides of their ratios."""
LABEL_CLASS = "class"  # predicted class label, as a string
LABEL_RUN_ID = "run_id"  # MLflow run that produced the version
LABEL_REASON = "reason"  # why a prediction-log record was dropped: one of PREDLOG_DROP_REASONS

SERVING_ENDPOINT_V2_GRPC = "v2_grpc"
"""``endpoint`` of ModelInfer on the Open Inference Protocol's gRPC port; its ``code`` is the HTTP
status the same outcome has on REST (so ratios over ``code=~"5.."`` count both protocols alike)."""
SERVING_ENDPOINTS = ("predict", "invocations", "v2_infer", SERVING_ENDPOINT_V2_GRPC)
"""Values of the ``endpoint`` label: the own protocol, MLflow's scoring protocol, Open Inference v2
over REST and over gRPC."""

PREDLOG_DROP_REASONS = ("buffer_full", "write_error")

LATENCY_BUCKETS_S = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Request latency histogram buckets in seconds, 1 ms to 10 s."""

ROWS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)
"""Buckets of the rows-per-request and rows-per-batch histograms."""


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its exposed name, type, label names and help text."""

    name: str
    kind: Literal["counter", "gauge", "histogram"]
    labels: tuple[str, ...]
    help: str


# -- model server (mlops_serving) ----------------------------------------------------------------
SERVING_REQUESTS = MetricSpec(
    "mlops_serving_requests_total",
    "counter",
    (LABEL_MODEL, LABEL_VERSION, LABEL_ENDPOINT, LABEL_CODE),
    "Prediction requests by model, version, endpoint and HTTP status code "
    "(model and version are empty when the request named no served model).",
)
SERVING_REQUEST_DURATION = MetricSpec(
    "mlops_serving_request_duration_seconds",
    "histogram",
    (LABEL_MODEL, LABEL_VERSION, LABEL_ENDPOINT),
    "Time from receiving a prediction request to sending its response head, in seconds.",
)
SERVING_REQUEST_ROWS = MetricSpec(
    "mlops_serving_request_rows",
    "histogram",
    (LABEL_MODEL, LABEL_VERSION),
    "Rows per successful prediction request.",
)
SERVING_BATCH_ROWS = MetricSpec(
    "mlops_serving_batch_rows",
    "histogram",
    (LABEL_MODEL, LABEL_VERSION),
    "Rows per model predict call after micro-batching (rows of one or more requests).",
)
SERVING_PREDICTIONS = MetricSpec(
    "mlops_serving_predictions_total",
    "counter",
    (LABEL_MODEL, LABEL_VERSION, LABEL_CLASS),
    "Predicted rows per class (classifiers only).",
)
SERVING_MODEL_INFO = MetricSpec(
    "mlops_serving_model_info",
    "gauge",
    (LABEL_MODEL, LABEL_VERSION, LABEL_RUN_ID),
    "1 for each model version this process serves.",
)
SERVING_MODEL_READY = MetricSpec(
    "mlops_serving_model_ready",
    "gauge",
    (LABEL_MODEL,),
    "1 when the configured model is loaded and serving, else 0.",
)
SERVING_MODEL_LOAD_FAILURES = MetricSpec(
    "mlops_serving_model_load_failures_total",
    "counter",
    (LABEL_MODEL,),
    "Failed attempts to load a configured model (missing version, unreachable registry, bad artifact).",
)
SERVING_IN_FLIGHT = MetricSpec(
    "mlops_serving_requests_in_flight",
    "gauge",
    (),
    "Prediction requests being processed.",
)
SERVING_PREDLOG_WRITTEN = MetricSpec(
    "mlops_serving_prediction_log_records_written_total",
    "counter",
    (LABEL_MODEL, LABEL_VERSION),
    "Prediction-log records (one per predicted row) written to the object store.",
)
SERVING_PREDLOG_DROPPED = MetricSpec(
    "mlops_serving_prediction_log_records_dropped_total",
    "counter",
    (LABEL_MODEL, LABEL_VERSION, LABEL_REASON),
    "Sampled prediction-log records not written: buffer full, or the object store write failed.",
)

SERVING_METRICS = (
    SERVING_REQUESTS,
    SERVING_REQUEST_DURATION,
    SERVING_REQUEST_ROWS,
    SERVING_BATCH_ROWS,
    SERVING_PREDICTIONS,
    SERVING_MODEL_INFO,
    SERVING_MODEL_READY,
    SERVING_MODEL_LOAD_FAILURES,
    SERVING_IN_FLIGHT,
    SERVING_PREDLOG_WRITTEN,
    SERVING_PREDLOG_DROPPED,
)
"""Every metric of the model server, in the order the README lists them."""


def all_metric_names() -> frozenset[str]:
    """Every series name the platform exposes, as PromQL sees it.

    Counters as named (with ``_total``), gauges as named, histograms as their ``_bucket``,
    ``_sum`` and ``_count`` series. Covers every :class:`MetricSpec` defined in this module, so
    the manifest validator (``hack/validate``) checks queries against exactly this contract.
    """
    names: set[str] = set()
    for spec in (value for value in globals().values() if isinstance(value, MetricSpec)):
        if spec.kind == "histogram":
            names.update(f"{spec.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(spec.name)
    return frozenset(names)


# -- drift job (mlops_workflows.jobs.drift.job, pushed to the Pushgateway) ------------------------------------
# Pushed once per run in the group {job="mlops-drift", model, version}: the Pushgateway adds the
# grouping labels (model, version) to every series, so the job itself only sets `feature` and
# `level`. Prometheus scrapes the Pushgateway with honor_labels, which keeps job="mlops-drift".
LABEL_FEATURE = "feature"  # feature name, as in the model signature
LABEL_LEVEL = "level"  # threshold level: one of DRIFT_THRESHOLD_LEVELS
LABEL_SHARD = "shard"  # batch shard "<i>-of-<n>" (1-based), "1-of-1" for an unsharded run
LABEL_OUTCOME = "outcome"  # batch row outcome: one of BATCH_ROW_OUTCOMES

DRIFT_PUSH_JOB = "mlops-drift"
"""Value of the ``job`` label of every drift series (the Pushgateway grouping key's job)."""

DRIFT_THRESHOLD_LEVELS = ("warn", "alert")

DRIFT_STATUS_CODES = {"ok": 0, "warning": 1, "drift": 2, "insufficient_data": 3}
"""Values of :data:`DRIFT_STATUS`, by the report's status name."""

DRIFT_FEATURE_PSI = MetricSpec(
    "mlops_drift_feature_psi",
    "gauge",
    (LABEL_MODEL, LABEL_VERSION, LABEL_FEATURE),
    "Population stability index of a numeric feature, last drift run against the version's training baseline.",
)
DRIFT_FEATURE_PSI_MAX = MetricSpec(
    "mlops_drift_feature_psi_max",
    "gauge",
    (LABEL_MODEL, LABEL_VERSION),
    "Largest feature PSI of the last drift run.",
)
DRIFT_PREDICTION_PSI = MetricSpec(
    "mlops_drift_prediction_psi",
    "gauge",
    (LABEL_MODEL, LABEL_VERSION),
    "PSI of the predicted-class distribution of the last drift run against the holdout predictions.",
)
DRIFT_ROWS = MetricSpec(
    "mlops_drift_rows_compared",
    "gauge",
    (LABEL_MODEL, LABEL_VERSION),
    "Rows (prediction-log records or input rows) the last drift run compared with the baseline.",
)
DRIFT_STATUS = MetricSpec(
    "mlops_drift_status",
    "gauge",
    (LABEL_MODEL, LABEL_VERSION),
    "Outcome of the last drift run: 0 ok, 1 warning, 2 drift, 3 insufficient data (see DRIFT_STATUS_CODES).",
)
DRIFT_PSI_THRESHOLD = MetricSpec(
    "mlops_drift_psi_threshold",
    "gauge",
    (LABEL_MODEL, LABEL_VERSION, LABEL_LEVEL),
    "PSI thresholds the last drift run used (level warn or alert); the alert rules compare PSI with them.",
)
DRIFT_EXPECTED_INTERVAL = MetricSpec(
    "mlops_drift_expected_interval_seconds",
    "gauge",
    (LABEL_MODEL, LABEL_VERSION),
    "How often the drift job is scheduled for this model (MLOPS_DRIFT_SCHEDULE_INTERVAL_S); the "
    "staleness alert fires after twice this without a successful run.",
)
DRIFT_LAST_RUN = MetricSpec(
    "mlops_drift_last_run_timestamp_seconds",
    "gauge",
    (LABEL_MODEL, LABEL_VERSION),
    "Unix time the last drift run ended, whatever its outcome.",
)
DRIFT_LAST_SUCCESS = MetricSpec(
    "mlops_drift_last_success_timestamp_seconds",
    "gauge",
    (LABEL_MODEL, LABEL_VERSION),
    "Unix time the last drift run completed a comparison (ok, warning, drift or insufficient data).",
)

DRIFT_INSUFFICIENT_RUNS = MetricSpec(
    "mlops_drift_insufficient_data_runs",
    "gauge",
    (LABEL_MODEL, LABEL_VERSION),
    "Consecutive drift runs of this version, the last one included, that had too few rows to compare "
    "(0 after a run that compared); counted from the runs recorded in MLflow.",
)
DRIFT_INSUFFICIENT_RUNS_LIMIT = MetricSpec(
    "mlops_drift_insufficient_data_runs_limit",
    "gauge",
    (LABEL_MODEL, LABEL_VERSION),
    "Consecutive insufficient-data runs from which the alert fires (MLOPS_DRIFT_INSUFFICIENT_RUNS_ALERT).",
)

# Pushed by every drift run, whatever its outcome, in the group {job="mlops-drift", model}
# (no version): a run that fails before it can resolve a version (exit 2: the alias does not
# exist yet) still leaves a series, so "no successful run yet" can alert.
DRIFT_MODEL_LAST_RUN = MetricSpec(
    "mlops_drift_model_last_run_timestamp_seconds",
    "gauge",
    (LABEL_MODEL,),
    "Unix time the last drift run of this model ended, whatever its outcome and whether or not it "
    "resolved a version.",
)
DRIFT_MODEL_LAST_SUCCESS = MetricSpec(
    "mlops_drift_model_last_success_timestamp_seconds",
    "gauge",
    (LABEL_MODEL,),
    "Unix time a drift run of this model last completed (any version); absent until the first success.",
)
DRIFT_MODEL_EXPECTED_INTERVAL = MetricSpec(
    "mlops_drift_model_expected_interval_seconds",
    "gauge",
    (LABEL_MODEL,),
    "How often the drift job is scheduled for this model (MLOPS_DRIFT_SCHEDULE_INTERVAL_S).",
)

DRIFT_MODEL_GROUP_METRICS = (DRIFT_MODEL_LAST_RUN, DRIFT_MODEL_LAST_SUCCESS, DRIFT_MODEL_EXPECTED_INTERVAL)
"""The series of the per-model group {job="mlops-drift", model}."""

DRIFT_METRICS = (
    DRIFT_FEATURE_PSI,
    DRIFT_FEATURE_PSI_MAX,
    DRIFT_PREDICTION_PSI,
    DRIFT_ROWS,
    DRIFT_STATUS,
    DRIFT_PSI_THRESHOLD,
    DRIFT_EXPECTED_INTERVAL,
    DRIFT_LAST_RUN,
    DRIFT_LAST_SUCCESS,
    DRIFT_INSUFFICIENT_RUNS,
    DRIFT_INSUFFICIENT_RUNS_LIMIT,
    *DRIFT_MODEL_GROUP_METRICS,
)
"""Every metric the drift job pushes."""


# -- batch job (mlops_workflows.jobs.batch, pushed to the Pushgateway) ------------------------------
# Pushed in the group {job="mlops-batch-predict", model, shard}: one group per model and shard, so
# the shards of a fan-out do not overwrite each other and a newer version replaces an older one.
BATCH_PUSH_JOB = "mlops-batch-predict"
"""Value of the ``job`` label of every batch series (the Pushgateway grouping key's job)."""

BATCH_ROW_OUTCOMES = ("predicted", "rejected")

BATCH_ROWS = MetricSpec(
    "mlops_batch_rows",
    "gauge",
    (LABEL_MODEL, LABEL_SHARD, LABEL_VERSION, LABEL_OUTCOME),
    "Rows of the last successful batch run: predicted, or rejected for not matching the signature.",
)
BATCH_DURATION = MetricSpec(
    "mlops_batch_duration_seconds",
    "gauge",
    (LABEL_MODEL, LABEL_SHARD, LABEL_VERSION),
    "Wall-clock duration of the last successful batch run, in seconds.",
)
BATCH_LAST_SUCCESS = MetricSpec(
    "mlops_batch_last_success_timestamp_seconds",
    "gauge",
    (LABEL_MODEL, LABEL_SHARD, LABEL_VERSION),
    "Unix time the last successful batch run committed its output.",
)
BATCH_FAILED = MetricSpec(
    "mlops_batch_failed",
    "gauge",
    (LABEL_MODEL, LABEL_SHARD, LABEL_VERSION),
    "1 when the last batch run of this model and shard failed (nothing committed), 0 after a success.",
)
BATCH_LAST_RUN = MetricSpec(
    "mlops_batch_last_run_timestamp_seconds",
    "gauge",
    (LABEL_MODEL, LABEL_SHARD, LABEL_VERSION),
    "Unix time the last batch run of this model and shard ended, whatever its outcome.",
)

BATCH_METRICS = (BATCH_ROWS, BATCH_DURATION, BATCH_LAST_SUCCESS, BATCH_FAILED, BATCH_LAST_RUN)
"""Every metric the batch job pushes."""


# -- controllers the platform runs (exported by them, scraped by Prometheus) --------------------
# Not exported by this code: the upstream names the loop's alert rules query
# (infra/monitoring/rules/prometheusrule-lifecycle.yaml), listed so hack/validate checks them too.
ROLLOUT_INFO = MetricSpec(
    "rollout_info",
    "gauge",
    ("namespace", "name", "strategy", "traffic_router", "phase"),
    "Argo Rollouts controller: 1 per Rollout, phase Healthy, Progressing, Paused or Degraded (an aborted "
    "canary is Degraded).",
)
ARGO_WORKFLOWS_TOTAL_COUNT = MetricSpec(
    "argo_workflows_total_count",
    "counter",
    ("namespace", "phase"),
    "Argo Workflows controller (3.6+): workflows that entered each phase, by namespace.",
)
CONTROLLER_METRICS = (ROLLOUT_INFO, ARGO_WORKFLOWS_TOTAL_COUNT)
"""Upstream controller metrics the platform's alerts use."""
