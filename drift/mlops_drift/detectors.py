"""Drift statistics: pure functions over numpy arrays, no I/O.

PSI (population stability index) of a numeric feature is computed on the training bin edges of
the baseline, with the baseline's own binning rule (:func:`mlops_drift.baseline.bin_counts`)::

    PSI = sum over bins of (a - e) * ln(a / e)

where ``e`` is the baseline share and ``a`` the current share of non-missing values in the bin.
An empty bin would make the logarithm infinite, so both shares are floored at
:data:`PSI_EPSILON` (``max(share, 1e-4)``, not renormalised) before the sum: an empty bin then
contributes a large but finite term. The same rule gives the PSI of the predicted-class
distribution, with one "bin" per class.

KS: the baseline keeps quantile edges, not the training sample, so the statistic is the largest
distance between the current empirical CDF and the baseline CDF interpolated linearly between
its quantile edges; the p-value uses the two-sample Kolmogorov distribution with the effective
size ``n·m/(n+m)`` (``n`` training rows, ``m`` current rows), as scipy's ``ks_2samp`` does in
its asymptotic mode. With 10 bins the interpolated CDF is coarse, so large samples give small
p-values for small differences: the decision uses PSI, KS is reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mlops_drift.baseline import bin_counts

PSI_EPSILON = 1e-4
"""Floor of a bin's share before the PSI sum, so that an empty bin contributes a finite term."""

FloatArray = npt.NDArray[np.float64]


def shares(counts: Sequence[float] | npt.NDArray[np.generic]) -> FloatArray:
    """Counts as shares of their total (all zeros when the total is zero)."""
    values = np.asarray(counts, dtype=np.float64)
    total = values.sum()
    return values / total if total > 0 else np.zeros_like(values)


def psi(expected: Sequence[float] | FloatArray, actual: Sequence[float] | FloatArray,
        epsilon: float = PSI_EPSILON) -> float:
    """PSI of ``actual`` shares against ``expected`` shares (same bins, each summing to 1)."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), epsilon)
    a = np.maximum(np.asarray(actual, dtype=np.float64), epsilon)
    if e.shape != a.shape:
        raise ValueError(f"expected and actual have different bins: {e.shape} vs {a.shape}")
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class NumericComparison:
    """One numeric feature's current values compared with its baseline."""

    rows: int  # non-missing current values
    missing_rate: float
    below_range_rate: float  # share of non-missing values below the training minimum
    above_range_rate: float  # ... above the training maximum
    current_shares: FloatArray
    psi: float
    ks_statistic: float
    ks_pvalue: float
    mean: float
    std: float


def baseline_cdf(edges: Sequence[float], proportions: Sequence[float]) -> tuple[FloatArray, FloatArray]:
    """Points ``(x, F(x))`` of the baseline CDF, linear between the quantile edges."""
    x = np.asarray(edges, dtype=np.float64)
    cdf = np.concatenate([[0.0], np.cumsum(np.asarray(proportions, dtype=np.float64))])
    cdf = np.minimum(cdf / cdf[-1] if cdf[-1] > 0 else cdf, 1.0)
    return x, cdf


def ks_against_baseline(
    values: FloatArray, edges: Sequence[float], proportions: Sequence[float], baseline_rows: int
) -> tuple[float, float]:
    """KS statistic and p-value of non-missing ``values`` against the baseline CDF (module docstring)."""
    from scipy.stats import kstwo

    m = int(values.size)
    if m == 0 or baseline_rows <= 0 or len(edges) < 2:
        return float("nan"), float("nan")
    ordered = np.sort(values)
    x, cdf = baseline_cdf(edges, proportions)
    constant = x[0] == x[-1]  # a constant training feature: the CDF is a step at that value
    model = (ordered >= x[0]).astype(np.float64) if constant else np.interp(ordered, x, cdf, left=0.0, right=1.0)
    steps = np.arange(1, m + 1, dtype=np.float64) / m
    statistic = float(max(np.max(steps - model), np.max(model - (steps - 1.0 / m))))
    effective = round(baseline_rows * m / (baseline_rows + m))
    pvalue = float(kstwo.sf(statistic, max(effective, 1)))
    return statistic, min(max(pvalue, 0.0), 1.0)


