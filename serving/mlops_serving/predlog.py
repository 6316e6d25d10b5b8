"""The prediction log: sampled records, buffered in memory, written in the background as Parquet.

A request never waits for the object store: :meth:`PredictionLogger.offer` only appends arrays
to an in-memory buffer (on the event loop, O(1)). A background task writes the buffer every
``MLOPS_SERVING_PREDLOG_FLUSH_INTERVAL_S`` seconds, or sooner when it holds
``MLOPS_SERVING_PREDLOG_FLUSH_ROWS`` rows, one Parquet file per model version and hour, in the
record schema of :mod:`mlops_platform.prediction_log` (which the drift job reads). Sampling is per request
(all rows of a sampled request are logged) at ``MLOPS_SERVING_PREDLOG_SAMPLE_RATE``.

Accounting: every sampled record is *accepted* and ends counted exactly once, as *written* or as
*dropped* with a reason: ``buffer_full`` (over ``MLOPS_SERVING_PREDLOG_BUFFER_ROWS``),
``write_error`` (three failed writes) or ``shutdown`` (not written within the shutdown budget).
:meth:`PredictionLogger.close` logs the totals and how many records were lost.

Bounded and idempotent: each store call is bounded by ``MLOPS_SERVING_PREDLOG_WRITE_TIMEOUT_S``
(botocore's connect and read timeouts, one attempt, and a deadline on the await). A batch is formed
once and keeps its object key, derived from its records, across retries: a write that timed out
but landed is overwritten by its retry, never duplicated. The final flush on shutdown has
``MLOPS_SERVING_PREDLOG_SHUTDOWN_FLUSH_S``, carved out of ``MLOPS_SERVING_SHUTDOWN_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from mlops_platform import prediction_log as records
from mlops_platform import storage
from mlops_serving.metrics import ServingMetrics
from mlops_serving.runtime import LoadedModel, Prediction
from mlops_serving.settings import ServingSettings

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
REASON_BUFFER_FULL = "buffer_full"
REASON_WRITE_ERROR = "write_error"
REASON_SHUTDOWN = "shutdown"


@dataclass
class _Chunk:
    timestamp_us: int
    request_id: str
    features: npt.NDArray[np.float64]
    labels: npt.NDArray[Any]
    probabilities: npt.NDArray[np.float64] | None


@dataclass
class _Batch:
    """The records of one file: formed once, written under the same key on every attempt."""

    model: LoadedModel
    chunks: list[_Chunk]
    rows: int
    uri: str
    attempts: int = 0


@dataclass
class Totals:
    accepted: int = 0
    written: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


def batch_file_id(chunks: list[_Chunk]) -> str:
    """A deterministic object name for a batch: a digest of its records' timestamps and request ids."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(f"{chunk.timestamp_us}:{chunk.request_id}:{len(chunk.features)}\n".encode())
    return digest.hexdigest()[:32]


