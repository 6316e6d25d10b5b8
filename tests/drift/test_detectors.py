"""Drift statistics against independent computations (pandas binning, scipy tests)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from support.drift import independent_psi

from mlops_drift import detectors
from mlops_drift.baseline import compute_baseline
from mlops_drift.html import render_html
from mlops_drift.report import Thresholds, build_report


def _baseline(rng: np.random.Generator) -> tuple[np.ndarray, object]:
    train = np.column_stack([rng.normal(10, 2, 5000), rng.exponential(3, 5000), rng.uniform(0, 1, 5000)])
    labels = rng.choice(["a", "b", "c"], size=1000, p=[0.5, 0.3, 0.2])
    return train, compute_baseline(train, ["x", "y", "z"], labels, ["a", "b", "c"])


def test_psi_agrees_with_an_independent_computation() -> None:
    rng = np.random.default_rng(7)
    train, baseline = _baseline(rng)
    for column, feature in enumerate(baseline.features):  # type: ignore[attr-defined]
        for values in (train[:, column], rng.permutation(train[:, column])[:900] * 1.5 + 0.3):
            counts = detectors.bin_counts(values, feature.bin_edges)
            ours = detectors.psi(feature.proportions, detectors.shares(counts))
            assert ours == pytest.approx(independent_psi(feature.bin_edges, feature.proportions, values), rel=1e-9)


def test_an_empty_bin_gives_a_large_but_finite_psi() -> None:
    value = detectors.psi([0.5, 0.5], [1.0, 0.0])
    assert math.isfinite(value) and value > 2


def test_ks_matches_scipy_against_the_interpolated_baseline_cdf() -> None:
    rng = np.random.default_rng(3)
    _, baseline = _baseline(rng)
    feature = baseline.features[0]  # type: ignore[attr-defined]
    values = rng.normal(11, 2, 2000)
    x, cdf = detectors.baseline_cdf(feature.bin_edges, feature.proportions)
    expected = stats.kstest(values, lambda v: np.interp(v, x, cdf, left=0.0, right=1.0))
    statistic, pvalue = detectors.ks_against_baseline(values, feature.bin_edges, feature.proportions, feature.count)
    assert statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert 0.0 <= pvalue < 1e-6  # a shift of half a standard deviation on 2000 rows


def test_chi_square_matches_scipy() -> None:
    counts = np.array([480, 330, 190])
    statistic, pvalue = detectors.chi_square(counts, [0.5, 0.3, 0.2])
    expected = stats.chisquare(counts, [500, 300, 200])
    assert (statistic, pvalue) == pytest.approx((expected.statistic, expected.pvalue))


def test_report_statuses() -> None:
    rng = np.random.default_rng(11)
    train, baseline = _baseline(rng)
    same = {name: rng.permutation(train[:, i])[:2000] for i, name in enumerate(["x", "y", "z"])}
    labels = rng.choice(["a", "b", "c"], size=2000, p=[0.5, 0.3, 0.2])
    kwargs = {"model": "m", "version": "1", "thresholds": Thresholds(), "min_rows": 100, "source": "test"}

    fresh = build_report(baseline, same, labels, **kwargs)  # type: ignore[arg-type]
    assert fresh.status == "ok" and fresh.max_feature_psi is not None and fresh.max_feature_psi < 0.1

    shifted = build_report(baseline, {**same, "x": same["x"] * 1.5}, labels, **kwargs)  # type: ignore[arg-type]
    assert shifted.status == "drift" and shifted.drifted_features == ["x"]

    skewed = np.where(rng.uniform(size=2000) < 0.6, "c", labels)
    by_prediction = build_report(baseline, same, skewed, **kwargs)  # type: ignore[arg-type]
    assert by_prediction.prediction is not None and by_prediction.prediction.status == "drift"
    assert by_prediction.status == "drift" and not by_prediction.drifted_features

    few = build_report(baseline, {k: v[:50] for k, v in same.items()}, labels[:50], **kwargs)  # type: ignore[arg-type]
    assert few.status == "insufficient_data" and few.features == []

    page = render_html(shifted)
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "<script" not in page and "src=" not in page


def test_out_of_range_and_missing_rates() -> None:
    rng = np.random.default_rng(5)
    _, baseline = _baseline(rng)
    feature = baseline.features[2]  # type: ignore[attr-defined]  # uniform 0..1
    values = np.array([-1.0, 0.5, 2.0, np.nan, 0.2])
    result = detectors.compare_numeric(values, feature.bin_edges, feature.proportions, feature.min, feature.max, 5000)
    assert result.missing_rate == pytest.approx(0.2)
    assert result.below_range_rate == pytest.approx(0.25) and result.above_range_rate == pytest.approx(0.25)


def test_thresholds_are_ordered() -> None:
    with pytest.raises(ValueError):
        Thresholds(psi_warn=0.3, psi_alert=0.2)
