"""Models: loading from the MLflow registry, readiness with retries, and predict. No HTTP here.

A :class:`LoadedModel` is one registered version: a scikit-learn estimator (loaded natively,
not through pyfunc, and fed numpy arrays: the pandas path costs ~60% more per call; skops or
cloudpickle alike) or, for any other flavour, the ``python_function`` model MLflow loads; its
input contract (:mod:`mlops_serving.signature`: column, tensor or no signature) and its baseline
statistics, if it has any. :class:`ModelManager` loads every configured model in the background
and keeps retrying with capped exponential backoff, so a missing version or an unreachable
registry leaves the process up and not ready instead of crash-looping.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import functools
import gc
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from mlops_drift.baseline import BASELINE_ARTIFACT, BaselineStatistics
from mlops_platform.errors import MlopsError
from mlops_serving.errors import ModelInputError, ModelNotFoundError, ModelNotReadyError
from mlops_serving.fastpath import SMALL_BATCH, CompiledForest, ProbaFn, by_rows, forest_proba
from mlops_serving.modelcache import CachedVersion, ModelCache, load_sklearn, read_mlmodel
from mlops_serving.protocols.tabular import ModelInputs
from mlops_serving.settings import ModelRef, ServingSettings
from mlops_serving.signature import InputSchema, from_signature, mlmodel_signature

if TYPE_CHECKING:
    from mlops_platform.registry import Registry
    from mlops_serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

ATTACH_DELAY_S = 1.0
"""How long after the models are ready the estimators of compiled forests start loading: the first
requests (a new pod's, a cold-start benchmark's) and the body-parsing processes' start-up have the
CPU to themselves meanwhile."""

ATTACH_STOP_WAIT_S = 2.0
"""How long shutting down waits for an estimator being loaded (an import is not interruptible; the
thread is a daemon, so a longer one is abandoned)."""

UNKNOWN_WIDTH_BOUND = 4096
"""Features per row assumed when bounding a large body of a model whose width nobody knows."""

FLAVOR_SKLEARN = "sklearn"
FLAVOR_PYFUNC = "python_function"

_OUTPUT_KINDS: dict[str, Literal["int", "float", "bool", "str"]] = {
    "i": "int", "u": "int", "f": "float", "b": "bool",
}

# What predicts a model's batches (``predict_path`` of ``/v2/models/{name}``, and the log).
PATH_PYFUNC = "python_function"
PATH_ESTIMATOR = "estimator"
PATH_TREES = "scikit-learn trees"
PATH_COMPILED = "compiled forest"
PATH_COMPILED_LOADING = f"compiled forest (scikit-learn estimator loading, for batches above {SMALL_BATCH} rows)"
PATH_SPLIT = f"compiled forest up to {SMALL_BATCH} rows, scikit-learn trees above"


@dataclass(frozen=True)
class Prediction:
    labels: npt.NDArray[Any]  # one predicted class (or value) per row
    probabilities: npt.NDArray[np.float64] | None  # rows × classes, or None


class ModelLoadError(MlopsError):
    """A version exists but cannot be served (no usable signature, wrong artifact)."""


class ModelRejectedInputError(ModelInputError):
    """A model without a signature refused its input (it is the only validator): the client's 422."""