def compare_numeric(
    values: FloatArray,
    edges: Sequence[float],
    proportions: Sequence[float],
    train_min: float,
    train_max: float,
    baseline_rows: int,
) -> NumericComparison:
    """Every statistic of one numeric feature; NaN in ``values`` means missing."""
    total = int(values.size)
    present = values[~np.isnan(values)]
    rows = int(present.size)
    counts = bin_counts(present, edges)
    current = shares(counts)
    ks_statistic, ks_pvalue = ks_against_baseline(present, edges, proportions, baseline_rows)
    return NumericComparison(
        rows=rows,
        missing_rate=(total - rows) / total if total else 0.0,
        below_range_rate=float(np.count_nonzero(present < train_min)) / rows if rows else 0.0,
        above_range_rate=float(np.count_nonzero(present > train_max)) / rows if rows else 0.0,
        current_shares=current,
        psi=psi(proportions, current) if rows else float("nan"),
        ks_statistic=ks_statistic,
        ks_pvalue=ks_pvalue,
        mean=float(present.mean()) if rows else float("nan"),
        std=float(present.std(ddof=1)) if rows > 1 else float("nan"),
    )


@dataclass(frozen=True)
class CategoricalComparison:
    """A categorical variable (the predicted class) compared with its baseline shares."""

    categories: list[str]
    counts: npt.NDArray[np.int64]
    current_shares: FloatArray
    unknown_rate: float  # share of values not among the baseline categories
    psi: float
    chi2_statistic: float
    chi2_pvalue: float


def count_categories(values: Sequence[str] | npt.NDArray[np.generic], categories: Sequence[str]) -> tuple[
    npt.NDArray[np.int64], int
]:
    """Counts per category in ``categories`` order, and the number of other values."""
    labels, counts = np.unique(np.asarray(values).astype(str), return_counts=True)
    by_label = dict(zip(labels.tolist(), counts.tolist(), strict=True))
    known = np.asarray([by_label.pop(c, 0) for c in categories], dtype=np.int64)
    return known, int(sum(by_label.values()))


def chi_square(counts: npt.NDArray[np.int64], expected_shares: Sequence[float] | FloatArray,
               epsilon: float = PSI_EPSILON) -> tuple[float, float]:
    """Pearson chi-square goodness of fit of ``counts`` to ``expected_shares`` (floored at epsilon)."""
    from scipy.stats import chisquare

    total = int(counts.sum())
    if total == 0 or len(counts) < 2:
        return float("nan"), float("nan")
    expected = shares(np.maximum(np.asarray(expected_shares, dtype=np.float64), epsilon)) * total
    result = chisquare(counts.astype(np.float64), expected)
    return float(result.statistic), float(result.pvalue)


def compare_categorical(values: Sequence[str] | npt.NDArray[np.generic], categories: Sequence[str],
                        expected_shares: Sequence[float]) -> CategoricalComparison:
    counts, unknown = count_categories(values, categories)
    total = int(counts.sum()) + unknown
    # Values outside the baseline categories are an extra bin the baseline never saw.
    current = shares(np.append(counts, unknown))
    baseline = np.append(np.asarray(expected_shares, dtype=np.float64), 0.0)
    if unknown:
        chi2, pvalue = chi_square(np.append(counts, unknown), baseline)
    else:  # no extra bin: its floored expectation alone would add epsilon * total to the statistic
        chi2, pvalue = chi_square(counts, expected_shares)
    return CategoricalComparison(
        categories=list(categories),
        counts=counts,
        current_shares=current[:-1],
        unknown_rate=unknown / total if total else 0.0,
        psi=psi(baseline, current) if total else float("nan"),
        chi2_statistic=chi2,
        chi2_pvalue=pvalue,
    )
