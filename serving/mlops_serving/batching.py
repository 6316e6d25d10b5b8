"""Adaptive micro-batching: concurrent requests for one model share one ``predict`` call.

A tree ensemble's ``predict`` costs about the same for 1 row as for 64 (~3.4 ms for the
100-tree RandomForest), so under concurrency most of the cost is per call, not per row.

How a batch forms (one worker task per model, one batch in flight at a time):

* A request *announces* itself as soon as it knows its model (:meth:`MicroBatcher.arrival`),
  before its body is parsed, and *submits* its rows when they are parsed.
* The worker takes every submitted request (up to ``max_rows`` rows). If other announced requests
  are still being parsed, it waits for them, but never longer than ``window_s``. A lone request
  therefore never waits: at concurrency 1 latency is that of a direct call.
* While a batch runs in a thread (off the event loop), the next one gathers; so the batch size
  adapts to the load by itself.
* The result rows are split back by offset: each caller gets exactly its own rows. If a batch
  fails, each of its requests is retried alone, so one caller's fault is not another's.
* A *lone* request — the only one of its model between arrival and answer, nothing queued or
  running — of at most ``inline_rows`` rows is predicted on the event loop itself. The caller sets
  ``inline_rows`` only for a model whose small predictions take a fraction of a millisecond (the
  forest fast path); the hop to a worker thread and back costs more than that at concurrency 1.
  Under concurrency requests overlap, so they are batched in the thread as before. A burst's first
  request must not take itself for a lone one: the HTTP server's requests in flight tell (see
  ``Predictor._lone``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Sized
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from mlops_serving.runtime import Prediction

log = logging.getLogger(__name__)

PredictFn = Callable[[npt.NDArray[np.float64]], Prediction]


@dataclass
class _Item:
    features: npt.NDArray[np.float64]
    future: asyncio.Future[Prediction]
    enqueued: float = field(default_factory=time.perf_counter)


class Arrival:
    """A request on its way to the batcher; use as a context manager around parse + submit."""

    def __init__(self, batcher: Predictor, server_requests: Sized | None = None) -> None:
        self._batcher = batcher
        self._server_requests = server_requests
        self._pending = True
        self._open = True
        batcher._open += 1
        batcher._announce()

    def __enter__(self) -> Arrival:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._leave()
        if self._open:
            self._open = False
            self._batcher._open -= 1

    def _leave(self) -> None:
        if self._pending:
            self._pending = False
            self._batcher._withdraw()

    async def submit(self, features: npt.NDArray[np.float64], timeout_s: float | None = None) -> Prediction:
        """The prediction of ``features``; TimeoutError when it waited (for a batch or the thread pool)
        longer than ``timeout_s``. A prediction on the event loop is not waited for: no deadline."""
        self._leave()
        return await self._batcher._submit(features, timeout_s, self._server_requests)


class Predictor:
    """No batching: every request runs its own predict call in the thread pool."""

    def __init__(self, predict: PredictFn, executor: concurrent.futures.Executor,
                 on_batch: Callable[[int], None] | None = None, inline_rows: int = 0) -> None:
        self._predict = predict
        self._executor = executor
        self._on_batch = on_batch
        self._inline_rows = inline_rows
        self._open = 0  # requests between their arrival and the end of their answer
        self._running = 0  # predict calls in the thread pool

    def _alone(self, features: npt.NDArray[np.float64]) -> bool:
        return self._open <= 1 and self._running == 0 and len(features) <= self._inline_rows

    async def _lone(self, features: npt.NDArray[np.float64], queued: Callable[[], bool],
                    server_requests: Sized | None) -> bool:
        """Whether ``features`` may be predicted on the event loop (see the module docstring).
        Requests whose bytes arrived together are started one after the other: a burst's first
        request must not take itself for a lone one, or the burst would be predicted one request at a
        time instead of in one batch. With ``server_requests`` (the requests the server has started,
        this one included: the others are in it before their handling runs) that is its length;
        without, the question is asked again after one turn of the loop, once the others have
        announced themselves."""
        if queued() or not self._alone(features):
            return False
        if server_requests is not None:
            return len(server_requests) <= 1
        await asyncio.sleep(0)
        return not queued() and self._alone(features)

    def _predict_inline(self, features: npt.NDArray[np.float64]) -> Prediction:
        if self._on_batch is not None:
            self._on_batch(len(features))
        return self._predict(features)

    async def _in_thread(self, features: npt.NDArray[np.float64]) -> Prediction:
        self._running += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._predict, features)
        finally:
            self._running -= 1

    def arrival(self, server_requests: Sized | None = None) -> Arrival:
        return Arrival(self, server_requests)

    def _announce(self) -> None:
        pass

    def _withdraw(self) -> None:
        pass

    async def _submit(self, features: npt.NDArray[np.float64], timeout_s: float | None,
                      server_requests: Sized | None = None) -> Prediction:
        if await self._lone(features, lambda: False, server_requests):
            return self._predict_inline(features)
        if self._on_batch is not None:
            self._on_batch(len(features))
        async with asyncio.timeout(timeout_s):
            return await self._in_thread(features)

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class MicroBatcher(Predictor):
    def __init__(self, predict: PredictFn, executor: concurrent.futures.Executor, *, window_s: float,
                 max_rows: int, on_batch: Callable[[int], None] | None = None, inline_rows: int = 0) -> None:
        super().__init__(predict, executor, on_batch, inline_rows)
        self.window_s = window_s
        self.max_rows = max_rows
        self._queue: list[_Item] = []
        self._queued_rows = 0
        self._arriving = 0
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for item in self._queue:
            if not item.future.done():
                item.future.set_exception(RuntimeError("the server is shutting down"))
        self._queue.clear()

    def _announce(self) -> None:
        self._arriving += 1

    def _withdraw(self) -> None:
        self._arriving -= 1
        if self._queue:  # the worker is gathering a batch (waiting for arrivals): wake it; an idle one
            self._wakeup.set()  # has nothing to do with it (a wasted task switch per request)

    async def _submit(self, features: npt.NDArray[np.float64], timeout_s: float | None,
                      server_requests: Sized | None = None) -> Prediction:
        if await self._lone(features, lambda: bool(self._queue), server_requests):
            return self._predict_inline(features)
        if self._task is None:
            self.start()
        future: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        self._queue.append(_Item(features, future))
        self._queued_rows += len(features)
        self._wakeup.set()
        async with asyncio.timeout(timeout_s):
            return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self._arriving > 0 and self.window_s > 0 and self._queued_rows < self.max_rows:
                await self._gather(loop)
            batch = self._take()
            if batch:
                await self._predict_batch(loop, batch)

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> None:
        deadline = loop.time() + self.window_s
        while self._arriving > 0 and self._queued_rows < self.max_rows:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    def _take(self) -> list[_Item]:
        batch: list[_Item] = []
        rows = 0
        while self._queue:
            item = self._queue[0]
            if batch and rows + len(item.features) > self.max_rows:
                break
            self._queue.pop(0)
            self._queued_rows -= len(item.features)
            if item.future.done():  # the caller gave up (timeout)
                continue
            batch.append(item)
            rows += len(item.features)
        return batch

    async def _predict_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Item]) -> None:
        features = batch[0].features if len(batch) == 1 else np.concatenate([i.features for i in batch], axis=0)
        if self._on_batch is not None:
            self._on_batch(len(features))
        try:
            result = await self._in_thread(features)
        except Exception as exc:
            if len(batch) == 1:
                _resolve(batch[0].future, exc=exc)
                return
            log.warning("batched predict of %d requests failed (%s); retrying each alone", len(batch), exc)
            for item in batch:
                try:
                    _resolve(item.future, await self._in_thread(item.features))
                except Exception as single:
                    _resolve(item.future, exc=single)
            return
        if len(batch) == 1:
            _resolve(batch[0].future, result)
            return
        start = 0
        for item in batch:
            end = start + len(item.features)
            probabilities = result.probabilities[start:end] if result.probabilities is not None else None
            _resolve(item.future, Prediction(result.labels[start:end], probabilities))
            start = end


def _resolve(future: asyncio.Future[Any], value: Any = None, exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(value)
