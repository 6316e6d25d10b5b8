"""Helpers of the drift tests: wine samples (optionally shifted), their prediction-log records, and
PSI computed independently of :mod:`mlops_drift.detectors`."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from mlops_platform import prediction_log as records

MODEL = "wine-classifier"
SHIFTED = ("alcohol", "proline", "color_intensity")  # scaled by 1.5 in the drifted data


def independent_psi(train_edges: list[float], expected: list[float], values: np.ndarray, eps: float = 1e-4) -> float:
    """PSI written out by hand: pandas bins open at both ends, shares floored at eps, summed in Python."""
    bins = [-math.inf, *train_edges[1:-1], math.inf]
    counts = pd.cut(pd.Series(values).dropna(), bins=bins, right=False).value_counts(sort=False).tolist()
    total = sum(counts)
    result = 0.0
    for count, e in zip(counts, expected, strict=True):
        a, e = max(count / total, eps), max(e, eps)
        result += (a - e) * math.log(a / e)
    return result


def wine_sample(rows: int, seed: int, shift: bool = False) -> pd.DataFrame:
    """A fresh sample of the training distribution (rows of the wine data with replacement, as the
    model sees them), optionally with some features scaled by 1.5."""
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame.columns = [str(c).replace("/", "_") for c in frame.columns]
    sample = frame.sample(rows, replace=True, random_state=seed).reset_index(drop=True)
    if shift:
        for column in SHIFTED:
            sample[column] = sample[column] * 1.5
    return sample


def log_table(sample: pd.DataFrame, names: list[str], when: datetime) -> Any:
    """Prediction-log records of ``sample`` at ``when`` (predictions: the true class, as text)."""
    n = len(sample)
    stamps = np.full(n, int(when.timestamp() * 1_000_000), dtype=np.int64)
    return records.build_table(
        model=MODEL, version="1", feature_names=names, classes=["0", "1", "2"], timestamps_us=stamps,
        request_ids=[f"r{i}" for i in range(n)], rows=np.zeros(n, dtype=np.int32),
        features=sample[names].to_numpy(dtype=np.float64), predictions=[str(t) for t in sample["target"]],
        probabilities=None,
    )
