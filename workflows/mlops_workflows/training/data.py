"""Loading and validating a training dataset: a bundled scikit-learn dataset, a CSV/Parquet file,
or the newest labelled snapshot under a configured location (``MLOPS_TRAIN_SNAPSHOTS_URI``)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlops_platform.errors import InvalidInputError
from mlops_platform.settings import PlatformSettings
from mlops_platform.storage import read_bytes
from mlops_workflows.training.config import DatasetConfig

TARGET_COLUMN = "target"  # name of the label column of bundled datasets


@dataclass(frozen=True)
class Dataset:
    frame: pd.DataFrame  # features and target, as logged to MLflow
    feature_names: list[str]
    target: str
    source: str  # where it came from: sklearn.datasets.load_<name>, a path or an s3:// URI
    name: str

    @property
    def features(self) -> npt.NDArray[np.float64]:
        return self.frame[self.feature_names].to_numpy(dtype=np.float64)

    @property
    def labels(self) -> npt.NDArray[np.generic]:
        return self.frame[self.target].to_numpy()


def newest_snapshot(location: str, settings: PlatformSettings) -> tuple[str, list[tuple[str, str]]] | None:
    """The newest snapshot under ``location``: its URI and its (file URI, format) pairs, or None.

    A snapshot is a direct child of ``location``, a CSV/Parquet file or a folder of them; the newest
    is the one with the greatest name (name snapshots by date, e.g. ``2026-12-01/`` or
    ``2026-12-01.parquet``). Nothing there (no folder, no data file) is None.
    """
    from mlops_platform.tables import list_inputs

    root = location.rstrip("/")
    try:
        _, files = list_inputs(root, settings)
    except InvalidInputError:
        return None
    prefix = root[len("s3://") :] if root.startswith("s3://") else root
    children: dict[str, list[tuple[str, str]]] = {}
    for file in files:
        relative = file.path[len(prefix) :].lstrip("/")
        children.setdefault(relative.split("/", 1)[0], []).append((file.uri, file.format))
    newest = max(children)
    return f"{root}/{newest}", sorted(children[newest])


def load_dataset(config: DatasetConfig, settings: PlatformSettings, snapshot: str | None = None) -> Dataset:
    """The dataset of ``config``, or, with ``snapshot`` (a folder or s3:// prefix of snapshots),
    the newest snapshot there when there is one (target and features as the config names them)."""
    found = newest_snapshot(snapshot, settings) if snapshot else None
    if found is not None:
        uri, files = found
        frames = [_read_file(file, kind, settings) for file, kind in files]
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        target = config.target or TARGET_COLUMN
        feature_names = _check(frame, target, config.features, uri)
        name = PurePosixPath(uri).stem or "snapshot"
        return Dataset(frame[[*feature_names, target]].reset_index(drop=True), feature_names, target, uri, name)
    if config.sklearn is not None:
        frame, name, source = _load_bundled(config.sklearn)
        target = TARGET_COLUMN
    else:
        assert config.uri is not None and config.target is not None  # the config validator ensures it
        frame = _read_file(config.uri, config.format, settings)
        name = PurePosixPath(config.uri).stem or "dataset"
        source = config.uri
        target = config.target
    feature_names = _check(frame, target, config.features, source)
    columns = [*feature_names, target]
    return Dataset(frame[columns].reset_index(drop=True), feature_names, target, source, name)


def _load_bundled(name: str) -> tuple[pd.DataFrame, str, str]:
    from sklearn import datasets

    loader = getattr(datasets, f"load_{name}")
    bunch = loader(as_frame=True)
    frame = bunch.frame.copy()
    frame.columns = [str(c).replace("/", "_") for c in frame.columns]  # "od280/od315_..." in wine
    return frame, name, f"sklearn.datasets.load_{name}"


def _read_file(uri: str, fmt: str | None, settings: PlatformSettings) -> pd.DataFrame:
    suffix = PurePosixPath(uri).suffix.lower()
    kind = fmt or {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(suffix)
    if kind is None:
        raise InvalidInputError(
            f"{uri}: cannot tell the format from {suffix or 'no suffix'!r}; set dataset.format"
        )
    data = read_bytes(uri, settings)
    if not data:
        raise InvalidInputError(f"{uri}: the file is empty")
    try:
        if kind == "csv":
            return pd.read_csv(io.BytesIO(data))
        return pd.read_parquet(io.BytesIO(data))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise InvalidInputError(f"{uri}: not a readable {kind} file ({exc})") from exc
    except Exception as exc:  # pyarrow raises its own error types for corrupt Parquet
        if type(exc).__module__.startswith("pyarrow"):
            raise InvalidInputError(f"{uri}: not a readable {kind} file ({exc})") from exc
        raise


def _check(frame: pd.DataFrame, target: str, features: list[str] | None, source: str) -> list[str]:
    if target not in frame.columns:
        raise InvalidInputError(
            f"{source}: target column {target!r} not found; columns are: {', '.join(map(str, frame.columns))}"
        )
    if features is None:
        features = [str(c) for c in frame.columns if c != target]
    else:
        missing = [c for c in features if c not in frame.columns]
        if missing:
            raise InvalidInputError(f"{source}: feature columns not found: {', '.join(missing)}")
        if target in features:
            raise InvalidInputError(f"{source}: the target column {target!r} is also listed as a feature")
    if not features:
        raise InvalidInputError(f"{source}: no feature columns besides the target {target!r}")
    if frame.empty:
        raise InvalidInputError(f"{source}: the dataset has no rows")
    non_numeric = [
        f"{c} ({frame[c].dtype})"
        for c in features
        if not (pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]))
    ]
    if non_numeric:
        raise InvalidInputError(
            f"{source}: non-numeric feature columns: {', '.join(non_numeric)}; "
            "encode them as numbers or leave them out with dataset.features"
        )
    missing_target = int(frame[target].isna().sum())
    if missing_target:
        raise InvalidInputError(
            f"{source}: {missing_target} rows have no value in the target column {target!r}"
        )
    if frame[target].nunique() < 2:
        raise InvalidInputError(f"{source}: the target column {target!r} has fewer than two classes")
    infinite = [c for c in features if np.isinf(frame[c].to_numpy(dtype=np.float64)).any()]
    if infinite:
        raise InvalidInputError(f"{source}: infinite values in feature columns: {', '.join(infinite)}")
    return [str(c) for c in features]
