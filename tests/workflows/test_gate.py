"""The evaluation gate as a pure function."""

from __future__ import annotations

from mlops_workflows.training.config import GateConfig
from mlops_workflows.training.gate import evaluate_gate

GATE = GateConfig(
    min={"accuracy": 0.9}, max={"log_loss": 0.5}, tolerance={"accuracy": 0.02, "log_loss": 0.05}
)


def test_passes_when_every_threshold_is_met_and_no_production_exists() -> None:
    result = evaluate_gate(GATE, {"accuracy": 0.95, "log_loss": 0.2})
    assert result.passed
    assert any("regression check skipped" in c.message for c in result.checks)


def test_reports_which_threshold_failed_and_by_how_much() -> None:
    result = evaluate_gate(GATE, {"accuracy": 0.85, "log_loss": 0.7})
    assert not result.passed
    messages = [c.message for c in result.failures]
    assert messages == [
        "accuracy 0.8500 is below the minimum 0.9 by 0.0500",
        "log_loss 0.7000 is above the maximum 0.5 by 0.2000",
    ]


def test_regression_against_production_respects_direction_and_tolerance() -> None:
    production = {"accuracy": 0.97, "log_loss": 0.10}
    within = evaluate_gate(GATE, {"accuracy": 0.955, "log_loss": 0.14}, production, "4")
    assert within.passed, [c.message for c in within.failures]
    worse = evaluate_gate(GATE, {"accuracy": 0.94, "log_loss": 0.16}, production, "4")
    assert [c.message for c in worse.failures] == [
        "accuracy 0.9400 regresses from production v4 0.9700 by 0.0300, more than the tolerance 0.02",
        "log_loss 0.1600 regresses from production v4 0.1000 by 0.0600, more than the tolerance 0.05",
    ]
    better = evaluate_gate(GATE, {"accuracy": 0.99, "log_loss": 0.01}, production, "4")
    assert better.passed


def test_a_metric_the_model_could_not_produce_fails_instead_of_passing() -> None:
    result = evaluate_gate(GateConfig(min={"roc_auc_ovr": 0.9}), {"accuracy": 1.0})
    assert not result.passed
    assert "was not computed" in result.failures[0].message


def test_production_with_other_features_cannot_be_compared() -> None:
    result = evaluate_gate(GATE, {"accuracy": 0.95, "log_loss": 0.2}, {}, "2")
    assert not result.passed
    assert all("cannot compare" in c.message for c in result.failures)