@dataclass
class LoadedModel:
    name: str
    version: str
    run_id: str
    ref: ModelRef
    estimator: Any
    """The scikit-learn estimator, or None for a pyfunc model (:attr:`pyfunc`)."""
    feature_names: list[str]
    """Features in model order (empty: a model without signature whose width nobody knows)."""
    baseline: BaselineStatistics | None
    schema: InputSchema | None = None
    """The input contract; None: a column schema of :attr:`feature_names` (float64)."""
    pyfunc: Any = None
    """The ``mlflow.pyfunc`` model of a version that has no scikit-learn flavour."""
    flavor: str = FLAVOR_SKLEARN
    output_kind: Literal["int", "float", "bool", "str"] | None = None
    """The type of the predictions of a model without classes (from the output signature)."""
    classes: npt.NDArray[Any] | None = None
    has_proba: bool = False
    proba_argmax: bool = False
    """True when ``classes_[argmax(predict_proba)]`` was checked to equal ``predict`` at load, so one
    predict_proba call gives both outputs."""
    proba_fn: ProbaFn | None = None
    """An exact fast path for predict_proba (see :mod:`mlops_serving.fastpath`), once checked."""
    predict_path: str = PATH_ESTIMATOR
    """What predicts (one of the ``PATH_*`` constants), for the metadata and the log."""
    estimator_loader: Callable[[], Any] | None = None
    """Of a forest served from its compiled arrays: loads its scikit-learn estimator, whose trees
    predict large batches faster (:meth:`attach_estimator`, in the background once ready)."""
    loaded_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.schema is None:
            self.schema = InputSchema("columns", tuple(self.feature_names),
                                      tuple("float64" for _ in self.feature_names), names_known=True)
        if self.pyfunc is not None:
            self.predict_path = PATH_PYFUNC
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
    def input_schema(self) -> InputSchema:
        assert self.schema is not None  # set in __post_init__
        return self.schema

    @property
    def volume_width(self) -> int:
        """Features per row for the body-size bound of large requests."""
        return len(self.feature_names) or UNKNOWN_WIDTH_BOUND

    @cached_property
    def inputs(self) -> ModelInputs:
        """What parsing a request needs (given to the body parser instead of the whole model); read
        on the first request, once loading has set every field."""
        return ModelInputs(self.name, list(self.feature_names), self.has_proba, self.input_schema, self.volume_width)

    @property
    def label_kind(self) -> Literal["int", "float", "bool", "str"]:
        """The type of the predicted values, for typed outputs (Open Inference v2)."""
        if self.classes is None and self.output_kind is not None:
            return self.output_kind
        kind = self.classes.dtype.kind if self.classes is not None else "f"
        return _OUTPUT_KINDS.get(kind, "str")

    def predict(self, features: npt.NDArray[np.float64]) -> Prediction:
        """Predict rows × features in model order (float64)."""
        if self.pyfunc is not None:
            return self._predict_pyfunc(features)
        try:
            return self._predict_estimator(features)
        except (ValueError, TypeError, KeyError) as exc:
            if self.input_schema.validated:
                raise
            raise _rejected(exc) from exc

    def _predict_pyfunc(self, features: npt.NDArray[np.float64]) -> Prediction:
        from mlflow.exceptions import MlflowException

        try:
            output = self.pyfunc.predict(self.input_schema.model_input(features))
        except MlflowException as exc:  # the pyfunc's own schema enforcement
            if exc.error_code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST"):
                raise _rejected(exc) from exc
            raise
        except (ValueError, TypeError, KeyError) as exc:
            if self.input_schema.validated:
                raise
            raise _rejected(exc) from exc
        labels = _as_labels(output)
        if labels.shape[:1] != features.shape[:1]:
            raise ValueError(f"the model returned {labels.shape[0]} predictions for {features.shape[0]} rows")
        return Prediction(labels, None)

    def _predict_estimator(self, features: npt.NDArray[np.float64]) -> Prediction:
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
            self.predict_path = PATH_TREES
        else:
            log.warning("%s v%s: the fast forest path differs from predict_proba; not using it",
                        self.name, self.version)

    def attach_estimator(self) -> bool:
        """Load the scikit-learn estimator of a forest served from its compiled arrays, and let its
        trees predict the batches above :data:`~mlops_serving.fastpath.SMALL_BATCH` rows (the
        compiled forest is faster below, the trees' compiled code above), as in the process that
        downloaded the version; only if they give exactly the compiled forest's probabilities on the
        check rows. Blocking (it imports scikit-learn: seconds); the model serves meanwhile, every
        batch with the compiled forest. True when the trees are in use."""
        loader, compiled = self.estimator_loader, self.estimator
        if loader is None or not isinstance(compiled, CompiledForest):
            return False
        self.estimator_loader = None
        try:
            estimator = loader()
            trees = forest_proba(estimator)
            rows = _check_rows(self.probe_rows())
            expected = compiled.predict_proba(rows)
            same = trees is not None and np.array_equal(trees(rows), expected) and np.array_equal(
                np.asarray(estimator.predict_proba(rows), dtype=np.float64), expected)
        except Exception as exc:
            log.warning("%s v%s: cannot load the scikit-learn estimator (%s); the compiled forest predicts every "
                        "batch", self.name, self.version, _reason(exc), exc_info=not isinstance(exc, MlopsError),
                        extra={"model": self.name, "version": self.version})
            self.predict_path = PATH_COMPILED
            return False
        if trees is None or not same:
            log.warning("%s v%s: the estimator's trees differ from the compiled forest; the compiled forest "
                        "predicts every batch", self.name, self.version,
                        extra={"model": self.name, "version": self.version})
            self.predict_path = PATH_COMPILED
            return False
        self.proba_fn = by_rows(compiled.predict_proba, trees)
        self.predict_path = PATH_SPLIT
        return True

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
        if cached is not None and cached.baseline is None:
            cached = _with_new_baseline(get_registry, cache, cached)
        if cached is not None:
            try:
                return _load_files(ref, cached, cache.types_dir, cache)
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
            return _load_files(ref, cached, cache.types_dir if cache is not None else None, cache)
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
        cached = ModelCache(Path(tmp), reg.tracking_uri).put(reg, ref.name, number, str(version.run_id),
                                                             BASELINE_ARTIFACT)
        return _load_files(ref, cached)


