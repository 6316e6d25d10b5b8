"""Load templates, resolve args, measure against Prometheus and assess like Argo Rollouts."""

from __future__ import annotations

import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from mlops_gitops.analysis.expr import ExprError, evaluate
from mlops_platform.durations import parse_go_duration
from mlops_platform.errors import ConfigError

Phase = Literal["Pending", "Running", "Successful", "Failed", "Inconclusive", "Error"]
COMPLETED: frozenset[str] = frozenset({"Successful", "Failed", "Inconclusive", "Error"})
_ORDER: tuple[str, ...] = ("Pending", "Running", "Successful", "Inconclusive", "Error", "Failed")
DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4
DEFAULT_ERROR_RETRY_INTERVAL_S = 10.0
TEMPLATE_KINDS = ("AnalysisTemplate", "ClusterAnalysisTemplate")
_ARG = re.compile(r"\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}")


@dataclass(frozen=True)
class Metric:
    """One resolved metric of a template (args substituted)."""

    name: str
    query: str
    address: str
    success_condition: str = ""
    failure_condition: str = ""
    interval_s: float | None = None
    initial_delay_s: float = 0.0
    count: int | None = None
    failure_limit: int = 0
    inconclusive_limit: int = 0
    consecutive_error_limit: int = DEFAULT_CONSECUTIVE_ERROR_LIMIT

    @property
    def effective_count(self) -> int | None:
        if self.count is None and self.interval_s is None:
            return 1
        return self.count


@dataclass
class Measurement:
    phase: Phase
    value: str = ""
    message: str = ""
    finished_at: float = 0.0


@dataclass
class MetricResult:
    name: str
    phase: Phase = "Pending"
    measurements: list[Measurement] = field(default_factory=list)
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0
    consecutive_error: int = 0
    count: int = 0
    message: str = ""

    def record(self, measurement: Measurement) -> None:
        self.measurements.append(measurement)
        if measurement.phase == "Error":
            self.error += 1
            self.consecutive_error += 1
            return
        self.count += 1
        self.consecutive_error = 0
        if measurement.phase == "Successful":
            self.successful += 1
        elif measurement.phase == "Failed":
            self.failed += 1
        else:
            self.inconclusive += 1


@dataclass
class AnalysisResult:
    phase: Phase
    metrics: list[MetricResult]

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "metrics": [
                {"name": m.name, "phase": m.phase, "message": m.message, "count": m.count,
                 "successful": m.successful, "failed": m.failed, "inconclusive": m.inconclusive,
                 "error": m.error,
                 "measurements": [{"phase": x.phase, "value": x.value, "message": x.message}
                                  for x in m.measurements]}
                for m in self.metrics
            ],
        }


def worse(a: Phase, b: Phase) -> Phase:
    return b if _ORDER.index(b) > _ORDER.index(a) else a


# -- templates and args ------------------------------------------------------------------------------


def load_templates(paths: Iterable[Path], names: Sequence[str] = ()) -> list[dict[str, Any]]:
    """AnalysisTemplates (and ClusterAnalysisTemplates) from YAML files, optionally by name."""
    found: list[dict[str, Any]] = []
    for path in paths:
        try:
            docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
        found += [d for d in docs if isinstance(d, dict) and d.get("kind") in TEMPLATE_KINDS]
    if names:
        by_name = {str((t.get("metadata") or {}).get("name")): t for t in found}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ConfigError(f"no AnalysisTemplate named {', '.join(missing)} (have: {', '.join(sorted(by_name))})")
        found = [by_name[n] for n in names]
    if not found:
        raise ConfigError("no AnalysisTemplate found")
    return found


def _substitute(value: Any, args: dict[str, str]) -> Any:
    if isinstance(value, str):
        def one(match: re.Match[str]) -> str:
            if match.group(1) not in args:
                raise ConfigError(f"args.{match.group(1)} was not resolved")
            return args[match.group(1)]
        return _ARG.sub(one, value)
    if isinstance(value, list):
        return [_substitute(v, args) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, args) for k, v in value.items()}
    return value


def substitute_args(value: Any, args: dict[str, str]) -> Any:
    """``{{args.NAME}}`` replaced in every string of ``value`` (e.g. a job provider's Job spec)."""
    return _substitute(value, args)


