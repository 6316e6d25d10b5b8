"""Garbage-collector settings of a process that runs one `mlops` command and exits.

Each job imports a few thousand modules (MLflow, scikit-learn, pandas, SQLAlchemy ...), which
allocate millions of long-lived objects: with CPython's default thresholds (700, 10, 10) the
collector traverses the growing heap again and again while nothing it finds is garbage (~15 % of
the import CPU time), and at exit it traverses everything once more while the modules are torn
down (0.5-2 s per job, measured with ``hack/bench-jobs.sh``). So such a process collects the
youngest generation every 50,000 net allocations instead of 700 (the same ratios between
generations: cycles are still collected, less often), and moves every object still alive when the
command returns to the permanent generation (``gc.freeze``), so that the collections during
interpreter shutdown skip them. Objects are still released and finalizers (``atexit``, ``weakref``
finalizers, open files) still run at exit exactly as before.

Library calls of :func:`mlops_workflows.cli.main` (tests, other programs) leave the collector as
their host set it.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

YOUNGEST_GENERATION_THRESHOLD = 50_000


@contextlib.contextmanager
def one_command_process() -> Iterator[None]:
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNGEST_GENERATION_THRESHOLD, middle, oldest)
    try:
        yield
    finally:
        gc.freeze()