def _with_new_baseline(get_registry: Callable[[], Registry], cache: ModelCache,
                       cached: CachedVersion) -> CachedVersion:
    """A cached version without baseline, with the one attached since (if any). An unreachable
    registry leaves it as cached: the model is served, without drift statistics until a restart."""
    try:
        registry = get_registry()
        registry.check_reachable()
        return cache.refresh_baseline(registry, cached, BASELINE_ARTIFACT)
    except MlopsError as exc:
        log.warning("%s v%s: cached without baseline statistics, and the registry cannot say whether one was "
                    "attached since (%s)", cached.name, cached.version, exc)
        return cached


def _load_files(ref: ModelRef, files: CachedVersion, types_dir: Path | None = None,
                cache: ModelCache | None = None) -> LoadedModel:
    """A :class:`LoadedModel` from a version's files on local disk: a forest from its compiled
    arrays when the cache holds them (no scikit-learn import), else the estimator, whose compiled
    arrays are then added to ``cache`` for the next start."""
    number = files.version
    uri = f"models:/{ref.name}/{number}"
    mlmodel = read_mlmodel(files.model_dir)
    signature = mlmodel_signature(mlmodel)
    baseline: BaselineStatistics | None = None
    if files.baseline is not None:
        baseline = BaselineStatistics.model_validate(files.baseline)
    flavors = dict(mlmodel.get("flavors") or {})
    estimator = pyfunc = None
    compiled: CompiledForest | None = None
    if FLAVOR_SKLEARN in flavors and files.compiled is not None:
        try:
            compiled = CompiledForest.load(files.compiled)
        except Exception as exc:  # written by another release, or damaged: load the estimator instead
            log.warning("%s: the compiled forest %s is unusable (%s); loading the estimator", uri, files.compiled,
                        _reason(exc))
    if compiled is not None:
        estimator = compiled
        flavor = FLAVOR_SKLEARN
    elif FLAVOR_SKLEARN in flavors:
        estimator = load_sklearn(files.model_dir, mlmodel, types_dir)
        flavor = FLAVOR_SKLEARN
    elif FLAVOR_PYFUNC in flavors:
        import mlflow.pyfunc

        pyfunc = mlflow.pyfunc.load_model(str(files.model_dir))
        loader = flavors[FLAVOR_PYFUNC].get("loader_module") if isinstance(flavors[FLAVOR_PYFUNC], dict) else None
        flavor = f"{FLAVOR_PYFUNC} ({loader})" if loader else FLAVOR_PYFUNC
    else:
        raise ModelLoadError(f"{uri}: flavours {', '.join(flavors) or 'none'}; a model needs the "
                             f"{FLAVOR_PYFUNC} flavour (or {FLAVOR_SKLEARN}) to be served")
    try:
        schema = from_signature(signature, baseline.feature_names if baseline is not None else None,
                                estimator, uri)
    except MlopsError as exc:
        raise ModelLoadError(str(exc)) from exc
    names = list(schema.feature_names)
    if baseline is not None and names and list(baseline.feature_names) != names:
        log.warning("%s: baseline features differ from the signature; the signature wins", uri)
    expected = getattr(estimator, "n_features_in_", None)
    if expected is not None and names and int(expected) != len(names):
        raise ModelLoadError(f"{uri}: the estimator expects {expected} features, the signature names {len(names)}")
    model = LoadedModel(
        name=ref.name, version=number, run_id=files.run_id, ref=ref, estimator=estimator,
        feature_names=names, baseline=baseline, schema=schema, pyfunc=pyfunc, flavor=flavor,
        output_kind=_output_kind(signature),
    )
    if compiled is not None:
        # checked against the estimator before it was stored (_store_compiled)
        model.proba_fn = compiled.predict_proba
        model.proba_argmax = True
        model.predict_path = PATH_COMPILED_LOADING
        model.estimator_loader = functools.partial(load_sklearn, files.model_dir, mlmodel, types_dir)
        model.predict(model.probe_rows())  # warm-up
    elif estimator is not None and names:
        model.enable_fast_path()
        model.check_proba_argmax()  # also warms the estimator up
        if cache is not None and model.proba_fn is not None and model.proba_argmax:
            checked = _store_compiled(cache, files, model)
            if checked is not None:  # faster on small batches, as in the next start
                model.proba_fn = by_rows(checked.predict_proba, model.proba_fn)
                model.predict_path = PATH_SPLIT
    return model