def _int(value: Any, what: str, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what}: expected an integer, got {value!r}") from exc


def resolve_metrics(templates: Sequence[dict[str, Any]], args: dict[str, str],
                    prometheus_url: str | None = None) -> list[Metric]:
    """Merge the templates' args with ``args`` (given values win), check every arg has a value,
    substitute them and return the metrics. ``prometheus_url`` overrides every metric's address."""
    merged: dict[str, str | None] = {}
    for template in templates:
        for arg in (template.get("spec") or {}).get("args") or []:
            name = str(arg.get("name"))
            default = arg.get("value")
            previous = merged.get(name)
            if previous is not None and default is not None and previous != str(default):
                raise ConfigError(f"arg {name!r} has different default values in the templates")
            merged[name] = str(default) if default is not None else previous
    for name, value in args.items():
        if name in merged:
            merged[name] = value
    unresolved = sorted(n for n, v in merged.items() if v is None)
    if unresolved:
        raise ConfigError(f"args without a value: {', '.join(unresolved)} (give them with --arg NAME=VALUE)")
    values = {k: v for k, v in merged.items() if v is not None}
    metrics: list[Metric] = []
    for template in templates:
        for raw in (template.get("spec") or {}).get("metrics") or []:
            spec = _substitute(raw, values)
            name = str(spec.get("name"))
            prometheus = (spec.get("provider") or {}).get("prometheus")
            if not isinstance(prometheus, dict) or not prometheus.get("query"):
                raise ConfigError(f"metric {name!r}: only the prometheus provider is supported")
            interval = spec.get("interval")
            metric = Metric(
                name=name,
                query=str(prometheus["query"]),
                address=(prometheus_url or str(prometheus.get("address") or "")).rstrip("/"),
                success_condition=str(spec.get("successCondition") or ""),
                failure_condition=str(spec.get("failureCondition") or ""),
                interval_s=parse_go_duration(str(interval)) if interval else None,
                initial_delay_s=parse_go_duration(str(spec["initialDelay"])) if spec.get("initialDelay") else 0.0,
                count=_int(spec.get("count"), f"{name}.count", None),
                failure_limit=_int(spec.get("failureLimit"), f"{name}.failureLimit", 0) or 0,
                inconclusive_limit=_int(spec.get("inconclusiveLimit"), f"{name}.inconclusiveLimit", 0) or 0,
                consecutive_error_limit=_int(spec.get("consecutiveErrorLimit"), f"{name}.consecutiveErrorLimit",
                                             DEFAULT_CONSECUTIVE_ERROR_LIMIT) or 0,
            )
            if not metric.address:
                raise ConfigError(f"metric {name!r}: no Prometheus address (set one or pass --prometheus)")
            if metric.effective_count is None:
                raise ConfigError(f"metric {name!r} has an interval but no count and would run forever")
            metrics.append(metric)
    if len({m.name for m in metrics}) != len(metrics):
        raise ConfigError("metric names must be unique across the templates")
    return metrics


# -- measuring --------------------------------------------------------------------------------------


class QueryError(Exception):
    """Prometheus could not answer the query."""


