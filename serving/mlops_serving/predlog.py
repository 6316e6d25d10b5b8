"""The prediction log: sampled records, buffered in memory, written in the background as Parquet.

A request never waits for the object store: :meth:`PredictionLogger.offer` only appends arrays
to an in-memory buffer (on the event loop, O(1)). A background task writes the buffer every
``MLOPS_SERVING_PREDLOG_FLUSH_INTERVAL_S`` seconds, or sooner when it holds
``MLOPS_SERVING_PREDLOG_FLUSH_ROWS`` rows, one Parquet file per model version and hour, in the
record schema of :mod:`mlops_drift.records` (which the drift job reads). The buffer is bounded
(``MLOPS_SERVING_PREDLOG_BUFFER_ROWS``): rows beyond it are dropped and counted, as are rows whose
write failed three times. Sampling is per request (all rows of a sampled request are logged) at
``MLOPS_SERVING_PREDLOG_SAMPLE_RATE``. :meth:`PredictionLogger.close` writes what is left; the
app calls it on shutdown, after uvicorn has finished the in-flight requests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from mlops_drift import records
from mlops_platform import storage
from mlops_serving.metrics import ServingMetrics
from mlops_serving.runtime import LoadedModel, Prediction
from mlops_serving.settings import ServingSettings

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3


@dataclass
class _Chunk:
    timestamp_us: int
    request_id: str
    features: npt.NDArray[np.float64]
    labels: npt.NDArray[Any]
    probabilities: npt.NDArray[np.float64] | None
    attempts: int = 0


class PredictionLogger:
    def __init__(self, settings: ServingSettings, metrics: ServingMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.store_uri = settings.effective_store_uri
        self.enabled = settings.predlog_sample_rate > 0
        self._rate = settings.predlog_sample_rate
        self._capacity = settings.predlog_buffer_rows
        self._buffer: dict[tuple[str, str], list[_Chunk]] = defaultdict(list)
        self._models: dict[tuple[str, str], LoadedModel] = {}
        self._rows = 0
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="predlog")
        self._client: Any = None

    # -- request path ----------------------------------------------------------------------

    def offer(self, model: LoadedModel, request_id: str, received_at: float,
              features: npt.NDArray[np.float64], prediction: Prediction) -> None:
        """Buffer the rows of one request, if sampled; never raises, never blocks."""
        if not self.enabled or (self._rate < 1.0 and random.random() >= self._rate):
            return
        key = (model.name, model.version)
        rows = len(features)
        if self._rows + rows > self._capacity:
            self.metrics.predlog_records_dropped(model.name, model.version, "buffer_full", rows)
            return
        self._models[key] = model
        self._buffer[key].append(
            _Chunk(int(received_at * 1_000_000), request_id, features, prediction.labels, prediction.probabilities)
        )
        self._rows += rows
        if self._rows >= self.settings.predlog_flush_rows:
            self._full.set()

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

    async def flush(self) -> None:
        """Write everything buffered now (in a thread)."""
        if not self._rows:
            return
        buffer, models = self._buffer, dict(self._models)
        self._buffer, self._rows = defaultdict(list), 0
        loop = asyncio.get_running_loop()
        for key, chunks in buffer.items():
            model = models[key]
            for hour_chunks in _by_hour(chunks).values():
                rows = sum(len(c.features) for c in hour_chunks)
                try:
                    await loop.run_in_executor(self._executor, self._write, model, hour_chunks)
                except Exception as exc:
                    self._retry_or_drop(model, hour_chunks, rows, exc)
                else:
                    self.metrics.predlog_records_written(model.name, model.version, rows)

    def _retry_or_drop(self, model: LoadedModel, chunks: list[_Chunk], rows: int, exc: Exception) -> None:
        attempts = max(c.attempts for c in chunks) + 1
        if attempts < MAX_ATTEMPTS and self._rows + rows <= self._capacity:
            for chunk in chunks:
                chunk.attempts = attempts
            key = (model.name, model.version)
            self._models.setdefault(key, model)
            self._buffer[key][:0] = chunks
            self._rows += rows
            log.warning("prediction log: writing %d records of %s v%s failed (%s); will retry",
                        rows, model.name, model.version, exc)
            return
        self.metrics.predlog_records_dropped(model.name, model.version, "write_error", rows)
        log.error("prediction log: dropped %d records of %s v%s after %d failed writes: %s",
                  rows, model.name, model.version, attempts, exc)

    def _write(self, model: LoadedModel, chunks: list[_Chunk]) -> str:
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
            predictions=np.concatenate([np.asarray(c.labels) for c in chunks]).astype(str).tolist(),
            probabilities=(
                np.concatenate([c.probabilities for c in chunks], axis=0)
                if all(c.probabilities is not None for c in chunks) else None
            ),
        )
        when = datetime.fromtimestamp(chunks[0].timestamp_us / 1_000_000, tz=UTC)
        uri = records.record_file_uri(self.store_uri, model.name, model.version, when)
        if storage.is_s3(uri) and self._client is None:
            self._client = storage.s3_client(self.settings)
        storage.write_bytes(uri, records.table_to_parquet(table), self.settings, client=self._client)
        log.debug("prediction log: wrote %d records to %s", len(table), uri)
        return uri

    async def close(self, timeout_s: float = 30.0) -> None:
        """Stop the background task and write what is buffered (bounded by ``timeout_s``)."""
        if self._task is not None:
            self._stopping = True  # the task finishes the write it is doing, then stops
            self._full.set()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.enabled:
            started = time.monotonic()
            try:
                await asyncio.wait_for(self._flush_all(), timeout_s)
            except TimeoutError:
                log.error("prediction log: final flush did not finish in %.0fs; %d records lost",
                          timeout_s, self._rows)
            else:
                log.info("prediction log flushed in %.2fs", time.monotonic() - started)
        self._executor.shutdown(wait=False)

    async def _flush_all(self) -> None:
        for _ in range(MAX_ATTEMPTS):
            await self.flush()
            if not self._rows:
                return


def _by_hour(chunks: list[_Chunk]) -> dict[int, list[_Chunk]]:
    groups: dict[int, list[_Chunk]] = defaultdict(list)
    for chunk in chunks:
        groups[chunk.timestamp_us // 3_600_000_000].append(chunk)
    return groups
