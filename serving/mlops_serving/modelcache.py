"""The local model cache: a registered version's files, kept on disk so a restart loads them
without the registry and without importing MLflow.

A registered version never changes (its number is not reused and its artifacts are immutable),
so a pinned ``NAME:VERSION`` found here is served from here. An entry is the version's model
folder (``MLmodel``, the serialized estimator, ...), its baseline statistics when the run has
them, and ``entry.json`` (name, version, run id). Entries are written to a temporary folder and
renamed into place, so a crash mid-download leaves no half entry; one folder per tracking URI, so
two registries never share a version number.

:func:`read_mlmodel` and :func:`load_sklearn` read such a folder with PyYAML and skops only: the
``import mlflow`` the registry path needs costs seconds of start-up (hundreds of modules).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_platform.registry import Registry

log = logging.getLogger(__name__)

ENTRY_FILE = "entry.json"
MODEL_DIR = "model"
BASELINE_FILE = "baseline.json"
NO_BASELINE_FILE = "baseline.missing"
COMPILED_FILE = "forest.npz"
"""A forest's node arrays (:class:`mlops_serving.fastpath.CompiledForest`), written once the
estimator loaded from the version's files has been checked against it: later starts load these
with numpy alone instead of scikit-learn and skops."""


@dataclass(frozen=True)
class CachedVersion:
    """One registered version on local disk."""

    name: str
    version: str
    run_id: str
    model_dir: Path
    baseline: Any | None
    """The baseline statistics as stored (JSON), or None when the run has none."""
    baseline_missing_reason: str
    compiled: Path | None = None
    """The entry's :data:`COMPILED_FILE`, when there is one."""


class ModelCache:
    """Versions under ``root/<digest of the tracking URI>/<name>/<version>/``."""

    def __init__(self, root: Path, tracking_uri: str) -> None:
        digest = hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]
        self.root = root / digest
        self.types_dir = root / "skops-trusted-types"
        """Where :mod:`mlops_serving.skopstypes` keeps its snapshot when the image has none."""

    def _path(self, name: str, version: str) -> Path:
        return self.root / name / version

    def get(self, name: str, version: str) -> CachedVersion | None:
        """The cached version, or None when it is not (completely) cached."""
        path = self._path(name, version)
        try:
            entry = json.loads((path / ENTRY_FILE).read_text())
            baseline = None
            missing = ""
            if (path / BASELINE_FILE).is_file():
                baseline = json.loads((path / BASELINE_FILE).read_text())
            else:
                missing = (path / NO_BASELINE_FILE).read_text()
        except (OSError, ValueError):
            return None
        if entry.get("name") != name or str(entry.get("version")) != version:
            return None
        compiled = path / COMPILED_FILE
        return CachedVersion(name, version, str(entry["run_id"]), path / MODEL_DIR, baseline, missing,
                             compiled if compiled.is_file() else None)

    def put_compiled(self, cached: CachedVersion, write: Any) -> None:
        """Add :data:`COMPILED_FILE` to a cached version: ``write(path)`` writes it to a staging file
        renamed into place (a crash leaves none). A read-only cache keeps the entry as it is."""
        path = self._path(cached.name, cached.version)
        staged = path / f".{COMPILED_FILE}.{os.getpid()}.tmp"
        try:
            write(staged)
            os.replace(staged, path / COMPILED_FILE)
        except OSError as exc:
            log.warning("model cache %s not writable (%s); %s v%s loads with scikit-learn at the next start too",
                        self.root, exc, cached.name, cached.version)
        finally:
            staged.unlink(missing_ok=True)

    def evict(self, name: str, version: str) -> None:
        shutil.rmtree(self._path(name, version), ignore_errors=True)

    def refresh_baseline(self, registry: Registry, cached: CachedVersion, baseline_artifact: str) -> CachedVersion:
        """``cached``, with the baseline statistics its run holds now: unlike the model's files, a
        baseline can be attached after registration (``mlops baseline create``), so an entry cached
        without one asks the registry again. The registry's errors are the caller's."""
        from mlops_platform.errors import NotFoundError

        try:
            raw = registry.load_run_file(cached.run_id, baseline_artifact)
        except NotFoundError:
            return cached
        path = self._path(cached.name, cached.version)
        try:
            staged = path / f".{BASELINE_FILE}.tmp"
            staged.write_bytes(raw)
            os.replace(staged, path / BASELINE_FILE)
            (path / NO_BASELINE_FILE).unlink(missing_ok=True)
        except OSError as exc:  # a read-only cache: use it this time, ask again at the next start
            log.warning("model cache %s not writable (%s); the baseline of %s v%s is not cached", self.root, exc,
                        cached.name, cached.version)
        return replace(cached, baseline=json.loads(raw), baseline_missing_reason="")

    def put(self, registry: Registry, name: str, version: str, run_id: str,
            baseline_artifact: str) -> CachedVersion:
        """Download ``name`` version ``version`` (model folder and baseline) into the cache.

        A baseline the run does not have is recorded as missing only when the run's artifact
        listing confirms it; one that failed to download for another reason leaves the entry
        incomplete (used now, downloaded again at the next start), as without the cache."""
        from mlops_platform.errors import NotFoundError

        final = self._path(name, version)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=final.parent))
        baseline: Any | None = None
        missing = ""
        try:
            registry.download_model_version(name, version, staging / MODEL_DIR)
            try:
                raw = registry.load_run_file(run_id, baseline_artifact)
                baseline = json.loads(raw)
                (staging / BASELINE_FILE).write_bytes(raw)
            except NotFoundError as exc:
                missing = str(exc)
                if not registry.run_has_artifact(run_id, baseline_artifact):
                    (staging / NO_BASELINE_FILE).write_text(missing)
            (staging / ENTRY_FILE).write_text(json.dumps({"name": name, "version": version, "run_id": run_id}))
            if final.exists() and self.get(name, version) is None:
                shutil.rmtree(final, ignore_errors=True)  # an entry left incomplete by an earlier start
            try:
                os.rename(staging, final)
            except OSError:  # another process cached it first: use theirs
                if not (final / ENTRY_FILE).is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return CachedVersion(name, version, run_id, final / MODEL_DIR, baseline, missing)


