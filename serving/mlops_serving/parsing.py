"""Where request bodies are parsed: small ones inline, large ones in a separate process.

Decoding and validating a large JSON or CSV body is CPU work in C calls that hold the GIL (json
decodes a hundred thousand strings in one call): in a worker thread it still holds up the event
loop, and so every other request of this one-process server, for hundreds of milliseconds. So a
body of :data:`~mlops_serving.protocols.tabular.LARGE_BODY` bytes or more is parsed in a small
pool of processes (``MLOPS_SERVING_PARSE_PROCESSES``, reniced, so that the server's own process
wins a busy CPU; started once the models are ready, or by the first large body if that comes
first, so that it does not compete with loading them for the CPU at cold start), which first
refuses, by a linear count, more values than the row limit can need
(:func:`~mlops_serving.protocols.tabular.check_volume`). The pool
gets the bytes and the model's :class:`~mlops_serving.protocols.tabular.ModelInputs` and returns
the parsed request (numpy arrays) or the same 4xx error an inline parse raises. A smaller body
costs at most a few milliseconds and is parsed inline: no inter-process hop on the hot path.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import io
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from mlops_serving.errors import ParserUnavailableError
from mlops_serving.protocols.tabular import LARGE_BODY, check_volume

T = TypeVar("T")
log = logging.getLogger(__name__)

NICENESS = 5
"""Added to the parsing processes' nice value: under CPU contention the event loop runs first."""


def _init_process(server_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the process group: the server stops us
    with contextlib.suppress(OSError):  # not allowed here: parse at the same priority
        os.nice(NICENESS)
    threading.Thread(target=_exit_with, args=(server_pid,), name="exit-with-server", daemon=True).start()


def _exit_with(server_pid: int) -> None:
    """End this process once the server is gone (a killed server cannot shut its pool down)."""
    while os.getppid() == server_pid:
        time.sleep(1)
    os._exit(0)


def warm_up() -> int:
    """Import what parsing needs and run pandas' CSV reader once (its first call costs tens of
    milliseconds), at start-up rather than in the first request that needs them."""
    import pandas as pd

    import mlops_serving.protocols.mlflow_scoring
    import mlops_serving.protocols.native
    import mlops_serving.protocols.v2  # noqa: F401

    pd.read_csv(io.StringIO("a,b\n1,2\n"), dtype="float64")
    return os.getpid()


def _bounded(body: bytes, max_rows: int, width: int, fn: Callable[..., T], *args: Any) -> T:
    """In a parsing process: the linear bound on the body's values first, then ``fn(body, *args)``."""
    check_volume(body, max_rows, width)
    return fn(body, *args)


class BodyParser:
    """``await parse(body, max_rows, width, fn, *args)`` is ``fn(body, *args)``, run where it cannot
    stall the event loop. Started and stopped with the app (``start``/``stop``)."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._warming = False
        self._stopped = False

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        # spawn, not fork: the server has threads (fork would copy their locks mid-use)
        return concurrent.futures.ProcessPoolExecutor(
            self.processes, mp_context=multiprocessing.get_context("spawn"), initializer=_init_process,
            initargs=(os.getpid(),),
        )

    def start(self) -> None:
        """Start the pool and warm every process up in the background, and this process in a thread
        (what the server parses inline). Called once the models are ready, not at start-up: the
        spawned interpreters and the pandas import would compete with loading them for the CPU."""
        with self._lock:
            if self._pool is None and not self._stopped:
                self._pool = self._new_pool()
                for _ in range(self.processes):
                    self._pool.submit(warm_up)
        if not self._warming:
            self._warming = True
            threading.Thread(target=warm_up, name="parser-warm-up", daemon=True).start()

    def _running_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:  # a large body before the models are ready (e.g. a 503 to come)
            self.start()
        pool = self._pool
        if pool is None:
            raise ParserUnavailableError("the server is stopping")
        return pool

    async def stop(self) -> None:
        with self._lock:
            self._stopped = True
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    async def parse(self, body: bytes, max_rows: int, width: int, fn: Callable[..., T], *args: Any) -> T:
        """``fn(body, *args)``: inline under :data:`LARGE_BODY` bytes; else, once the body passes a
        bound on the values it holds (``max_rows`` rows of ``width`` features), in the pool."""
        if len(body) < LARGE_BODY:
            return fn(body, *args)
        pool = self._running_pool()
        try:
            return await asyncio.get_running_loop().run_in_executor(
                pool, functools.partial(_bounded, body, max_rows, width, fn, *args)
            )
        except BrokenProcessPool as exc:  # a parsing process died (killed, out of memory): replace the pool
            if self._pool is pool:
                log.error("a body-parsing process died; starting a new pool")
                self._pool = self._new_pool()
                pool.shutdown(wait=False, cancel_futures=True)
            raise ParserUnavailableError("the request could not be parsed now; retry") from exc
