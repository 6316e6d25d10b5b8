"""Baseline statistics: what the training data looked like, stored with each model version.

Training computes them (:func:`compute_baseline`) and logs them as the JSON artifact
:data:`BASELINE_ARTIFACT` of the version's run, with the version tag ``baseline`` pointing at it
(:func:`artifact_uri`); ``mlops baseline create`` attaches them the same way to a version that was
registered without (:func:`store_baseline`). The model server and the drift job read them back by
model name and version (:func:`read_baseline`). The binning rule (:func:`bin_counts`) lives here too, so that the
training proportions and the proportions drift compares them with are computed the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from mlops_platform.registry import Registry

BASELINE_ARTIFACT = "baseline/baseline.json"
"""Path of the baseline statistics inside the run that produced a model version."""


def artifact_uri(run_id: str) -> str:
    """The value of the version tag ``baseline`` (``registry.TAG_BASELINE``): where the statistics are."""
    return f"runs:/{run_id}/{BASELINE_ARTIFACT}"

SCHEMA_VERSION = 1
DEFAULT_BINS = 10


class NumericFeatureBaseline(BaseModel):
    name: str
    kind: Literal["numeric"] = "numeric"
    bin_edges: list[float] = Field(
        description="Quantile edges, first = training min, last = training max. Values below the "
        "second edge fall in the first bin and above the second-to-last in the last bin, so every "
        "value has a bin; out-of-range values are counted separately."
    )
    proportions: list[float] = Field(description="Share of non-missing training rows per bin.")
    mean: float
    std: float
    min: float
    max: float
    missing_rate: float
    count: int = Field(description="Non-missing training rows.")


class PredictionBaseline(BaseModel):
    classes: list[str]
    proportions: list[float] = Field(description="Share of holdout predictions per class.")
    rows: int


class MonitoringPolicy(BaseModel):
    """The model's own drift thresholds (its training config's ``drift:`` section); unset fields
    fall back to the drift job's defaults, and the job's flags override both."""

    psi_warn: float | None = Field(None, gt=0)
    psi_alert: float | None = Field(None, gt=0)
    min_rows: int | None = Field(None, ge=1)


class BaselineStatistics(BaseModel):
    schema_version: int = SCHEMA_VERSION
    feature_names: list[str]
    rows: int = Field(description="Training rows the feature statistics were computed on.")
    bins: int
    features: list[NumericFeatureBaseline]
    predictions: PredictionBaseline
    monitoring: MonitoringPolicy = Field(default_factory=MonitoringPolicy)

    def feature(self, name: str) -> NumericFeatureBaseline:
        for item in self.features:
            if item.name == name:
                return item
        raise KeyError(name)


def quantile_edges(values: npt.NDArray[np.float64], bins: int) -> list[float]:
    """Edges of (up to) ``bins`` quantile bins; repeated quantiles collapse, so a constant
    feature has a single bin."""
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return []
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size == 1:  # constant feature: one bin [v, v]
        edges = np.array([edges[0], edges[0]])
    return [float(e) for e in edges]


def bin_counts(values: npt.NDArray[np.float64], edges: Sequence[float]) -> npt.NDArray[np.int64]:
    """Count non-missing values per bin of ``edges`` (len(edges) - 1 bins, open at both ends)."""
    n_bins = max(len(edges) - 1, 1)
    finite = values[~np.isnan(values)]
    inner = np.asarray(edges[1:-1], dtype=np.float64)
    index = np.searchsorted(inner, finite, side="right")
    return np.bincount(index, minlength=n_bins).astype(np.int64)


def compute_baseline(
    features: npt.NDArray[np.float64],
    feature_names: Sequence[str],
    holdout_predictions: Sequence[object],
    classes: Sequence[object],
    bins: int = DEFAULT_BINS,
) -> BaselineStatistics:
    """Statistics of the training features and of the predicted classes on the holdout."""
    if features.ndim != 2 or features.shape[1] != len(feature_names):
        raise ValueError(
            f"expected a 2-D array with {len(feature_names)} columns, got shape {features.shape}"
        )
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    rows = features.shape[0]
    stats = []
    for column, name in enumerate(feature_names):
        values = features[:, column].astype(np.float64)
        missing = int(np.isnan(values).sum())
        present = values[~np.isnan(values)]
        if present.size == 0:
            raise ValueError(f"feature {name!r} has no non-missing value")
        edges = quantile_edges(values, bins)
        counts = bin_counts(values, edges)
        stats.append(
            NumericFeatureBaseline(
                name=str(name),
                bin_edges=edges,
                proportions=[float(c) / present.size for c in counts],
                mean=float(present.mean()),
                std=float(present.std(ddof=1)) if present.size > 1 else 0.0,
                min=float(present.min()),
                max=float(present.max()),
                missing_rate=missing / rows if rows else 0.0,
                count=int(present.size),
            )
        )
    predicted = [str(p) for p in holdout_predictions]
    class_names = [str(c) for c in classes]
    total = len(predicted)
    proportions = [predicted.count(c) / total if total else 0.0 for c in class_names]
    return BaselineStatistics(
        feature_names=[str(n) for n in feature_names],
        rows=rows,
        bins=bins,
        features=stats,
        predictions=PredictionBaseline(classes=class_names, proportions=proportions, rows=total),
    )


def read_baseline(registry: Registry, version: Any) -> BaselineStatistics | None:
    """The baseline statistics stored with a model ``version`` (an MLflow ModelVersion), or None."""
    from mlops_platform.errors import NotFoundError

    if not version.run_id:
        return None
    try:
        return BaselineStatistics.model_validate(registry.load_run_json(version.run_id, BASELINE_ARTIFACT))
    except NotFoundError:
        return None


def store_baseline(registry: Registry, version: Any, baseline: BaselineStatistics) -> str:
    """Attach ``baseline`` to a model ``version`` as training does: the artifact in the version's run,
    then the version tag naming it (so a reader never finds a tag without its artifact). Returns the URI."""
    from mlops_platform.registry_names import TAG_BASELINE

    registry.store_run_json(version.run_id, BASELINE_ARTIFACT, baseline.model_dump(mode="json"))
    uri = artifact_uri(version.run_id)
    registry.set_version_tags(version.name, version.version, {TAG_BASELINE: uri})
    return uri