class PredictionLogger:
    def __init__(self, settings: ServingSettings, metrics: ServingMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.store_uri = settings.effective_store_uri
        self.enabled = settings.predlog_sample_rate > 0
        self.totals = Totals()
        self._rate = settings.predlog_sample_rate
        self._capacity = settings.predlog_buffer_rows
        self._timeout = settings.predlog_write_timeout_s
        self._buffer: dict[tuple[str, str], list[_Chunk]] = defaultdict(list)
        self._models: dict[tuple[str, str], LoadedModel] = {}
        self._pending: list[_Batch] = []  # formed batches waiting for their (next) write
        self._rows = 0  # rows in the buffer and in pending batches
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._deadline: float | None = None  # monotonic; set by close()
        # Two threads: a write abandoned at its deadline may still hold one until botocore's timeout.
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="predlog")
        self._client: Any = None

    # -- request path ----------------------------------------------------------------------

    def offer(self, model: LoadedModel, request_id: str, received_at: float,
              features: npt.NDArray[np.float64], prediction: Prediction) -> None:
        """Buffer the rows of one request, if sampled; never raises, never blocks."""
        if not self.enabled or not model.feature_names or (self._rate < 1.0 and random.random() >= self._rate):
            return  # (a model without signature whose width nobody knows has no record schema)
        rows = len(features)
        self.totals.accepted += rows
        if self._stopping or self._rows + rows > self._capacity:
            self._drop(model, REASON_BUFFER_FULL, rows)
            return
        key = (model.name, model.version)
        self._models[key] = model
        self._buffer[key].append(
            _Chunk(int(received_at * 1_000_000), request_id, features, prediction.labels, prediction.probabilities)
        )
        self._rows += rows
        if self._rows >= self.settings.predlog_flush_rows:
            self._full.set()

    def _drop(self, model: LoadedModel, reason: str, rows: int) -> None:
        self.totals.dropped[reason] += rows
        self.metrics.predlog_records_dropped(model.name, model.version, reason, rows)

    # -- background writer -------------------------------------------------------------------

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="prediction-log")
            log.info("prediction log: %.0f%% of requests to %s", self._rate * 100,
                     storage.join_uri(self.store_uri, records.PREDICTIONS_PREFIX))

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self.settings.predlog_flush_interval_s)
            self._full.clear()
            await self.flush()

    def _form_batches(self) -> None:
        buffer, models = self._buffer, self._models
        self._buffer, self._models = defaultdict(list), {}
        for key, chunks in buffer.items():
            model = models[key]
            for hour_chunks in _by_hour(chunks).values():
                when = datetime.fromtimestamp(hour_chunks[0].timestamp_us / 1_000_000, tz=UTC)
                uri = records.record_file_uri(self.store_uri, model.name, model.version, when,
                                              batch_file_id(hour_chunks))
                self._pending.append(_Batch(model, hour_chunks, sum(len(c.features) for c in hour_chunks), uri))

    async def flush(self) -> None:
        """Write every pending batch once (each write in a thread, bounded by the write timeout).

        A failed batch stays pending, with its key, for the next flush; after ``MAX_ATTEMPTS`` it
        is dropped. No write starts when it could not finish before the shutdown deadline."""
        self._form_batches()
        loop = asyncio.get_running_loop()
        retry: list[_Batch] = []
        while self._pending:
            if self._deadline is not None and time.monotonic() + self._timeout > self._deadline:
                break
            batch = self._pending.pop(0)
            batch.attempts += 1
            try:
                await asyncio.wait_for(loop.run_in_executor(self._executor, self._write, batch), self._timeout)
            except Exception as exc:
                if isinstance(exc, TimeoutError):
                    exc = TimeoutError(f"no answer within {self._timeout:g}s (MLOPS_SERVING_PREDLOG_WRITE_TIMEOUT_S)")
                if batch.attempts < MAX_ATTEMPTS:
                    retry.append(batch)
                    log.warning("prediction log: writing %d records of %s v%s failed (%s); will retry",
                                batch.rows, batch.model.name, batch.model.version, exc)
                else:
                    self._rows -= batch.rows
                    self._drop(batch.model, REASON_WRITE_ERROR, batch.rows)
                    log.error("prediction log: dropped %d records of %s v%s after %d failed writes: %s",
                              batch.rows, batch.model.name, batch.model.version, batch.attempts, exc)
            else:
                self._rows -= batch.rows
                self.totals.written += batch.rows
                self.metrics.predlog_records_written(batch.model.name, batch.model.version, batch.rows)
        self._pending[:0] = retry

    def _write(self, batch: _Batch) -> str:
        model, chunks = batch.model, batch.chunks
        counts = [len(c.features) for c in chunks]
        table = records.build_table(
            model=model.name,
            version=model.version,
            feature_names=model.feature_names,
            classes=model.class_names,
            timestamps_us=np.repeat(np.array([c.timestamp_us for c in chunks], dtype=np.int64), counts),
            request_ids=[c.request_id for c, n in zip(chunks, counts, strict=True) for _ in range(n)],
            rows=np.concatenate([np.arange(n, dtype=np.int32) for n in counts]),
            features=np.concatenate([c.features for c in chunks], axis=0),
            predictions=_prediction_texts(np.concatenate([np.asarray(c.labels) for c in chunks])),
            probabilities=(
                np.concatenate([c.probabilities for c in chunks], axis=0)
                if all(c.probabilities is not None for c in chunks) else None
            ),
        )
        if storage.is_s3(batch.uri) and self._client is None:
            self._client = storage.s3_client(self.settings, timeout_s=self._timeout)
        storage.write_bytes(batch.uri, records.table_to_parquet(table), self.settings, client=self._client)
        log.debug("prediction log: wrote %d records to %s", len(table), batch.uri)
        return batch.uri

    async def close(self, timeout_s: float | None = None) -> None:
        """Stop the background task and write what is left within ``timeout_s`` (default
        ``MLOPS_SERVING_PREDLOG_SHUTDOWN_FLUSH_S``); what is still unwritten then is dropped
        (``shutdown``), and the totals are logged."""
        budget = self.settings.predlog_shutdown_flush_s if timeout_s is None else timeout_s
        started = time.monotonic()
        self._deadline = started + budget
        self._stopping = True
        if self._task is not None:
            self._full.set()  # the task finishes the flush it is doing (bounded by the deadline), then stops
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.enabled:
            while (self._buffer or self._pending) and time.monotonic() + self._timeout <= self._deadline:
                await self.flush()
            self._form_batches()
            lost = 0
            for batch in self._pending:
                self._drop(batch.model, REASON_SHUTDOWN, batch.rows)
                lost += batch.rows
            self._pending, self._rows = [], 0
            totals = self.totals
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(totals.dropped.items()) if n) or "none"
            log.log(
                logging.ERROR if lost else logging.INFO,
                "prediction log closed in %.2fs: %d records accepted, %d written, %d dropped (%s); "
                "%d lost at shutdown",
                time.monotonic() - started, totals.accepted, totals.written, totals.dropped_total, reasons, lost,
                extra={"predlog_accepted": totals.accepted, "predlog_written": totals.written,
                       "predlog_dropped": totals.dropped_total, "predlog_lost_at_shutdown": lost},
            )
        self._executor.shutdown(wait=False, cancel_futures=True)


def _prediction_texts(labels: npt.NDArray[Any]) -> list[str]:
    """One text per row: the label, or the JSON list of a row of several outputs (pyfunc models)."""
    if labels.ndim == 1:
        texts: list[str] = labels.astype(str).tolist()
        return texts
    return [json.dumps(row) for row in labels.reshape(len(labels), -1).tolist()]


def _by_hour(chunks: list[_Chunk]) -> dict[int, list[_Chunk]]:
    groups: dict[int, list[_Chunk]] = defaultdict(list)
    for chunk in chunks:
        groups[chunk.timestamp_us // 3_600_000_000].append(chunk)
    return groups
