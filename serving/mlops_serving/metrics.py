"""Prometheus metrics of the model server, built from the names in ``mlops_platform.metric_names``.

Worker model: ONE uvicorn process (one event loop) per container; scale with replicas. So every
series of a pod lives in one process, ``/metrics`` is complete without prometheus-client's
multiprocess mode, and the gauges (in flight, model info) are exact. Several workers per process
(``uvicorn --workers N``) were rejected: besides needing multiprocess mode, uvicorn's worker
supervisor drops TCP_NODELAY on accepted sockets (uvicorn#3149), adding ~40 ms to keep-alive
requests; a second core is better used by a second pod.

Each app gets its own registry (no global state). The series a request updates (requests,
duration, rows, predictions, batch rows, in flight) are plain numbers in dicts, updated without
a lock and turned into Prometheus families when scraped (:class:`_Counts`, :class:`_Histograms`,
:class:`_Level`): prometheus-client's children take a lock per update, and a request made ten
(two counters, the in-flight gauge up and down, three histogram observations of two each).
Lock-free is safe because every request-path update and every scrape runs on the event loop's
thread (HTTP and gRPC requests, the batcher's callbacks, the async ``/metrics`` route). The model
lifecycle and prediction-log series, updated rarely and from other threads, stay
prometheus-client's own. The exposition is the same text either way (a test compares them).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import disable_created_metrics as _disable_created
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from mlops_platform import metric_names as mn

CONTENT_TYPE = CONTENT_TYPE_LATEST


def _buckets(spec: mn.MetricSpec) -> tuple[float, ...]:
    if spec is mn.SERVING_REQUEST_DURATION:
        return tuple(mn.LATENCY_BUCKETS_S)
    return tuple(float(b) for b in mn.ROWS_BUCKETS)


def _build(spec: mn.MetricSpec, registry: CollectorRegistry) -> Any:
    if spec.kind == "counter":
        return Counter(spec.name, spec.help, spec.labels, registry=registry)
    if spec.kind == "gauge":
        return Gauge(spec.name, spec.help, spec.labels, registry=registry)
    return Histogram(spec.name, spec.help, spec.labels, buckets=_buckets(spec), registry=registry)


class _Counts:
    """A counter's series: label values -> count. Updated on the event loop's thread only."""

    def __init__(self, spec: mn.MetricSpec, registry: CollectorRegistry) -> None:
        self.spec = spec
        self.values: dict[tuple[str, ...], float] = {}
        registry.register(self)

    def add(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        values = self.values
        values[labels] = values.get(labels, 0.0) + amount

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.spec.name, self.spec.help, labels=self.spec.labels)
        for labels, value in list(self.values.items()):
            family.add_metric(labels, value)
        yield family


class _Histograms:
    """A histogram's series: label values -> the count of each bucket (not cumulative; the last is
    +Inf) followed by the sum. ``value <= bound`` puts a value in a bucket, as prometheus-client
    does. Updated on the event loop's thread only."""

    def __init__(self, spec: mn.MetricSpec, registry: CollectorRegistry) -> None:
        self.spec = spec
        self.bounds = (*_buckets(spec), float("inf"))
        self._les = [floatToGoString(bound) for bound in self.bounds]  # type: ignore[no-untyped-call]
        self.series: dict[tuple[str, ...], list[float]] = {}
        registry.register(self)

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        counts = self.series.get(labels)
        if counts is None:
            counts = self.series[labels] = [0.0] * (len(self.bounds) + 1)
        counts[bisect_left(self.bounds, value)] += 1
        counts[-1] += value

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.spec.name, self.spec.help, labels=self.spec.labels)
        for labels, counts in list(self.series.items()):
            cumulative, buckets = 0.0, []
            for le, count in zip(self._les, counts, strict=False):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric(labels, buckets, counts[-1])
        yield family


class _Level:
    """A gauge without labels. Updated on the event loop's thread only."""

    def __init__(self, spec: mn.MetricSpec, registry: CollectorRegistry) -> None:
        self.spec = spec
        self.value = 0.0
        registry.register(self)

    def inc(self) -> None:
        self.value += 1

    def dec(self) -> None:
        self.value -= 1

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self.spec.name, self.spec.help, value=self.value)


class ServingMetrics:
    def __init__(self) -> None:
        _disable_created()  # type: ignore[no-untyped-call]  # no *_created series: they double the series count for nothing
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = _Counts(mn.SERVING_REQUESTS, self.registry)
        self.duration = _Histograms(mn.SERVING_REQUEST_DURATION, self.registry)
        self.request_rows = _Histograms(mn.SERVING_REQUEST_ROWS, self.registry)
        self.batch_rows = _Histograms(mn.SERVING_BATCH_ROWS, self.registry)
        self.predictions = _Counts(mn.SERVING_PREDICTIONS, self.registry)
        self.model_info = _build(mn.SERVING_MODEL_INFO, self.registry)
        self.model_ready = _build(mn.SERVING_MODEL_READY, self.registry)
        self.load_failures = _build(mn.SERVING_MODEL_LOAD_FAILURES, self.registry)
        self.in_flight = _Level(mn.SERVING_IN_FLIGHT, self.registry)
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
        self.requests.add((model, version, endpoint, str(code)))
        self.duration.observe((model, version, endpoint), seconds)

    def observe_prediction(self, model: str, version: str, labels: npt.NDArray[Any], is_classifier: bool) -> None:
        self.request_rows.observe((model, version), len(labels))
        if not is_classifier:
            return
        if len(labels) == 1:
            self.predictions.add((model, version, str(labels[0])))
            return
        values, counts = np.unique(labels, return_counts=True)
        for value, count in zip(values.tolist(), counts.tolist(), strict=True):
            self.predictions.add((model, version, str(value)), count)

    def observe_batch(self, model: str, version: str, rows: int) -> None:
        self.batch_rows.observe((model, version), rows)

    # -- prediction log -----------------------------------------------------------------------

    def predlog_records_written(self, model: str, version: str, count: int) -> None:
        self._child(self.predlog_written, model, version).inc(count)

    def predlog_records_dropped(self, model: str, version: str, reason: str, count: int) -> None:
        self._child(self.predlog_dropped, model, version, reason).inc(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
