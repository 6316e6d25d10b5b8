"""Models: loading from the MLflow registry, readiness with retries, and predict. No HTTP here.

A :class:`LoadedModel` is one registered version: the scikit-learn estimator (loaded natively,
not through pyfunc, and fed numpy arrays: the pandas path costs ~60% more per call), the feature
order of its signature and its baseline statistics. :class:`ModelManager` loads every configured
model in the background and keeps retrying with capped exponential backoff, so a missing version
or an unreachable registry leaves the process up and not ready instead of crash-looping.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import gc
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from mlops_drift.baseline import BASELINE_ARTIFACT, BaselineStatistics
from mlops_platform.errors import MlopsError
from mlops_serving.errors import ModelNotFoundError, ModelNotReadyError
from mlops_serving.fastpath import ProbaFn, forest_proba
from mlops_serving.modelcache import CachedVersion, ModelCache, load_sklearn, read_mlmodel, signature_inputs
from mlops_serving.settings import ModelRef, ServingSettings

if TYPE_CHECKING:
    from mlops_platform.registry import Registry
    from mlops_serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

NUMERIC_TYPES = ("double", "float", "long", "integer")
"""Signature column types the server accepts; every feature is fed to the model as float64."""


@dataclass(frozen=True)
class Prediction:
    labels: npt.NDArray[Any]  # one predicted class (or value) per row
    probabilities: npt.NDArray[np.float64] | None  # rows × classes, or None


class ModelLoadError(MlopsError):
    """A version exists but cannot be served (no usable signature, wrong artifact)."""


@dataclass
class LoadedModel:
    name: str
    version: str
    run_id: str
    ref: ModelRef
    estimator: Any
    feature_names: list[str]
    baseline: BaselineStatistics | None
    classes: npt.NDArray[Any] | None = None
    has_proba: bool = False
    proba_argmax: bool = False
    """True when ``classes_[argmax(predict_proba)]`` was checked to equal ``predict`` at load, so one
    predict_proba call gives both outputs."""
    proba_fn: ProbaFn | None = None
    """An exact fast path for predict_proba (see :mod:`mlops_serving.fastpath`), once checked."""
    loaded_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        classes = getattr(self.estimator, "classes_", None)
        self.classes = np.asarray(classes) if classes is not None else None
        self.has_proba = self.classes is not None and callable(getattr(self.estimator, "predict_proba", None))

    @property
    def is_classifier(self) -> bool:
        return self.classes is not None

    @property
    def class_names(self) -> list[str] | None:
        return [str(c) for c in self.classes.tolist()] if self.classes is not None else None

    @property
    def label_kind(self) -> Literal["int", "float", "bool", "str"]:
        """The type of the predicted values, for typed outputs (Open Inference v2)."""
        kind = self.classes.dtype.kind if self.classes is not None else "f"
        return {"i": "int", "u": "int", "f": "float", "b": "bool"}.get(kind, "str")  # type: ignore[return-value]

    def predict(self, features: npt.NDArray[np.float64]) -> Prediction:
        """Predict rows × features in signature order (float64)."""
        probabilities: npt.NDArray[np.float64] | None = None
        if not self.has_proba:
            labels = np.asarray(self.estimator.predict(features))
        else:
            proba = self.proba_fn or self.estimator.predict_proba
            probabilities = np.asarray(proba(features), dtype=np.float64)
            if self.proba_argmax and self.classes is not None:
                labels = self.classes.take(np.argmax(probabilities, axis=1))
            else:
                labels = np.asarray(self.estimator.predict(features))
        if labels.shape[:1] != features.shape[:1] or (
            probabilities is not None and probabilities.shape[:1] != features.shape[:1]
        ):
            raise ValueError(f"the model returned {labels.shape[0]} predictions for {features.shape[0]} rows")
        return Prediction(labels, probabilities)

    def enable_fast_path(self) -> None:
        """Use the fast forest probabilities only if they equal predict_proba exactly on probe rows."""
        candidate = forest_proba(self.estimator) if self.has_proba else None
        if candidate is None:
            return
        probe = self.probe_rows()
        if np.array_equal(candidate(probe), np.asarray(self.estimator.predict_proba(probe), dtype=np.float64)):
            self.proba_fn = candidate
        else:
            log.warning("%s v%s: the fast forest path differs from predict_proba; not using it",
                        self.name, self.version)

    def check_proba_argmax(self) -> None:
        """Use argmax over predict_proba for the labels only if it agrees with predict on probe rows."""
        if not self.has_proba:
            return
        probe = self.probe_rows()
        self.proba_argmax = False
        slow = self.predict(probe)
        self.proba_argmax = True
        fast = self.predict(probe)
        self.proba_argmax = bool(np.array_equal(slow.labels, fast.labels))
        if not self.proba_argmax:
            log.warning("%s v%s: argmax(predict_proba) differs from predict; calling both",
                        self.name, self.version)

    def probe_rows(self) -> npt.NDArray[np.float64]:
        """Rows spread over the training distribution (baseline quantiles), or zeros and ones."""
        if self.baseline is None:
            return np.vstack([np.zeros(len(self.feature_names)), np.ones(len(self.feature_names))])
        edges = []
        for name in self.feature_names:
            try:
                stats = self.baseline.feature(name)
                edges.append([stats.min, *stats.bin_edges, stats.mean, stats.max])
            except KeyError:
                edges.append([0.0])
        depth = max(len(e) for e in edges)
        rows = [[e[min(i, len(e) - 1)] for e in edges] for i in range(depth)]
        # mixed rows: feature j at quantile (i + j) so rows are not all "low" or all "high"
        rows += [[e[(i + j) % len(e)] for j, e in enumerate(edges)] for i in range(depth)]
        return np.asarray(rows, dtype=np.float64)


def load_model(registry: Registry | Callable[[], Registry], ref: ModelRef,
               cache: ModelCache | None = None) -> LoadedModel:
    """Load ``ref``: version, estimator, signature and baseline (blocking).

    The version's files come from ``cache`` when it holds them (a pinned version then needs
    neither the registry nor MLflow: see :mod:`mlops_serving.modelcache`), else from the registry
    into the cache (or into a temporary folder without one). ``registry`` may be a callable that
    builds it, so that a cached load never builds one."""
    get_registry = registry if callable(registry) else lambda: registry
    if cache is not None and ref.version is not None:
        cached = cache.get(ref.name, str(ref.version))
        if cached is not None:
            try:
                return _load_files(ref, cached, cache.types_dir)
            except ModelLoadError:
                raise  # the version itself cannot be served; the registry's copy would say the same
            except Exception as exc:
                log.warning("%s: the cached copy in %s is unusable (%s); downloading it again", ref,
                            cached.model_dir.parent, _reason(exc))
                cache.evict(ref.name, str(ref.version))
    reg = get_registry()
    reg.check_reachable()
    version = (
        reg.get_version(ref.name, version=ref.version)
        if ref.version is not None
        else reg.get_version(ref.name, alias=ref.alias)
    )
    number = str(version.version)
    if cache is not None:
        cached = cache.get(ref.name, number)
        if cached is None:
            try:
                cached = cache.put(reg, ref.name, number, str(version.run_id), BASELINE_ARTIFACT)
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise
                # a read-only cache folder: serve, just without caching
                log.warning("model cache %s not writable (%s); loading %s without it", cache.root, exc, ref)
                cache = None
        if cached is not None:
            return _load_files(ref, cached, cache.types_dir if cache is not None else None)
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
        cached = ModelCache(Path(tmp), reg.tracking_uri).put(reg, ref.name, number, str(version.run_id),
                                                             BASELINE_ARTIFACT)
        return _load_files(ref, cached)


def _load_files(ref: ModelRef, files: CachedVersion, types_dir: Path | None = None) -> LoadedModel:
    """A :class:`LoadedModel` from a version's files on local disk."""
    number = files.version
    uri = f"models:/{ref.name}/{number}"
    mlmodel = read_mlmodel(files.model_dir)
    inputs = signature_inputs(mlmodel)
    baseline: BaselineStatistics | None = None
    if files.baseline is not None:
        baseline = BaselineStatistics.model_validate(files.baseline)
    else:
        log.warning("%s v%s has no baseline statistics (%s); serving it without them", ref.name, number,
                    files.baseline_missing_reason)
    if inputs and inputs[0].name is not None:
        names = [str(s.name) for s in inputs]
        bad = [f"{s.name} ({s.type})" for s in inputs if s.type not in NUMERIC_TYPES]
        if bad:
            raise ModelLoadError(f"{uri}: only numeric features can be served; signature has {', '.join(bad)}")
    elif baseline is not None:
        names = list(baseline.feature_names)
        log.warning("%s has no column signature; using the feature order of its baseline", uri)
    else:
        raise ModelLoadError(f"{uri}: no column-based signature and no baseline: the feature order is unknown")
    if baseline is not None and list(baseline.feature_names) != names:
        log.warning("%s: baseline features differ from the signature; the signature wins", uri)
    estimator = load_sklearn(files.model_dir, mlmodel, types_dir)
    expected = getattr(estimator, "n_features_in_", None)
    if expected is not None and int(expected) != len(names):
        raise ModelLoadError(f"{uri}: the estimator expects {expected} features, the signature names {len(names)}")
    model = LoadedModel(
        name=ref.name, version=number, run_id=files.run_id, ref=ref, estimator=estimator,
        feature_names=names, baseline=baseline,
    )
    model.enable_fast_path()
    model.check_proba_argmax()  # also warms the estimator up
    return model