class PrometheusClient:
    """Instant queries against the Prometheus HTTP API (``/api/v1/query``)."""

    def __init__(self, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s

    def query(self, address: str, expr: str) -> float | list[float]:
        url = f"{address}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": f"{time.time():.3f}"})
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise QueryError(f"Prometheus answered {exc.code}: {detail[:300]}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise QueryError(f"cannot query Prometheus at {address}: {exc}") from exc
        if body.get("status") != "success":
            raise QueryError(f"Prometheus error: {body.get('error', body)}")
        data = body.get("data") or {}
        if data.get("resultType") == "vector":
            return [float(sample["value"][1]) for sample in data.get("result") or []]
        if data.get("resultType") == "scalar":
            return float(data["result"][1])
        raise QueryError(f"Prometheus metric type not supported: {data.get('resultType')}")


def _format(value: float | list[float]) -> str:
    def one(v: float) -> str:
        return "NaN" if math.isnan(v) else ("+Inf" if v == math.inf else ("-Inf" if v == -math.inf else f"{v:g}"))
    return "[" + ",".join(one(v) for v in value) + "]" if isinstance(value, list) else one(value)


def assess_measurement(metric: Metric, value: float | list[float]) -> Phase:
    """Argo Rollouts' EvaluateResult: Successful, Failed or Inconclusive; raises ExprError."""
    success = evaluate(metric.success_condition, value) if metric.success_condition else False
    failure = evaluate(metric.failure_condition, value) if metric.failure_condition else False
    if not metric.success_condition and not metric.failure_condition:
        return "Successful"
    if metric.success_condition and not metric.failure_condition:
        failure = not success
    elif metric.failure_condition and not metric.success_condition:
        success = not failure
    if failure:
        return "Failed"
    return "Successful" if success else "Inconclusive"


def measure(metric: Metric, client: PrometheusClient, now: Callable[[], float]) -> Measurement:
    try:
        value = client.query(metric.address, metric.query)
    except QueryError as exc:
        return Measurement("Error", message=str(exc), finished_at=now())
    try:
        return Measurement(assess_measurement(metric, value), value=_format(value), finished_at=now())
    except ExprError as exc:
        return Measurement("Error", value=_format(value), message=str(exc), finished_at=now())


def assess_metric(metric: Metric, result: MetricResult, terminating: bool) -> Phase:
    """Argo Rollouts' assessMetricStatus."""
    if result.phase in COMPLETED:
        return result.phase
    if not result.measurements:
        return "Successful" if terminating else "Pending"
    if result.failed > metric.failure_limit:
        result.message = f"failed ({result.failed}) > failureLimit ({metric.failure_limit})"
        return "Failed"
    if result.inconclusive > metric.inconclusive_limit:
        result.message = f"inconclusive ({result.inconclusive}) > inconclusiveLimit ({metric.inconclusive_limit})"
        return "Inconclusive"
    if result.consecutive_error > metric.consecutive_error_limit:
        result.message = (f"consecutiveErrors ({result.consecutive_error}) > consecutiveErrorLimit "
                          f"({metric.consecutive_error_limit}): {result.measurements[-1].message}")
        return "Error"
    count = metric.effective_count
    if count is not None and result.count >= count:
        result.message = f"count ({count}) reached"
        return "Successful"
    if terminating:
        result.message = "run terminated"
        return "Successful"
    return "Running"


def run_analysis(
    metrics: Sequence[Metric],
    client: PrometheusClient | None = None,
    *,
    terminate_on_failure: bool = True,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_measurement: Callable[[Metric, Measurement], None] | None = None,
) -> AnalysisResult:
    """Measure every metric on its schedule until all complete; the run's phase is the worst.

    As in Argo Rollouts, a metric that completes Failed, Error or Inconclusive terminates the
    others (``terminate_on_failure=False`` measures every metric to its own end instead).
    """
    client = client or PrometheusClient()
    start = clock()
    results = {m.name: MetricResult(m.name) for m in metrics}
    due = {m.name: start + m.initial_delay_s for m in metrics}
    while True:
        now = clock()
        for metric in metrics:
            result = results[metric.name]
            if result.phase in COMPLETED or due[metric.name] > now:
                continue
            measurement = measure(metric, client, clock)
            result.record(measurement)
            if on_measurement is not None:
                on_measurement(metric, measurement)
            result.phase = assess_metric(metric, result, terminating=False)
            if measurement.phase == "Error" and metric.interval_s is None:
                due[metric.name] = measurement.finished_at + DEFAULT_ERROR_RETRY_INTERVAL_S
            else:
                due[metric.name] = measurement.finished_at + (metric.interval_s or 0.0)
        terminating = terminate_on_failure and any(
            r.phase in ("Failed", "Error", "Inconclusive") for r in results.values())
        if terminating:
            for metric in metrics:
                results[metric.name].phase = assess_metric(metric, results[metric.name], terminating=True)
        pending = [m for m in metrics if results[m.name].phase not in COMPLETED]
        if not pending:
            break
        sleep(max(0.0, min(due[m.name] for m in pending) - clock()))
    phase: Phase = "Successful"
    for result in results.values():
        phase = worse(phase, result.phase)
    return AnalysisResult(phase, [results[m.name] for m in metrics])
