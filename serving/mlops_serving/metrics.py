"""Prometheus metrics of the model server, built from the names in ``mlops_platform.metric_names``.

Worker model: ONE uvicorn process (one event loop) per container; scale with replicas. So every
series of a pod lives in one process, ``/metrics`` is complete without prometheus-client's
multiprocess mode, and the gauges (in flight, model info) are exact. Several workers per process
(``uvicorn --workers N``) were rejected: besides needing multiprocess mode, uvicorn's worker
supervisor drops TCP_NODELAY on accepted sockets (uvicorn#3149), adding ~40 ms to keep-alive
requests; a second core is better used by a second pod.

Each app gets its own registry (no global state), and label children are cached so the request
path does no label lookups.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import disable_created_metrics as _disable_created
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from mlops_platform import metric_names as mn

CONTENT_TYPE = CONTENT_TYPE_LATEST


def _build(spec: mn.MetricSpec, registry: CollectorRegistry) -> Any:
    if spec.kind == "counter":
        return Counter(spec.name, spec.help, spec.labels, registry=registry)
    if spec.kind == "gauge":
        return Gauge(spec.name, spec.help, spec.labels, registry=registry)
    buckets: Sequence[float] = (
        mn.LATENCY_BUCKETS_S if spec is mn.SERVING_REQUEST_DURATION else tuple(float(b) for b in mn.ROWS_BUCKETS)
    )
    return Histogram(spec.name, spec.help, spec.labels, buckets=buckets, registry=registry)


class ServingMetrics:
    def __init__(self) -> None:
        _disable_created()  # type: ignore[no-untyped-call]  # no *_created series: they double the series count for nothing
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = _build(mn.SERVING_REQUESTS, self.registry)
        self.duration = _build(mn.SERVING_REQUEST_DURATION, self.registry)
        self.request_rows = _build(mn.SERVING_REQUEST_ROWS, self.registry)
        self.batch_rows = _build(mn.SERVING_BATCH_ROWS, self.registry)
        self.predictions = _build(mn.SERVING_PREDICTIONS, self.registry)
        self.model_info = _build(mn.SERVING_MODEL_INFO, self.registry)
        self.model_ready = _build(mn.SERVING_MODEL_READY, self.registry)
        self.load_failures = _build(mn.SERVING_MODEL_LOAD_FAILURES, self.registry)
        self.in_flight = _build(mn.SERVING_IN_FLIGHT, self.registry)
        self.predlog_written = _build(mn.SERVING_PREDLOG_WRITTEN, self.registry)
        self.predlog_dropped = _build(mn.SERVING_PREDLOG_DROPPED, self.registry)
        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # -- model lifecycle ---------------------------------------------------------------------

    def model_configured(self, model: str) -> None:
        self._child(self.model_ready, model).set(0)
        self._child(self.load_failures, model)  # expose 0 before the first failure

    def model_loaded(self, model: str, version: str, run_id: str) -> None:
        self._child(self.model_info, model, version, run_id).set(1)
        self._child(self.model_ready, model).set(1)

    def load_failed(self, model: str) -> None:
        self._child(self.load_failures, model).inc()

    # -- requests -----------------------------------------------------------------------------

    def observe_request(self, model: str, version: str, endpoint: str, code: int, seconds: float) -> None:
        self._child(self.requests, model, version, endpoint, str(code)).inc()
        self._child(self.duration, model, version, endpoint).observe(seconds)

    def observe_prediction(self, model: str, version: str, labels: npt.NDArray[Any], is_classifier: bool) -> None:
        self._child(self.request_rows, model, version).observe(len(labels))
        if not is_classifier:
            return
        if len(labels) == 1:
            self._child(self.predictions, model, version, str(labels[0])).inc()
            return
        values, counts = np.unique(labels, return_counts=True)
        for value, count in zip(values.tolist(), counts.tolist(), strict=True):
            self._child(self.predictions, model, version, str(value)).inc(count)

    def observe_batch(self, model: str, version: str, rows: int) -> None:
        self._child(self.batch_rows, model, version).observe(rows)

    # -- prediction log -----------------------------------------------------------------------

    def predlog_records_written(self, model: str, version: str, count: int) -> None:
        self._child(self.predlog_written, model, version).inc(count)

    def predlog_records_dropped(self, model: str, version: str, reason: str, count: int) -> None:
        self._child(self.predlog_dropped, model, version, reason).inc(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
