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

A command that imports most of its libraries inside its handler and then exits (`mlops train`:
MLflow, its SQL store, scikit-learn, about 600,000 net allocations of objects that live until exit)
may also run under :func:`few_collections`: the youngest generation is then collected every
1,000,000 net allocations while it runs, so the collector does not traverse the libraries' objects
again and again while they are imported (0.3-0.45 s of a 4 s training run on a 2-core machine,
each pass freeing next to nothing). A command that allocates more still collects.

Library calls of :func:`mlops_workflows.cli.main` (tests, other programs) leave the collector as
their host set it.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

YOUNGEST_GENERATION_THRESHOLD = 50_000
FEW_COLLECTIONS_THRESHOLD = 1_000_000

_one_command = False


@contextlib.contextmanager
def one_command_process() -> Iterator[None]:
    global _one_command
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNGEST_GENERATION_THRESHOLD, middle, oldest)
    _one_command = True
    try:
        yield
    finally:
        _one_command = False
        gc.freeze()


@contextlib.contextmanager
def few_collections() -> Iterator[None]:
    """In a one-command process, the youngest generation is collected every
    ``FEW_COLLECTIONS_THRESHOLD`` net allocations while the block runs; at its end, what is alive
    moves to the permanent generation (as :func:`one_command_process` does at the command's end,
    so that the objects allocated in the block are not all traversed at the next allocation) and
    the threshold is as before. Elsewhere (a library call of the CLI) nothing changes."""
    if not _one_command:
        yield
        return
    before = gc.get_threshold()
    gc.set_threshold(FEW_COLLECTIONS_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.freeze()
        gc.set_threshold(*before)