def _store_compiled(cache: ModelCache, files: CachedVersion, model: LoadedModel) -> CompiledForest | None:
    """Add the forest's compiled arrays to the cache entry, if they give exactly the estimator's
    probabilities and labels on the probe rows and on rows spread between each feature's bounds."""
    compiled = CompiledForest.from_estimator(model.estimator)
    if compiled is None:
        return None
    rows = _check_rows(model.probe_rows())
    expected = np.asarray(model.estimator.predict_proba(rows), dtype=np.float64)
    if not (np.array_equal(compiled.predict_proba(rows), expected)
            and np.array_equal(compiled.predict(rows), np.asarray(model.estimator.predict(rows)))):
        log.warning("%s v%s: the compiled forest differs from the estimator; not cached", model.name, model.version)
        return None
    cache.put_compiled(files, compiled.save)
    return compiled


def _check_rows(probe: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The probe rows, rows spread between each feature's bounds and rows beyond them: what the
    compiled forest is checked on against the estimator."""
    low, high = probe.min(axis=0), probe.max(axis=0)
    spread = np.random.default_rng(0).uniform(size=(256, probe.shape[1]))
    return np.asarray(np.vstack([probe, low + (high - low) * spread, low - 1.0, high + 1.0]), dtype=np.float64)


def _output_kind(signature: Any) -> Literal["int", "float", "bool", "str"] | None:
    outputs = getattr(signature, "outputs", None)
    if outputs is None or len(outputs.inputs) != 1:
        return None
    try:
        dtype = np.dtype(outputs.numpy_types()[0])
    except Exception:  # a type numpy has no dtype for
        return None
    return _OUTPUT_KINDS.get(dtype.kind, "str")


def _as_labels(output: Any) -> npt.NDArray[Any]:
    """A pyfunc's output as one value per row (or a rows × outputs array)."""
    if hasattr(output, "to_numpy"):  # pandas DataFrame or Series
        output = output.to_numpy()
    array = np.asarray(output)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim == 0:
        array = array.reshape(1)
    return array


def _rejected(exc: BaseException) -> ModelRejectedInputError:
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    return ModelRejectedInputError(f"the model rejected the input ({type(exc).__name__}): {text}", field="body")


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
        self._source: Registry | None = None
        self._registry_lock = threading.Lock()
        self._cache = ModelCache(settings.effective_model_cache_dir, settings.effective_tracking_uri)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader")
        self._tasks: list[asyncio.Task[None]] = []
        self._attach: list[LoadedModel] = []  # ready models whose estimator loads in the background
        self._attach_lock = threading.Lock()
        self._attaching = False  # the background thread is on (it takes _attach until empty)
        self._attach_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.on_loaded: list[Any] = []  # callbacks(LoadedModel), e.g. to create a batcher
        for name in self.slots:
            metrics.model_configured(name)

    def start(self) -> None:
        for slot in self.slots.values():
            self._tasks.append(asyncio.create_task(self._load_until_ready(slot), name=f"load-{slot.ref.name}"))

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._attach_thread is not None and self._attach_thread.is_alive():
            await asyncio.to_thread(self._attach_thread.join, ATTACH_STOP_WAIT_S)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _get_registry(self) -> Registry:
        with self._registry_lock:
            if self._registry is None:
                from mlops_platform.registry import Registry

                self._registry = Registry(self.settings)
            return self._registry

    def _get_source(self) -> Registry:
        """What loading asks, without ``import mlflow`` where it can: MLflow's REST API over HTTP
        (:mod:`mlops_platform.registry_http`), the embedded store read directly
        (:mod:`mlops_platform.registry_sqlite`); else MLflow's client (the HTTP one falls back to it)."""
        with self._registry_lock:
            if self._source is None:
                from mlops_platform import registry_http
                from mlops_platform.registry_sqlite import SqliteRegistry

                if registry_http.usable(self.settings):
                    self._source = registry_http.HttpRegistry(self.settings, self._get_registry)
                else:
                    self._source = SqliteRegistry.open(self.settings)
        return self._source if self._source is not None else self._get_registry()

    def _load(self, ref: ModelRef) -> LoadedModel:
        if self._loader is None:
            return load_model(self._get_source, ref, self._cache)
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
                "serving %s v%s (run %s, %s, %s; %s; %s) loaded in %.1fs",
                model.name, model.version, model.run_id, model.flavor, model.input_schema.describe(),
                "classes " + ", ".join(model.class_names) if model.class_names else "no classes",
                "baseline attached" if model.baseline is not None else "no baseline: no drift monitoring",
                time.monotonic() - started,
                extra={"model": model.name, "version": model.version},
            )
            if model.baseline is None:
                log.warning("%s v%s has no baseline statistics: no drift monitoring until one is attached "
                            "(mlops baseline create %s --version %s --data FILE)", model.name, model.version,
                            model.name, model.version, extra={"model": model.name, "version": model.version})
            if model.estimator_loader is not None:
                self._attach.append(model)
            self._attach_estimators()
            return

    def _attach_estimators(self) -> None:
        """Once no model is in its first load (so after the body-parsing pool started, when they are
        all ready), load the estimators of the forests served from their compiled arrays in one
        background thread (:meth:`LoadedModel.attach_estimator`), :data:`ATTACH_DELAY_S` later:
        readiness never waits for it."""
        with self._attach_lock:
            if not self._attach or self._attaching or any(s.state == "loading" for s in self.slots.values()):
                return
            self._attaching = True
            thread = self._attach_thread = threading.Thread(target=self._attach_all, name="estimator-loader",
                                                            daemon=True)
        thread.start()

    def _attach_all(self) -> None:
        """The background thread of :meth:`_attach_estimators`, at the lowest CPU priority (this
        thread only), so the event loop and the parsing processes keep the CPU; the collector off
        while scikit-learn's modules load, and what they allocated frozen afterwards, as at start-up
        (:func:`_freeze_heap`): the interpreter lock is all the event loop waits for, a few ms at a
        time. A model that becomes ready meanwhile (after failed loads) is taken too."""
        with contextlib.suppress(AttributeError, OSError):  # Linux: a thread's id is a process id for setpriority
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        self._stopping.wait(ATTACH_DELAY_S)
        while True:
            with self._attach_lock:
                if not self._attach or self._stopping.is_set():
                    self._attaching = False
                    return
                model = self._attach.pop(0)
            started = time.monotonic()
            gc.disable()
            try:
                attached = model.attach_estimator()
            finally:
                gc.freeze()
                gc.enable()
            if attached:
                log.info("%s v%s: scikit-learn estimator loaded in the background in %.1fs; %s", model.name,
                         model.version, time.monotonic() - started, model.predict_path,
                         extra={"model": model.name, "version": model.version})

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