@dataclass
class ModelSlot:
    """One configured model and its loading state."""

    ref: ModelRef
    state: Literal["loading", "ready", "failed"] = "loading"
    reason: str = "loading"
    attempts: int = 0
    model: LoadedModel | None = None


class ModelManager:
    """Loads the configured models in the background and answers which ones are ready."""

    def __init__(self, settings: ServingSettings, metrics: ServingMetrics,
                 loader: Callable[..., LoadedModel] | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.slots = {ref.name: ModelSlot(ref) for ref in settings.models}
        self._loader = loader
        self._registry: Registry | None = None
        self._registry_lock = threading.Lock()
        self._cache = ModelCache(settings.effective_model_cache_dir, settings.effective_tracking_uri)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader")
        self._tasks: list[asyncio.Task[None]] = []
        self.on_loaded: list[Any] = []  # callbacks(LoadedModel), e.g. to create a batcher
        for name in self.slots:
            metrics.model_configured(name)

    def start(self) -> None:
        for slot in self.slots.values():
            self._tasks.append(asyncio.create_task(self._load_until_ready(slot), name=f"load-{slot.ref.name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _get_registry(self) -> Registry:
        with self._registry_lock:
            if self._registry is None:
                from mlops_platform.registry import Registry

                self._registry = Registry(self.settings)
            return self._registry

    def _load(self, ref: ModelRef) -> LoadedModel:
        if self._loader is None:
            return load_model(self._get_registry, ref, self._cache)
        loaded: LoadedModel = self._loader(self._get_registry(), ref)
        return loaded

    async def _load_until_ready(self, slot: ModelSlot) -> None:
        delay = self.settings.load_retry_initial_s
        loop = asyncio.get_running_loop()
        while True:
            slot.attempts += 1
            started = time.monotonic()
            try:
                model = await loop.run_in_executor(self._executor, self._load, slot.ref)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                slot.state = "failed"
                slot.reason = _reason(exc)
                self.metrics.load_failed(slot.ref.name)
                gc.enable()  # retries may go on for long: no start-up shortcut while they do
                log.warning(
                    "cannot load %s (attempt %d): %s; retrying in %.1fs",
                    slot.ref, slot.attempts, slot.reason, delay,
                    exc_info=not isinstance(exc, MlopsError),
                    extra={"model": slot.ref.name, "attempt": slot.attempts},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.load_retry_max_s)
                continue
            for callback in self.on_loaded:
                callback(model)
            slot.model = model
            slot.state = "ready"
            slot.reason = "ready"
            _freeze_heap()
            self.metrics.model_loaded(model.name, model.version, model.run_id)
            log.info(
                "serving %s v%s (run %s, %d features, %s) loaded in %.1fs",
                model.name, model.version, model.run_id, len(model.feature_names),
                "classes " + ", ".join(model.class_names) if model.class_names else "regressor",
                time.monotonic() - started,
                extra={"model": model.name, "version": model.version},
            )
            return

    # -- queries --------------------------------------------------------------------------------

    def get(self, name: str) -> LoadedModel:
        slot = self.slots.get(name)
        if slot is None:
            raise ModelNotFoundError(
                f"model {name!r} is not served here; served: {', '.join(self.slots)}", field="model"
            )
        if slot.model is None:
            raise ModelNotReadyError(f"model {slot.ref} is not ready: {slot.reason}")
        return slot.model

    def ready(self) -> tuple[bool, dict[str, str]]:
        reasons = {name: slot.reason for name, slot in self.slots.items()}
        return all(slot.model is not None for slot in self.slots.values()), reasons


def _freeze_heap() -> None:
    """Move everything allocated so far (pandas, scikit-learn, the models: hundreds of thousands of
    objects) out of the garbage collector's reach. Otherwise every full collection walks them all,
    a pause of hundreds of milliseconds under load that shows up as the p99 latency.

    The server starts with the collector off (:func:`mlops_serving.server.run`): importing the
    libraries runs several full collections that find next to nothing, and a last one here would
    cost a second of a loaded machine's start-up to free a few thousand cyclic objects; those stay
    frozen instead (well under a megabyte). The collector is on from here on."""
    gc.freeze()
    gc.enable()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, MlopsError):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:500]
