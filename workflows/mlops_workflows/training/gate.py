"""The evaluation gate: absolute thresholds, and no regression against production.

A pure function of the metrics, so every rule is tested without MLflow. A gate that names a
metric the model could not produce (e.g. ROC AUC without ``predict_proba``) fails that check
rather than passing silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlops_workflows.training.config import GateConfig
from mlops_workflows.training.metrics import LOWER_IS_BETTER


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    message: str


@dataclass(frozen=True)
class GateResult:
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]


def evaluate_gate(
    gate: GateConfig,
    metrics: dict[str, float],
    production: dict[str, float] | None = None,
    production_version: str | None = None,
) -> GateResult:
    checks: list[Check] = []
    for name, bound in gate.min.items():
        checks.append(_bound_check(name, metrics.get(name), bound, at_least=True))
    for name, bound in gate.max.items():
        checks.append(_bound_check(name, metrics.get(name), bound, at_least=False))
    if production is None:
        if gate.tolerance:
            checks.append(
                Check("regression", True, "no version holds 'production': regression check skipped")
            )
    elif not production and gate.tolerance:
        checks.append(
            Check(
                "regression",
                False,
                f"production v{production_version} expects other features, so it cannot be evaluated on this "
                "holdout; cannot compare",
            )
        )
    else:
        for name, tolerance in gate.tolerance.items():
            checks.append(
                _regression_check(
                    name, metrics.get(name), production.get(name), tolerance, production_version or "?"
                )
            )
    return GateResult(checks)


def _bound_check(name: str, value: float | None, bound: float, *, at_least: bool) -> Check:
    label = f"{name} {'>=' if at_least else '<='} {bound:g}"
    if value is None:
        return Check(label, False, f"{name} was not computed for this model, so '{label}' cannot pass")
    ok = value >= bound if at_least else value <= bound
    if ok:
        return Check(label, True, f"{name} {value:.4f} meets {label}")
    gap = bound - value if at_least else value - bound
    word = "below the minimum" if at_least else "above the maximum"
    return Check(label, False, f"{name} {value:.4f} is {word} {bound:g} by {gap:.4f}")


def _regression_check(
    name: str, value: float | None, reference: float | None, tolerance: float, version: str
) -> Check:
    label = f"{name} regression <= {tolerance:g} vs production v{version}"
    if value is None or reference is None:
        return Check(label, False, f"{name} missing for the new or the production version; cannot compare")
    regression = value - reference if name in LOWER_IS_BETTER else reference - value
    if regression <= tolerance:
        return Check(
            label, True, f"{name} {value:.4f} vs production v{version} {reference:.4f} (within {tolerance:g})"
        )
    return Check(
        label,
        False,
        f"{name} {value:.4f} regresses from production v{version} {reference:.4f} by {regression:.4f}, "
        f"more than the tolerance {tolerance:g}",
    )
