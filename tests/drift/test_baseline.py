"""Baseline statistics: checked against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest

from mlops_drift.baseline import BaselineStatistics, bin_counts, compute_baseline, quantile_edges


def test_statistics_match_an_independent_computation() -> None:
    rng = np.random.default_rng(7)
    features = np.column_stack([rng.normal(5, 2, 1000), rng.exponential(1.0, 1000)])
    features[::50, 1] = np.nan  # 2% missing in the second feature
    baseline = compute_baseline(features, ["a", "b"], ["x", "y", "y", "z"], ["x", "y", "z"], bins=10)

    a = baseline.feature("a")
    assert a.mean == pytest.approx(features[:, 0].mean())
    assert a.std == pytest.approx(features[:, 0].std(ddof=1))
    assert (a.min, a.max) == (features[:, 0].min(), features[:, 0].max())
    assert a.missing_rate == 0.0
    assert len(a.bin_edges) == 11 and len(a.proportions) == 10
    # quantile bins hold ~10% each
    assert sum(a.proportions) == pytest.approx(1.0)
    assert all(abs(p - 0.1) < 0.011 for p in a.proportions)

    b = baseline.feature("b")
    present = features[~np.isnan(features[:, 1]), 1]
    assert b.missing_rate == pytest.approx(20 / 1000)
    assert b.count == present.size
    assert b.mean == pytest.approx(present.mean())
    # recount bins by hand: a value falls in bin i when edges[i] <= v < edges[i+1] (inner edges only)
    edges = b.bin_edges
    manual = [0] * (len(edges) - 1)
    for v in present:
        i = 0
        while i < len(edges) - 2 and v >= edges[i + 1]:
            i += 1
        manual[i] += 1
    assert b.proportions == pytest.approx([m / present.size for m in manual])

    assert baseline.predictions.classes == ["x", "y", "z"]
    assert baseline.predictions.proportions == [0.25, 0.5, 0.25]


def test_values_outside_the_training_range_fall_in_the_outer_bins() -> None:
    edges = [0.0, 1.0, 2.0, 3.0]
    counts = bin_counts(np.array([-5.0, 0.5, 1.0, 2.5, 99.0, np.nan]), edges)
    assert counts.tolist() == [2, 1, 2]


def test_constant_feature_gets_one_bin() -> None:
    edges = quantile_edges(np.full(20, 3.0), 10)
    assert edges == [3.0, 3.0]
    assert bin_counts(np.full(5, 3.0), edges).tolist() == [5]


def test_round_trips_through_json() -> None:
    baseline = compute_baseline(np.arange(20.0).reshape(10, 2), ["p", "q"], [1, 0], [0, 1])
    assert BaselineStatistics.model_validate_json(baseline.model_dump_json()) == baseline


@pytest.mark.parametrize(
    ("features", "names", "message"),
    [
        (np.zeros((3, 2)), ["only-one"], "2-D array with 1 columns"),
        (np.full((3, 1), np.nan), ["empty"], "no non-missing value"),
    ],
)
def test_rejects_bad_input(features: np.ndarray, names: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_baseline(features, names, [], [])
