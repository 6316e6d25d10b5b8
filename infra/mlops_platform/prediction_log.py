"""The prediction-log record, defined once: its layout, its schema, its one writer's table builder
(:func:`build_table`, used by :mod:`mlops_serving.predlog`) and its one reader (:func:`read_window`,
used by the drift job, and by :func:`read_records` for a DataFrame).

One record per predicted row, in Parquet files under the object store (a folder or ``s3://``)::

    <store>/predictions/model=<name>/version=<v>/date=YYYY-MM-DD/hour=HH/<uuid>.parquet

(``<name>`` percent-encoded; date and hour of the request in UTC). Each file holds the rows of one
model version and one hour, written in one piece (an atomic rename locally, one PUT on S3), so a
reader never sees a partial file.

Columns, in order:

========================  ===============================  =============================================
``timestamp``             timestamp[us, tz=UTC]            when the server received the request
``request_id``            string                           the request id (``X-Request-ID``)
``model``                 string                           registered model name
``version``               string                           registered model version number
``row``                   int32                            index of the row in its request
``feature.<name>``        float64, one column per feature  the input, in signature order
``prediction``            string                           predicted class label (or value) as text
``probabilities``         list<float64>, nullable          class probabilities, in ``classes`` order
========================  ===============================  =============================================

One column per feature (rather than a list or map column) lets the drift job read the features it
compares column by column, with Parquet statistics per feature. The schema metadata carries
``mlops.schema_version``, ``mlops.feature_names`` and ``mlops.classes`` (JSON lists), so the
probabilities can be read without the model. Files are not Hive-partitioned datasets to be read
with partition discovery: the partition values are repeated as columns, and :func:`read_window`
reads the files of a time range directly, in parallel and with their columns projected. A file
that cannot be read (corrupt, or not in the record schema) is left out and named in
:attr:`LogWindow.skipped`, so one bad file does not blind the monitoring; when no file of the
window can be read at all, the input is invalid.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np
import numpy.typing as npt

from mlops_platform.errors import InvalidInputError
from mlops_platform.settings import PlatformSettings
from mlops_platform.storage import is_s3, join_uri, list_uris, s3_client

if TYPE_CHECKING:  # pandas only where records are read: the model server writes them without it
    import pandas as pd

RECORD_SCHEMA_VERSION = 1
PREDICTIONS_PREFIX = "predictions"
FEATURE_PREFIX = "feature."
TIMESTAMP_COLUMN = "timestamp"
PREDICTION_COLUMN = "prediction"
FIXED_COLUMNS = (TIMESTAMP_COLUMN, "request_id", "model", "version", "row")
OUTPUT_COLUMNS = (PREDICTION_COLUMN, "probabilities")

META_SCHEMA_VERSION = b"mlops.schema_version"
META_FEATURE_NAMES = b"mlops.feature_names"
META_CLASSES = b"mlops.classes"


def feature_column(name: str) -> str:
    """The column holding feature ``name``."""
    return FEATURE_PREFIX + name


def record_schema(feature_names: Sequence[str], classes: Sequence[str] | None = None) -> Any:
    """The ``pyarrow.Schema`` of prediction-log records for a model with these features."""
    import pyarrow as pa

    fields = [
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("version", pa.string(), nullable=False),
        pa.field("row", pa.int32(), nullable=False),
        *(pa.field(feature_column(name), pa.float64(), nullable=False) for name in feature_names),
        pa.field("prediction", pa.string(), nullable=False),
        pa.field("probabilities", pa.list_(pa.float64()), nullable=True),
    ]
    metadata = {
        META_SCHEMA_VERSION: str(RECORD_SCHEMA_VERSION).encode(),
        META_FEATURE_NAMES: json.dumps(list(feature_names)).encode(),
        META_CLASSES: json.dumps(list(classes) if classes is not None else None).encode(),
    }
    return pa.schema(fields, metadata=metadata)


def schema_mismatch(schema: Any, feature_names: Sequence[str]) -> str | None:
    """Why a file's ``pyarrow.Schema`` is not the record schema of these features (None when it is).

    Names the first extra, missing or retyped column; ``probabilities`` may be absent."""
    expected = record_schema(feature_names)
    wanted = {f.name: f.type for f in expected}
    present = {f.name: f.type for f in schema}
    extra = [n for n in present if n not in wanted]
    if extra:
        return f"column {extra[0]!r} is not in the record schema"
    missing = [n for n in wanted if n not in present and n != "probabilities"]
    if missing:
        return f"column {missing[0]!r} is missing"
    for name, type_ in present.items():
        if not type_.equals(wanted[name]):
            return f"column {name!r} is {type_}, expected {wanted[name]}"
    return None


def build_table(
    *,
    model: str,
    version: str,
    feature_names: Sequence[str],
    classes: Sequence[str] | None,
    timestamps_us: npt.NDArray[np.int64],
    request_ids: Sequence[str],
    rows: npt.NDArray[np.int32],
    features: npt.NDArray[np.float64],
    predictions: Sequence[str],
    probabilities: npt.NDArray[np.float64] | None,
) -> Any:
    """A ``pyarrow.Table`` of records in :func:`record_schema`; one entry per row in every argument
    (``features`` is rows × features, ``probabilities`` rows × classes or None)."""
    import pyarrow as pa

    n = len(request_ids)
    schema = record_schema(feature_names, classes)
    if features.shape != (n, len(feature_names)):
        raise ValueError(f"features has shape {features.shape}, expected ({n}, {len(feature_names)})")
    columns: list[Any] = [
        pa.array(timestamps_us, type=pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        pa.array(request_ids, type=pa.string()),
        pa.array([model] * n, type=pa.string()),
        pa.array([version] * n, type=pa.string()),
        pa.array(rows, type=pa.int32()),
        *(
            pa.array(np.ascontiguousarray(features[:, i]), type=pa.float64())
            for i in range(len(feature_names))
        ),
        pa.array(predictions, type=pa.string()),
    ]
    if probabilities is None:
        columns.append(pa.nulls(n, type=pa.list_(pa.float64())))
    else:
        width = probabilities.shape[1]
        offsets = pa.array(np.arange(0, (n + 1) * width, width, dtype=np.int32), type=pa.int32())
        values = pa.array(np.ascontiguousarray(probabilities).reshape(-1), type=pa.float64())
        columns.append(pa.ListArray.from_arrays(offsets, values))
    return pa.Table.from_arrays(columns, schema=schema)


def table_to_parquet(table: Any) -> bytes:
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _hour(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (UTC)")
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def version_prefix(store_uri: str, model: str, version: str) -> str:
    return join_uri(store_uri, PREDICTIONS_PREFIX, f"model={quote(model, safe='')}", f"version={version}")


def partition_prefix(store_uri: str, model: str, version: str, when: datetime) -> str:
    """The folder (or S3 prefix) holding the records of ``model``/``version`` for the hour of ``when``."""
    hour = _hour(when)
    return join_uri(version_prefix(store_uri, model, version), f"date={hour:%Y-%m-%d}", f"hour={hour:%H}")


def record_file_uri(
    store_uri: str, model: str, version: str, when: datetime, file_id: str | None = None
) -> str:
    """Where a new file of records for the hour of ``when`` goes."""
    return join_uri(
        partition_prefix(store_uri, model, version, when), f"{file_id or uuid.uuid4().hex}.parquet"
    )


def _parse_hour(uri: str) -> datetime | None:
    date = hour = None
    for part in uri.split("/"):
        if part.startswith("date="):
            date = part[len("date=") :]
        elif part.startswith("hour="):
            hour = part[len("hour=") :]
    if date is None or hour is None:
        return None
    try:
        return datetime.strptime(f"{date} {hour}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    except ValueError:
        return None


def record_files(
    store_uri: str, settings: PlatformSettings, model: str, version: str, since: datetime, until: datetime
) -> list[str]:
    """URIs of the record files whose hour overlaps ``[since, until)``, oldest first."""
    first, last = _hour(since), _hour(until)
    client = s3_client(settings) if is_s3(store_uri) else None
    found: list[str] = []
    day = first.replace(hour=0)
    while day <= last:
        prefix = join_uri(version_prefix(store_uri, model, version), f"date={day:%Y-%m-%d}")
        for uri in list_uris(prefix, settings, client=client):
            hour = _parse_hour(uri)
            if uri.endswith(".parquet") and hour is not None and first <= hour and hour < until:
                found.append(uri)
        day += timedelta(days=1)
    return sorted(found, key=lambda u: (_parse_hour(u), u))


log = logging.getLogger(__name__)


class _OtherSchemaError(ValueError):
    """A readable file whose columns are not the record schema of the model's features."""


