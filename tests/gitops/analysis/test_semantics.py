"""Argo Rollouts semantics of mlops_gitops.analysis, with a fake Prometheus."""

from __future__ import annotations

import math

import pytest

from mlops_gitops.analysis import Metric, PrometheusClient, run_analysis
from mlops_gitops.analysis.expr import ExprError, evaluate
from mlops_gitops.analysis.runner import resolve_metrics
from mlops_platform.durations import parse_go_duration as parse_duration

GUARDED = "len(result) > 0 && !isNaN(result[0]) && result[0] >= 0.95"


@pytest.mark.parametrize(("result", "expected"), [([0.99], True), ([0.5], False), ([], False), ([math.nan], False)])
def test_guarded_condition(result: list[float], expected: bool) -> None:
    assert evaluate(GUARDED, result) is expected


def test_unguarded_index_of_empty_vector_is_an_error() -> None:
    with pytest.raises(ExprError):
        evaluate("result[0] >= 0.95", [])


class FakePrometheus(PrometheusClient):
    def __init__(self, values: list[float | list[float]]) -> None:
        super().__init__()
        self.values = values

    def query(self, address: str, expr: str) -> float | list[float]:
        return self.values.pop(0) if len(self.values) > 1 else self.values[0]


def _metric(**kwargs: object) -> Metric:
    base: dict[str, object] = {"name": "m", "query": "q", "address": "http://p", "success_condition": GUARDED,
                               "failure_condition": "len(result) > 0 && result[0] < 0.95",
                               "interval_s": 0.0, "count": 3, "failure_limit": 1, "inconclusive_limit": 1}
    base.update(kwargs)
    return Metric(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "phase"),
    [
        ([[0.99]], "Successful"),
        ([[0.5], [0.99], [0.99]], "Successful"),  # one failure is within failureLimit 1
        ([[0.5], [0.5]], "Failed"),
        ([[], [0.99], [0.99]], "Successful"),  # one inconclusive is within inconclusiveLimit 1
        ([[]], "Inconclusive"),
        ([[math.nan]], "Inconclusive"),
    ],
)
def test_metric_phases(values: list[float | list[float]], phase: str) -> None:
    result = run_analysis([_metric()], FakePrometheus(values), sleep=lambda _: None)
    assert result.phase == phase


def test_errors_beyond_consecutive_error_limit() -> None:
    metric = _metric(success_condition="result[0] > 1", failure_condition="", consecutive_error_limit=2)
    result = run_analysis([metric], FakePrometheus([[]]), sleep=lambda _: None)
    assert result.phase == "Error"
    assert result.metrics[0].error == 3


def test_a_failed_metric_terminates_the_others_as_argo_does() -> None:
    failing = _metric(name="a", failure_limit=0)
    other = _metric(name="b", count=10)
    result = run_analysis([failing, other], FakePrometheus([[0.5]]), sleep=lambda _: None)
    assert [m.phase for m in result.metrics] == ["Failed", "Successful"]
    assert result.phase == "Failed"


def test_args_are_substituted_and_required() -> None:
    template = {"kind": "AnalysisTemplate", "spec": {
        "args": [{"name": "x"}, {"name": "address", "value": "http://prom:9090"}],
        "metrics": [{"name": "m", "interval": "{{args.x}}s", "count": "{{ args.x }}",
                     "provider": {"prometheus": {"address": "{{args.address}}", "query": "up{a=\"{{args.x}}\"}"}}}]}}
    (metric,) = resolve_metrics([template], {"x": "2"})
    assert (metric.interval_s, metric.count, metric.query, metric.address) == (2.0, 2, 'up{a="2"}',
                                                                              "http://prom:9090")
    with pytest.raises(Exception, match="args without a value: x"):
        resolve_metrics([template], {})


def test_go_durations() -> None:
    assert parse_duration("1m30s") == 90
    assert parse_duration("500ms") == 0.5
