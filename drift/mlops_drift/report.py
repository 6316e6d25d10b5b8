"""The drift report: what one drift run found, as a pydantic model (written as JSON and HTML).

:func:`build_report` compares current feature values and predictions with a version's
:class:`~mlops_drift.baseline.BaselineStatistics`. A feature's status is ``drift`` when its PSI
reaches the alert threshold, ``warning`` when it reaches the warn threshold; the report's status
is the worst of its features and the prediction distribution, or ``insufficient_data`` (nothing
compared, no alarm) when there are fewer rows than the minimum.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field, model_validator

from mlops_drift import detectors
from mlops_drift.baseline import BaselineStatistics

REPORT_SCHEMA_VERSION = 1
DEFAULT_PSI_WARN = 0.1
DEFAULT_PSI_ALERT = 0.25

Status = Literal["ok", "warning", "drift", "insufficient_data"]
_ORDER: dict[str, int] = {"ok": 0, "warning": 1, "drift": 2}


class Thresholds(BaseModel):
    """PSI thresholds; the defaults (0.1 warn, 0.25 alert) are common practice for 10 bins."""

    psi_warn: float = Field(DEFAULT_PSI_WARN, gt=0)
    psi_alert: float = Field(DEFAULT_PSI_ALERT, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.psi_warn > self.psi_alert:
            raise ValueError(f"psi_warn ({self.psi_warn}) must not exceed psi_alert ({self.psi_alert})")
        return self

    def classify(self, value: float) -> Literal["ok", "warning", "drift"]:
        if math.isnan(value):
            return "ok"
        if value >= self.psi_alert:
            return "drift"
        return "warning" if value >= self.psi_warn else "ok"


def _finite(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else float(value)


class FeatureDrift(BaseModel):
    name: str
    status: Literal["ok", "warning", "drift"]
    psi: float | None
    ks_statistic: float | None
    ks_pvalue: float | None
    rows: int = Field(description="Non-missing current values.")
    missing_rate: float
    baseline_missing_rate: float
    out_of_range_rate: float = Field(description="Share of non-missing values outside the training min..max.")
    below_range_rate: float
    above_range_rate: float
    mean: float | None
    baseline_mean: float
    std: float | None
    baseline_std: float
    bin_edges: list[float]
    baseline_shares: list[float]
    current_shares: list[float]


class PredictionDrift(BaseModel):
    status: Literal["ok", "warning", "drift"]
    classes: list[str]
    psi: float | None
    chi2_statistic: float | None
    chi2_pvalue: float | None
    rows: int
    unknown_rate: float = Field(description="Share of predictions that are not a baseline class.")
    baseline_shares: list[float]
    current_shares: list[float]


class DriftReport(BaseModel):
    schema_version: int = REPORT_SCHEMA_VERSION
    model: str
    version: str
    status: Status
    rows: int = Field(description="Rows compared.")
    min_rows: int
    thresholds: Thresholds
    source: str = Field(description="Where the rows came from: a prediction-log window or an input URI.")
    since: datetime | None = None
    until: datetime | None = None
    files_read: int = 0
    files_skipped: list[str] = Field(default_factory=list, description="Unreadable files left out, with why.")
    generated_at: datetime
    max_feature_psi: float | None = None
    drifted_features: list[str] = Field(default_factory=list)
    warned_features: list[str] = Field(default_factory=list)
    features: list[FeatureDrift] = Field(default_factory=list)
    prediction: PredictionDrift | None = None
    notes: list[str] = Field(default_factory=list)


def build_report(
    baseline: BaselineStatistics,
    features: Mapping[str, npt.NDArray[np.float64]],
    predictions: npt.NDArray[np.generic] | None,
    *,
    model: str,
    version: str,
    thresholds: Thresholds,
    min_rows: int,
    source: str,
    since: datetime | None = None,
    until: datetime | None = None,
    files_read: int = 0,
    files_skipped: list[str] | None = None,
    now: datetime | None = None,
) -> DriftReport:
    """Compare ``features`` (one float64 array per baseline feature, NaN = missing) and
    ``predictions`` (labels, or None when the input has none) with ``baseline``."""
    missing = [name for name in baseline.feature_names if name not in features]
    if missing:
        raise ValueError(f"no values for baseline feature(s) {', '.join(missing)}")
    rows = len(next(iter(features.values()))) if features else 0
    report = DriftReport(
        model=model,
        version=version,
        status="insufficient_data",
        rows=rows,
        min_rows=min_rows,
        thresholds=thresholds,
        source=source,
        since=since,
        until=until,
        files_read=files_read,
        files_skipped=list(files_skipped or []),
        generated_at=now or datetime.now(UTC),
    )
    if rows < min_rows:
        report.notes.append(f"{rows} row(s) compared, fewer than the minimum of {min_rows}: no verdict")
        return report
    worst = 0
    for stats in baseline.features:
        result = detectors.compare_numeric(
            np.asarray(features[stats.name], dtype=np.float64),
            stats.bin_edges,
            stats.proportions,
            stats.min,
            stats.max,
            stats.count,
        )
        status = thresholds.classify(result.psi)
        worst = max(worst, _ORDER[status])
        report.features.append(
            FeatureDrift(
                name=stats.name,
                status=status,
                psi=_finite(result.psi),
                ks_statistic=_finite(result.ks_statistic),
                ks_pvalue=_finite(result.ks_pvalue),
                rows=result.rows,
                missing_rate=result.missing_rate,
                baseline_missing_rate=stats.missing_rate,
                out_of_range_rate=result.below_range_rate + result.above_range_rate,
                below_range_rate=result.below_range_rate,
                above_range_rate=result.above_range_rate,
                mean=_finite(result.mean),
                baseline_mean=stats.mean,
                std=_finite(result.std),
                baseline_std=stats.std,
                bin_edges=list(stats.bin_edges),
                baseline_shares=list(stats.proportions),
                current_shares=[float(v) for v in result.current_shares],
            )
        )
    psis = [f.psi for f in report.features if f.psi is not None]
    report.max_feature_psi = max(psis) if psis else None
    report.drifted_features = [f.name for f in report.features if f.status == "drift"]
    report.warned_features = [f.name for f in report.features if f.status == "warning"]
    if predictions is not None and baseline.predictions.classes:
        result_c = detectors.compare_categorical(
            predictions, baseline.predictions.classes, baseline.predictions.proportions
        )
        status = thresholds.classify(result_c.psi)
        worst = max(worst, _ORDER[status])
        report.prediction = PredictionDrift(
            status=status,
            classes=result_c.categories,
            psi=_finite(result_c.psi),
            chi2_statistic=_finite(result_c.chi2_statistic),
            chi2_pvalue=_finite(result_c.chi2_pvalue),
            rows=len(predictions),
            unknown_rate=result_c.unknown_rate,
            baseline_shares=list(baseline.predictions.proportions),
            current_shares=[float(v) for v in result_c.current_shares],
        )
    elif predictions is None:
        report.notes.append("the input has no prediction column: prediction drift not compared")
    report.status = ("ok", "warning", "drift")[worst]
    return report