@dataclass
class LogWindow:
    """The records of one model version in a time window, as read by :func:`read_window`."""

    table: Any  # pyarrow.Table: the requested columns, rows with since <= timestamp < until
    files_read: int
    skipped: list[str] = field(default_factory=list)  # "<uri>: <why>" of each file left out


def _feature_names_of(schema: Any) -> list[str]:
    raw = (schema.metadata or {}).get(META_FEATURE_NAMES)
    if raw is not None:
        return list(json.loads(raw))
    return [name[len(FEATURE_PREFIX) :] for name in schema.names if name.startswith(FEATURE_PREFIX)]


def _read_file(
    fs: Any,
    path: str,
    feature_names: Sequence[str] | None,
    columns: Sequence[str] | None,
    since: datetime,
    until: datetime,
) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    with fs.open_input_file(path) as handle:
        parquet = pq.ParquetFile(handle)
        schema = parquet.schema_arrow
        names = list(feature_names) if feature_names is not None else _feature_names_of(schema)
        mismatch = schema_mismatch(schema, names)
        if mismatch is not None:
            raise _OtherSchemaError(f"another schema: {mismatch}")
        table = parquet.read(columns=list(columns) if columns is not None else None)
    stamps = table[TIMESTAMP_COLUMN]
    start = pa.scalar(since.astimezone(UTC), type=pa.timestamp("us", tz="UTC"))
    end = pa.scalar(until.astimezone(UTC), type=pa.timestamp("us", tz="UTC"))
    return table.filter(pc.and_(pc.greater_equal(stamps, start), pc.less(stamps, end)))