# -- reading an MLflow model folder without MLflow --------------------------------------------------


def read_mlmodel(model_dir: Path) -> dict[str, Any]:
    """The ``MLmodel`` file of a model folder."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load((model_dir / "MLmodel").read_text(), Loader=loader)
    if not isinstance(data, dict):
        raise ValueError(f"{model_dir / 'MLmodel'} is not a mapping")
    return data


def _allow_deserialization() -> bool:
    # MLflow's MLFLOW_ALLOW_PICKLE_DESERIALIZATION (default true), read as mlflow.sklearn reads it.
    value = os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION")
    if value is None:
        return True
    if value.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"MLFLOW_ALLOW_PICKLE_DESERIALIZATION should be True, False, 1 or 0, got {value!r}")
    return value.lower() in ("true", "1")


def load_sklearn(model_dir: Path, mlmodel: dict[str, Any], types_dir: Path | None = None) -> Any:
    """The estimator of a model folder's ``sklearn`` flavor saved with skops, loaded with the
    flavor's own trusted-type list (what ``mlflow.sklearn.load_model`` does, without importing
    MLflow). Any other folder goes through ``mlflow.sklearn.load_model`` unchanged."""
    flavor = (mlmodel.get("flavors") or {}).get("sklearn") or {}
    if flavor.get("serialization_format") != "skops" or not _allow_deserialization():
        import mlflow.sklearn

        return mlflow.sklearn.load_model(str(model_dir))
    from mlops_serving.skopstypes import import_skops_io

    skops_io = import_skops_io(types_dir)
    return skops_io.load(model_dir / str(flavor["pickled_model"]), trusted=flavor.get("skops_trusted_types"))
