"""``mlops batch-predict``: score a CSV/Parquet input with one registered model version.

The input (a file or a folder/prefix of files, local or ``s3://``) is split into units, one per
Parquet row group or CSV file; ``--shard i/n`` takes every n-th unit (see
:mod:`mlops_platform.tables`). Units are read in chunks of ``MLOPS_BATCH_CHUNK_ROWS`` rows, so
memory stays bounded whatever the input size.

A row matches the model signature when every feature is a finite number; the model is loaded
exactly as the model server loads it (:func:`mlops_serving.runtime.load_model`: signature
feature order, the same predict path). Other rows are counted and, with ``--invalid-rows
reject`` (the default), written with the reason to ``<output>.rejects/rejects-<shard>.parquet``,
beside the output folder and not in it (a reader of the output gets only scored rows);
``--invalid-rows fail`` fails the job.

Output: ``<output>/part-<i>-of-<n>.parquet`` with the id column (if given), ``prediction``,
``probability_<class>`` per class (classifiers) and ``model`` / ``model_version``; staged and
committed only when complete (:mod:`mlops_workflows.jobs.batch.output`). An existing part is replaced
only with ``--overwrite``. The run is recorded in MLflow (experiment ``batch-predict/<model>``)
and, with ``MLOPS_PUSHGATEWAY_URL``, pushed to the group ``{job="mlops-batch-predict", model,
shard}``.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from mlops_platform import metric_names as mn
from mlops_platform import registry_names as reg
from mlops_platform.errors import InvalidInputError
from mlops_platform.pushgateway import Sample, push_or_warn
from mlops_platform.tables import (
    InputFile,
    Shard,
    Unit,
    file_columns,
    iter_batches,
    list_inputs,
    plan_units,
    select_shard,
    to_float64,
)
from mlops_workflows.jobs.batch.output import OutputPaths, StagedParquet, commit, discard, remove
from mlops_workflows.jobs.batch.settings import BatchSettings
from mlops_workflows.jobs.failures import record, services_needed

if TYPE_CHECKING:
    from mlops_platform.registry import Registry
    from mlops_serving.runtime import LoadedModel

log = logging.getLogger(__name__)

EXPERIMENT_PREFIX = "batch-predict/"
PREDICTION = "prediction"
PROBABILITY_PREFIX = "probability_"
MODEL_COLUMN, VERSION_COLUMN = "model", "model_version"
REASON_COLUMN = "reject_reason"
COMPILED_MAX_ROWS = 10_000
"""Input rows up to which a forest loaded from its cached compiled arrays predicts them alone:
importing scikit-learn and loading the estimator (1-2 s) cost more than the compiled forest's
slower rows; above it, or when the count is unknown before reading (CSV), the estimator's trees
predict (:meth:`mlops_serving.runtime.LoadedModel.attach_estimator`)."""


@dataclass(frozen=True)
class BatchRequest:
    model: str
    input_uri: str
    output_uri: str
    version: int | None = None
    alias: str | None = None
    id_column: str | None = None
    shard: Shard = field(default_factory=lambda: Shard(1, 1))
    invalid_rows: str | None = None  # "reject" | "fail"; default from the settings
    overwrite: bool = False
    chunk_rows: int | None = None


@dataclass
class BatchResult:
    model: str
    version: str
    shard: Shard
    rows_read: int = 0
    rows_predicted: int = 0
    rows_rejected: int = 0
    units: int = 0
    files: int = 0
    duration_s: float = 0.0
    load_s: float = 0.0  # of duration_s, loading the model
    output_uri: str = ""
    rejects_uri: str | None = None
    input_digest: str = ""
    run_id: str | None = None
    run_url: str | None = None
    pushed: bool = False
    first_reject_reasons: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "shard": str(self.shard),
            "rows_read": self.rows_read,
            "rows_predicted": self.rows_predicted,
            "rows_rejected": self.rows_rejected,
            "units": self.units,
            "files": self.files,
            "duration_s": round(self.duration_s, 3),
            "model_load_s": round(self.load_s, 3),
            "output": self.output_uri,
            "rejects": self.rejects_uri,
            "input_digest": self.input_digest,
        }


def input_digest(units: list[Unit]) -> str:
    """sha256 of what this shard read: each file's URI, size and modification time, and row group.

    Cheap (no second pass over the data) and changes when a file is replaced or rewritten.
    """
    digest = hashlib.sha256()
    for unit in units:
        line = f"{unit.file.uri}\t{unit.file.size}\t{unit.file.mtime_ns}\t{unit.row_group}\n"
        digest.update(line.encode())
    return "sha256:" + digest.hexdigest()


# -- schema and one chunk -----------------------------------------------------------------------


def _label_type(model: LoadedModel) -> Any:
    import pyarrow as pa

    if model.classes is None:
        return pa.float64()
    kind = model.classes.dtype.kind
    if kind in "iub":
        return pa.from_numpy_dtype(model.classes.dtype)
    if kind == "f":
        return pa.float64()
    return pa.string()


def output_schema(model: LoadedModel, id_field: Any | None) -> Any:
    import pyarrow as pa

    fields = [id_field] if id_field is not None else []
    fields.append(pa.field(PREDICTION, _label_type(model), nullable=False))
    if model.has_proba and model.class_names is not None:
        fields.extend(pa.field(PROBABILITY_PREFIX + c, pa.float64(), nullable=False) for c in model.class_names)
    fields += [pa.field(name, pa.string(), nullable=False) for name in (MODEL_COLUMN, VERSION_COLUMN)]
    return pa.schema(fields, metadata={b"mlops.model": model.name.encode(), b"mlops.version": model.version.encode()})


def rejects_schema(feature_names: list[str], id_name: str | None) -> Any:
    import pyarrow as pa

    fields = [pa.field(id_name, pa.string())] if id_name else []
    fields += [pa.field(name, pa.string()) for name in feature_names]
    fields.append(pa.field(REASON_COLUMN, pa.string(), nullable=False))
    return pa.schema(fields)


@dataclass
class Chunk:
    matrix: npt.NDArray[np.float64]  # valid rows × features, signature order
    valid: npt.NDArray[np.bool_] | None  # None: every row is valid
    reasons: list[str]  # one per invalid row


def validate(batch: Any, feature_names: list[str]) -> Chunk:
    """The valid rows of ``batch`` as a float64 matrix, and why each other row is invalid."""
    rows = batch.num_rows
    matrix = np.empty((rows, len(feature_names)), dtype=np.float64)
    not_number = np.zeros((rows, len(feature_names)), dtype=np.bool_)
    for j, name in enumerate(feature_names):
        values, bad = to_float64(batch.column(name), name)
        matrix[:, j] = values
        not_number[:, j] = bad
    non_finite = ~np.isfinite(matrix) & ~not_number
    invalid: npt.NDArray[np.bool_] = np.asarray(not_number.any(axis=1) | non_finite.any(axis=1))
    if not invalid.any():
        return Chunk(matrix, None, [])
    reasons = []
    for i in np.flatnonzero(invalid):
        j_missing = np.flatnonzero(not_number[i])
        j_nonfinite = np.flatnonzero(non_finite[i])
        parts = [f"{feature_names[j]}: missing or not a number" for j in j_missing]
        parts += [f"{feature_names[j]}: not finite" for j in j_nonfinite]
        reasons.append("; ".join(parts))
    return Chunk(matrix[~invalid], ~invalid, reasons)


def predictions_table(model: LoadedModel, schema: Any, batch: Any, chunk: Chunk, id_name: str | None) -> Any:
    import pyarrow as pa

    n = chunk.matrix.shape[0]
    prediction = model.predict(chunk.matrix)
    columns: list[Any] = []
    if id_name is not None:
        ids = batch.column(id_name)
        if chunk.valid is not None:
            ids = ids.filter(pa.array(chunk.valid))
        columns.append(ids.cast(schema.field(id_name).type))
    columns.append(pa.array(np.asarray(prediction.labels), type=schema.field(PREDICTION).type))
    if model.has_proba and model.class_names is not None:
        probabilities = prediction.probabilities
        assert probabilities is not None
        columns.extend(pa.array(np.ascontiguousarray(probabilities[:, k])) for k in range(probabilities.shape[1]))
    columns.append(pa.repeat(pa.scalar(model.name), n))
    columns.append(pa.repeat(pa.scalar(model.version), n))
    return pa.Table.from_arrays(columns, schema=schema)


def rejects_table(schema: Any, batch: Any, chunk: Chunk, feature_names: list[str], id_name: str | None) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    assert chunk.valid is not None
    mask = pa.array(~chunk.valid)
    names = ([id_name] if id_name else []) + feature_names
    columns = [pc.cast(batch.column(name).filter(mask), pa.string()) for name in names]
    columns.append(pa.array(chunk.reasons, type=pa.string()))
    return pa.Table.from_arrays(columns, schema=schema)


# -- the job ------------------------------------------------------------------------------------

T = TypeVar("T")
PREFETCH_CHUNKS = 2
"""Chunks read and validated ahead of the one being predicted (bounds the memory used)."""


@dataclass(frozen=True)
class _Failed:
    error: BaseException


def prefetch(items: Iterator[T], depth: int = PREFETCH_CHUNKS) -> Generator[T, None, None]:
    """``items``, produced by a background thread up to ``depth`` ahead of the consumer.

    Reading and decoding (Arrow) and predicting (scikit-learn's tree code) both release the GIL,
    so on two cores the next chunk is read while this one is predicted. An error in the producer
    is raised in the consumer; a consumer that stops early stops the producer.
    """
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as exc:
            put(_Failed(exc))

    thread = threading.Thread(target=produce, name="batch-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is done:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


def _check_columns(fs: Any, files: list[InputFile], needed: list[str], block: int) -> None:
    for file in files:
        present = set(file_columns(fs, file, block))
        missing = [c for c in needed if c not in present]
        if missing:
            raise InvalidInputError(f"{file.uri}: missing column(s) {', '.join(missing)}")


def _id_field(fs: Any, first: InputFile, id_name: str | None, block: int) -> Any | None:
    import pyarrow as pa

    if id_name is None:
        return None
    if first.format == "parquet":
        from mlops_platform.tables import parquet_file

        return parquet_file(fs, first).schema_arrow.field(id_name)
    return pa.field(id_name, pa.string())  # CSV ids are kept as text (leading zeros, big numbers)


def run_batch(settings: BatchSettings, request: BatchRequest, registry: Registry | None = None) -> BatchResult:
    """Score this shard of the input; raises MlopsError (nothing committed) on failure."""
    started = time.monotonic()
    result = BatchResult(model=request.model, version="", shard=request.shard)
    try:
        with services_needed():
            _run(settings, request, registry, result)
    except Exception:
        push_or_warn(
            settings.pushgateway_url,
            mn.BATCH_PUSH_JOB,
            {mn.LABEL_MODEL: request.model, mn.LABEL_SHARD: request.shard.label},
            [
                Sample(mn.BATCH_FAILED, 1.0, {mn.LABEL_VERSION: result.version}),
                Sample(mn.BATCH_LAST_RUN, time.time(), {mn.LABEL_VERSION: result.version}),
            ],
            replace=False,
        )
        raise
    result.duration_s = time.monotonic() - started
    _record(settings, request, registry, result)
    return result


def _run(settings: BatchSettings, request: BatchRequest, registry: Registry | None, result: BatchResult) -> None:
    from mlops_platform.registry import open_registry
    from mlops_workflows.skopsio import import_skops_io

    invalid_rows = request.invalid_rows or settings.invalid_rows
    chunk_rows = request.chunk_rows or settings.chunk_rows
    block = settings.csv_block_bytes
    paths = OutputPaths.plan(request.output_uri, request.shard, settings)
    result.output_uri = paths.uri(paths.part)
    if paths.exists(paths.part) and not request.overwrite:
        raise InvalidInputError(f"{result.output_uri} exists; pass --overwrite to replace it")

    registry = registry or open_registry(settings)
    loading = time.monotonic()
    model = _load(settings, registry, request)
    result.load_s = time.monotonic() - loading
    result.version = model.version
    features = list(model.feature_names)
    if not features:
        raise InvalidInputError(f"{request.model} v{model.version} has no signature and nothing names its features; "
                                "batch-predict reads input columns by name: log the model with a signature")

    fs, files = list_inputs(request.input_uri, settings)
    id_name = request.id_column
    needed = [*features, *([id_name] if id_name else [])]
    _check_columns(fs, files, needed, block)
    units = plan_units(fs, files)
    mine = select_shard(units, request.shard)
    result.units, result.files = len(mine), len({u.file.uri for u in mine})
    result.input_digest = input_digest(mine)
    rows = sum(u.rows for u in mine if u.rows is not None) if all(u.rows is not None for u in mine) else None
    if model.estimator_loader is not None and (rows is None or rows > COMPILED_MAX_ROWS):
        loading = time.monotonic()
        import_skops_io(settings)  # from its snapshot, before the estimator's loader imports it in full
        model.attach_estimator()  # the trees predict the chunks: much faster per row on large inputs
        result.load_s += time.monotonic() - loading

    schema = output_schema(model, _id_field(fs, files[0], id_name, block))
    part = StagedParquet(paths, paths.part, schema)
    rejects: StagedParquet | None = None

    def chunks() -> Iterator[tuple[Unit, Any, Chunk]]:
        for unit in mine:
            for batch in iter_batches(fs, unit, needed, chunk_rows=chunk_rows, csv_block_bytes=block,
                                      csv_text_columns=needed):
                yield unit, batch, validate(batch, features)

    writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-writer")
    written: concurrent.futures.Future[None] | None = None
    stream = prefetch(chunks())
    try:
        for unit, batch, chunk in stream:
            result.rows_read += batch.num_rows
            if chunk.reasons:
                result.rows_rejected += len(chunk.reasons)
                result.first_reject_reasons.extend(chunk.reasons[: max(0, 5 - len(result.first_reject_reasons))])
                if invalid_rows == "fail":
                    raise InvalidInputError(
                        f"{unit.file.uri}: {len(chunk.reasons)} row(s) do not match the signature of "
                        f"{model.name} v{model.version} (first: {chunk.reasons[0]}); nothing was written"
                    )
                if rejects is None:
                    rejects = StagedParquet(paths, paths.rejects, rejects_schema(features, id_name))
                rejects.write(rejects_table(rejects.schema, batch, chunk, features, id_name))
            if chunk.matrix.shape[0]:
                table = predictions_table(model, schema, batch, chunk, id_name)
                if written is not None:
                    written.result()  # one write in flight, in order
                written = writer.submit(part.write, table)
                result.rows_predicted += chunk.matrix.shape[0]
        if written is not None:
            written.result()
        part.close()
        if rejects is not None:
            rejects.close()
            commit(paths, rejects.path, paths.rejects, settings)
            result.rejects_uri = paths.uri(paths.rejects)
        elif request.overwrite:
            remove(paths, paths.rejects)  # a previous run's rejects would not belong to this output
        commit(paths, part.path, paths.part, settings)
    finally:
        stream.close()  # stops the reader thread now, also when the loop raised
        writer.shutdown(wait=True, cancel_futures=True)
        discard(paths)


def _load(settings: BatchSettings, registry: Registry, request: BatchRequest) -> LoadedModel:
    """The version to score with, through the model cache the server uses too
    (:attr:`~mlops_platform.settings.PlatformSettings.model_cache_home`): a forest whose compiled
    arrays are cached loads with numpy alone (no scikit-learn, no skops); anything else loads its
    estimator, skops imported from its trusted-type snapshot first."""
    from mlops_serving.modelcache import ModelCache
    from mlops_serving.runtime import load_model
    from mlops_serving.settings import ModelRef
    from mlops_workflows.skopsio import import_skops_io

    registry.check_reachable()
    # resolved in the registry even when pinned: a version deleted there is not scored from the cache
    number = int(registry.get_version(request.model, version=request.version, alias=request.alias).version)
    cache = ModelCache(settings.model_cache_home, registry.tracking_uri)
    cached = cache.get(request.model, str(number))
    if cached is None or cached.compiled is None:
        import_skops_io(settings)
    return load_model(registry, ModelRef(request.model, number), cache)


def _record(settings: BatchSettings, request: BatchRequest, registry: Registry | None, result: BatchResult) -> None:
    """MLflow run and Pushgateway group of a committed run; failures here are warnings
    (:func:`mlops_workflows.jobs.failures.record`)."""
    from mlops_platform.registry import open_registry

    def mlflow_run() -> tuple[str, str]:
        return (registry or open_registry(settings)).record_job_run(
            EXPERIMENT_PREFIX + result.model,
            run_name=f"batch-{result.model}-v{result.version}-{result.shard.label}",
            tags={
                reg.RUN_TAG_JOB: reg.JOB_BATCH,
                reg.RUN_TAG_MODEL_NAME: result.model,
                reg.RUN_TAG_MODEL_VERSION: result.version,
                reg.RUN_TAG_SHARD: str(result.shard),
                reg.RUN_TAG_INPUT_DIGEST: result.input_digest,
            },
            params={
                "input": request.input_uri,
                "output": result.output_uri,
                "shard": str(result.shard),
                "id_column": request.id_column or "",
                "invalid_rows": request.invalid_rows or settings.invalid_rows,
            },
            metrics={
                "rows_read": result.rows_read,
                "rows_predicted": result.rows_predicted,
                "rows_rejected": result.rows_rejected,
                "duration_s": result.duration_s,
                "model_load_s": result.load_s,
                "rows_per_s": result.rows_read / result.duration_s if result.duration_s else 0.0,
            },
            texts={"batch/summary.json": json.dumps(result.summary(), indent=2)},
        )

    recorded = record("the run is committed but could not be recorded in MLflow", mlflow_run)
    if recorded is not None:
        result.run_id, result.run_url = recorded
    version = {mn.LABEL_VERSION: result.version}
    now = time.time()
    result.pushed = push_or_warn(
        settings.pushgateway_url,
        mn.BATCH_PUSH_JOB,
        {mn.LABEL_MODEL: result.model, mn.LABEL_SHARD: result.shard.label},
        [
            Sample(mn.BATCH_ROWS, float(result.rows_predicted), {**version, mn.LABEL_OUTCOME: "predicted"}),
            Sample(mn.BATCH_ROWS, float(result.rows_rejected), {**version, mn.LABEL_OUTCOME: "rejected"}),
            Sample(mn.BATCH_DURATION, result.duration_s, version),
            Sample(mn.BATCH_LAST_SUCCESS, now, version),
            Sample(mn.BATCH_LAST_RUN, now, version),
            Sample(mn.BATCH_FAILED, 0.0, version),
        ],
        replace=True,
    )


def summary_json(result: BatchResult) -> str:
    return json.dumps(result.summary(), indent=2)