def read_window(
    store_uri: str,
    settings: PlatformSettings,
    model: str,
    version: str | int,
    since: datetime,
    until: datetime,
    *,
    feature_names: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    threads: int = 8,
) -> LogWindow:
    """The records of ``model``/``version`` with ``since <= timestamp < until``: the one reader.

    ``feature_names``: the model's features, which every file must hold in the record schema
    (default: each file's own, from its metadata). ``columns``: the columns to read (default all;
    ``timestamp`` is always read). Files are read ``threads`` at a time; an unreadable one is
    skipped and listed. Raises :class:`InvalidInputError` when the window has files and none of
    them is readable.
    """
    import pyarrow as pa

    from mlops_platform.tables import filesystem

    uris = record_files(store_uri, settings, model, str(version), since, until)
    if columns is not None and TIMESTAMP_COLUMN not in columns:
        columns = [TIMESTAMP_COLUMN, *columns]
    fs, _ = filesystem(store_uri, settings)
    paths = [uri[len("s3://") :] if is_s3(uri) else uri for uri in uris]
    tables: list[Any] = []
    skipped: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        futures = [pool.submit(_read_file, fs, p, feature_names, columns, since, until) for p in paths]
        for uri, future in zip(uris, futures, strict=True):
            try:
                tables.append(future.result())
            except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
                log.warning("skipping unreadable prediction-log file %s: %s", uri, exc)
                skipped.append(f"{uri}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    if uris and not tables:
        raise InvalidInputError(
            f"none of the {len(uris)} prediction-log file(s) of {model} v{version} in the window is readable; "
            f"first: {skipped[0]}"
        )
    if not tables:
        schema = record_schema(feature_names or [], None)
        wanted = columns if columns is not None else schema.names
        empty = pa.schema([schema.field(name) for name in wanted]).empty_table()
        return LogWindow(empty, 0, skipped)
    return LogWindow(pa.concat_tables(tables, promote_options="default"), len(tables), skipped)


def read_records(
    store_uri: str,
    settings: PlatformSettings,
    model: str,
    version: str | int,
    since: datetime,
    until: datetime,
) -> pd.DataFrame:
    """Every record of ``model``/``version`` with ``since <= timestamp < until`` as a DataFrame,
    in time order (:func:`read_window`, every column).

    Columns as in the module docstring (``timestamp`` is ``datetime64[us, UTC]``); an empty frame
    with the fixed and output columns when there is none.
    """
    frame: pd.DataFrame = read_window(store_uri, settings, model, version, since, until).table.to_pandas()
    return frame.sort_values(["timestamp", "request_id", "row"], kind="stable").reset_index(drop=True)
