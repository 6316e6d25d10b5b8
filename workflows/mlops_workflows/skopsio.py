"""``skops.io`` for the jobs (training saves models with it, batch-predict loads them), imported
from a snapshot of skops' default trusted-type names instead of rescanning every scikit-learn
module and ufunc at each start (about 0.8 s of every job; see :mod:`mlops_serving.skopstypes`).

The snapshot is the jobs image's (written at build time) or, else, one the first job stored in
``<MLOPS_HOME>/skops-trusted-types``; it is keyed by the versions of Python, skops, scikit-learn,
numpy and scipy, so what a model file may contain is decided by skops exactly as before. The list
decides what skops may load, so that folder is created private (0700) and used only while it is
this user's and writable by nobody else; otherwise skops is imported in full (and nothing stored).
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_platform.settings import PlatformSettings

TYPES_DIR = "skops-trusted-types"
"""Folder under ``MLOPS_HOME`` where a job stores the snapshot when its image has none."""


def types_dir(settings: PlatformSettings) -> Path:
    return settings.home / TYPES_DIR


def _private_dir(path: Path) -> Path | None:
    """``path``, created 0700 if missing; None unless this user owns it and nobody else may write in it."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        return None
    return path


def import_skops_io(settings: PlatformSettings) -> Any:
    """``skops.io``, imported once per process (a no-op when it already is); the folder under
    ``MLOPS_HOME`` is made only when the image holds no snapshot for these versions."""
    from mlops_serving.skopstypes import BUILT_IN, snapshot_key
    from mlops_serving.skopstypes import import_skops_io as import_from_snapshot

    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    built_in = (BUILT_IN / f"{snapshot_key()}.json").is_file()
    return import_from_snapshot(None if built_in else _private_dir(types_dir(settings)))
