"""Import ``skops.io`` without its import-time scans, from a snapshot of what they computed.

``skops.io._trusted_types`` computes skops' default trusted-type names when it is imported: it
imports every scikit-learn module to list all estimators (``all_estimators``) and looks up the
module of every numpy and scipy ufunc in every loaded module (``whichmodule``). That is 0.8 s of
a cold start on an idle machine, seconds on a loaded one, and depends only on the installed
versions of skops, scikit-learn, numpy, scipy and Python. So the lists are computed once (by
skops itself, at image build time with ``python -m mlops_serving.skopstypes``, or by the first
start) and stored as JSON keyed by those versions; later imports put a module holding exactly
those lists in place of ``skops.io._trusted_types``. What a model file may contain is decided by
skops as before: the same names, from the same code, under the same versions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
import types
from importlib import metadata
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MODULE = "skops.io._trusted_types"
PACKAGES = ("skops", "scikit-learn", "numpy", "scipy")
BUILT_IN = Path(__file__).with_name("_skops_trusted_types")
"""Folder of snapshots written at image build time (``python -m mlops_serving.skopstypes``)."""


def snapshot_key() -> str:
    versions = [sys.version.split()[0], *(f"{p}=={metadata.version(p)}" for p in PACKAGES)]
    return hashlib.sha256(" ".join(versions).encode()).hexdigest()[:16]


def _snapshot(module: types.ModuleType) -> dict[str, list[str]]:
    return {
        name: list(value)
        for name, value in vars(module).items()
        if name.endswith("_NAMES") and isinstance(value, list) and all(isinstance(v, str) for v in value)
    }


def _read(folder: Path, key: str) -> dict[str, list[str]] | None:
    try:
        data = json.loads((folder / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key or not isinstance(data.get("names"), dict):
        return None
    names: dict[str, list[str]] = data["names"]
    return names


def write_snapshot(folder: Path) -> Path:
    """Import skops.io for real and store its trusted-type names in ``folder``."""
    import skops.io  # noqa: F401  (runs the scans)

    key = snapshot_key()
    folder.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({"key": key, "names": _snapshot(sys.modules[MODULE])}, indent=1, sort_keys=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".skops-")
    with os.fdopen(fd, "w") as file:
        file.write(payload)
    target = folder / f"{key}.json"
    os.replace(tmp, target)
    return target


def import_skops_io(cache_dir: Path | None, built_in: Path | None = BUILT_IN) -> Any:
    """``skops.io``, imported from a stored snapshot when there is one for these versions, in
    ``built_in`` (the image's) or ``cache_dir``; else for real, storing the snapshot under
    ``cache_dir`` for the next start."""
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    key = snapshot_key()
    names = (_read(built_in, key) if built_in is not None else None) or (
        _read(cache_dir, key) if cache_dir is not None else None)
    if names is not None:
        module = types.ModuleType(MODULE, "skops' default trusted-type names, from mlops_serving.skopstypes")
        vars(module).update(names)
        sys.modules[MODULE] = module
        try:
            import skops.io

            return skops.io
        except ImportError as exc:  # a name the snapshot lacks: import for real
            log.warning("skops trusted-type snapshot %s is incomplete (%s); importing skops.io in full", key, exc)
            for name in [m for m in sys.modules if m == "skops.io" or m.startswith("skops.io.")]:
                del sys.modules[name]
    import skops.io

    if cache_dir is not None:
        try:
            write_snapshot(cache_dir)
        except OSError as exc:
            log.warning("cannot store the skops trusted-type snapshot in %s: %s", cache_dir, exc)
    return skops.io


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0]) if args else BUILT_IN
    print(write_snapshot(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
