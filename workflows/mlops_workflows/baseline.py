"""`mlops baseline create MODEL --version N --data FILE`: attach baseline statistics to a version.

A version registered by hand (a notebook's ``log_model``, not ``mlops train``) has no baseline, so
the model server serves it without drift monitoring. This command computes the statistics training
stores (:func:`mlops_drift.baseline.compute_baseline`: per-feature quantile bins of ``FILE``, and the
class shares of the model's own predictions on it) and attaches them exactly as training does
(:func:`mlops_drift.baseline.store_baseline`: the artifact in the version's run, then the version
tag). The features are the ones the model server reads requests with (the same loader,
:func:`mlops_serving.runtime.load_model`), so the drift job compares like with like.

``FILE`` is CSV or Parquet, local or ``s3://``. A model with named features takes its columns by
name (other columns, e.g. a target, are ignored); a model with positional features (a tensor
signature) takes every column of the file, in order. Nothing is written unless every row is
finite and the model predicted them all.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from mlops_platform.errors import InvalidInputError

if TYPE_CHECKING:
    from mlops_platform.registry import Registry
    from mlops_platform.settings import PlatformSettings


@dataclass(frozen=True)
class BaselineCreated:
    model: str
    version: str
    rows: int
    features: list[str]
    classes: list[str]
    uri: str
    replaced: bool


def create_baseline(registry: Registry, settings: PlatformSettings, model_name: str, version: int, data_uri: str,
                    *, bins: int | None, replace: bool) -> BaselineCreated:
    from mlops_drift.baseline import DEFAULT_BINS, compute_baseline, read_baseline, store_baseline
    from mlops_serving.errors import ServingError
    from mlops_serving.runtime import load_model
    from mlops_serving.settings import ModelRef

    bins = DEFAULT_BINS if bins is None else bins
    if bins < 2:
        raise InvalidInputError(f"--bins must be at least 2, got {bins} (default {DEFAULT_BINS})")
    found = registry.get_version(model_name, version=version)
    if not found.run_id:
        raise InvalidInputError(f"{model_name} v{version} has no run to store statistics in; register it from a "
                                "run (mlflow.<flavor>.log_model inside mlflow.start_run)")
    existing = read_baseline(registry, found)
    if existing is not None and not replace:
        raise InvalidInputError(f"{model_name} v{version} already has baseline statistics ({existing.rows} rows); "
                                "pass --replace to overwrite them")
    frame = read_frame(data_uri, settings)
    model = load_model(registry, ModelRef(model_name, version))
    features = _features(frame, model, data_uri)
    try:
        model.input_schema.check(features)
    except ServingError as exc:
        raise InvalidInputError(f"{data_uri}: {exc.message}") from None
    try:
        labels = model.predict(features).labels
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise InvalidInputError(f"{data_uri}: the model cannot predict these rows: {first}") from None
    classes = model.class_names or []
    baseline = compute_baseline(features, model.feature_names, labels.tolist() if labels.ndim == 1 else [], classes,
                                bins=bins)
    if existing is not None:  # keep the model's own drift thresholds
        baseline = baseline.model_copy(update={"monitoring": existing.monitoring})
    uri = store_baseline(registry, found, baseline)
    return BaselineCreated(model_name, str(found.version), len(features), list(model.feature_names), classes, uri,
                           existing is not None)


def read_frame(uri: str, settings: PlatformSettings) -> Any:
    """The whole table of a CSV or Parquet file (exit 2 naming the problem)."""
    import pandas as pd

    from mlops_platform import storage
    from mlops_platform.tables import format_of

    kind = format_of(PurePosixPath(uri).name)
    if kind is None:
        raise InvalidInputError(f"{uri}: expected a .csv, .csv.gz, .parquet or .pq file")
    try:
        data = storage.read_bytes(uri, settings)
    except FileNotFoundError:
        raise InvalidInputError(f"{uri}: no such file") from None
    try:
        if kind == "parquet":
            frame = pd.read_parquet(io.BytesIO(data))
        else:
            frame = pd.read_csv(io.BytesIO(data), compression="gzip" if uri.endswith(".gz") else None)
    except Exception as exc:  # pandas/pyarrow raise many kinds for a broken file
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise InvalidInputError(f"{uri}: cannot read it as {kind}: {first}") from None
    if frame.empty:
        raise InvalidInputError(f"{uri}: no rows")
    return frame


def _features(frame: Any, model: Any, uri: str) -> npt.NDArray[np.float64]:
    import pandas as pd

    schema = model.input_schema
    names = list(model.feature_names)
    columns = [str(c) for c in frame.columns]
    if not names:
        raise InvalidInputError(f"{model.name} v{model.version} has no signature and its features are unknown "
                                "(neither the estimator nor a baseline names them); log it with a signature")
    if schema.names_known:
        missing = [n for n in names if n not in columns]
        if missing:
            shown = ", ".join(missing[:10]) + (f", ... ({len(missing) - 10} more)" if len(missing) > 10 else "")
            raise InvalidInputError(f"{uri}: missing feature column(s) {shown}")
        selected = frame[[frame.columns[columns.index(n)] for n in names]]
    else:
        if len(columns) != len(names):
            raise InvalidInputError(f"{uri}: {len(columns)} columns; {model.name} v{model.version} takes "
                                    f"{len(names)} unnamed features, read in column order (drop the other columns)")
        selected = frame
    for column in selected.columns:
        if not pd.api.types.is_numeric_dtype(selected[column]) or pd.api.types.is_bool_dtype(selected[column]):
            raise InvalidInputError(f"{uri}: column {column} is not numeric ({selected[column].dtype})")
    values: npt.NDArray[np.float64] = selected.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        raise InvalidInputError(f"{uri}: row {i + 1}, column {selected.columns[j]}: {values[i, j]} is not a finite "
                                "number (the statistics need complete rows)")
    return values
