"""The transport-free data plane: which model answers, request limits, predict, and bookkeeping.

Routes call it after parsing; it knows nothing about HTTP. Every prediction goes through
:meth:`DataPlane.predict`: row limit, the model's input dtypes, the model's batcher (or a direct call in the thread pool
when batching is off), the deadline, fault mapping, metrics and the prediction log.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable, Sized
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from mlops_serving.batching import Arrival, MicroBatcher, Predictor
from mlops_serving.context import current
from mlops_serving.errors import (
    ModelFaultError,
    ModelNotReadyError,
    PayloadTooLargeError,
    PredictionTimeoutError,
    ServingError,
)
from mlops_serving.metrics import ServingMetrics
from mlops_serving.parsing import BodyParser
from mlops_serving.predlog import PredictionLogger
from mlops_serving.runtime import LoadedModel, ModelManager, Prediction
from mlops_serving.settings import ServingSettings

if TYPE_CHECKING:
    from mlops_serving.auth import Authenticator

log = logging.getLogger(__name__)
T = TypeVar("T")

INLINE_ROWS = 16
"""Rows up to which a lone request of a fast-path model is predicted on the event loop
(:mod:`mlops_serving.batching`)."""


class DataPlane:
    def __init__(self, settings: ServingSettings, metrics: ServingMetrics, models: ModelManager,
                 predlog: PredictionLogger, auth: Authenticator) -> None:
        self.settings = settings
        self.metrics = metrics
        self.models = models
        self.predlog = predlog
        self.auth = auth
        self.parser = BodyParser(settings.parse_processes)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(4, 2 * len(settings.models)), thread_name_prefix="predict"
        )
        self._predictors: dict[str, Predictor] = {}
        self._stopping = False
        models.on_loaded.append(self._model_loaded)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        # the body-parsing pool starts once every model is ready (_model_loaded): not competing with
        # loading them for the CPU is most of a fast cold start
        self.models.start()
        self.predlog.start()

    async def stop(self) -> None:
        self._stopping = True
        await self.models.stop()
        for predictor in self._predictors.values():
            await predictor.stop()
        await self.predlog.close()
        await self.parser.stop()
        self._executor.shutdown(wait=False)

    def _model_loaded(self, model: LoadedModel) -> None:
        def on_batch(rows: int) -> None:
            self.metrics.observe_batch(model.name, model.version, rows)

        predictor: Predictor
        # a lone request of a forest with the fast path costs ~0.1-0.4 ms: less than a thread hop
        inline_rows = INLINE_ROWS if model.proba_fn is not None else 0
        if self.settings.batching:
            predictor = MicroBatcher(
                model.predict, self._executor, window_s=self.settings.batch_window_ms / 1000,
                max_rows=self.settings.batch_max_rows, on_batch=on_batch, inline_rows=inline_rows,
            )
        else:
            predictor = Predictor(model.predict, self._executor, on_batch=on_batch, inline_rows=inline_rows)
        predictor.start()
        self._predictors[model.name] = predictor
        if len(self._predictors) == len(self.models.slots):
            self.parser.start()

    # -- health -------------------------------------------------------------------------------

    def ready(self) -> tuple[bool, dict[str, str]]:
        ready, reasons = self.models.ready()
        if self._stopping:
            return False, {**reasons, "server": "shutting down"}
        return ready, reasons

    # -- inference ----------------------------------------------------------------------------

    def model(self, name: str | None) -> LoadedModel:
        """The served model ``name`` (the default model when None); 404 or 503 otherwise.

        Records the model in the request context, for the metrics of the request."""
        model = self.models.get(name or self.settings.default_model)
        ctx = current()
        ctx.model, ctx.version = model.name, model.version
        return model

    def arrival(self, model: LoadedModel, server_requests: Sized | None = None) -> Arrival:
        """Announce a request to its model's batcher; wrap body reading, parsing and predict in it.
        ``server_requests``: the requests the server has started and not finished, if it tells."""
        predictor = self._predictors.get(model.name)
        if predictor is None:  # pragma: no cover - a model is registered with its predictor
            raise ModelNotReadyError(f"model {model.name} is not ready")
        return predictor.arrival(server_requests)

    async def parse(self, model: LoadedModel, parse: Callable[..., T], body: bytes, *args: Any) -> T:
        """``parse(body, *args, model.inputs)``, in a parsing process when the body is large (see
        :mod:`mlops_serving.parsing`); a body with more values than MLOPS_SERVING_MAX_ROWS rows can
        hold is refused (413) before any parsing."""
        return await self.parser.parse(body, self.settings.max_rows, model.volume_width, parse, *args,
                                       model.inputs)

    async def predict(self, model: LoadedModel, arrival: Arrival, features: npt.NDArray[np.float64]) -> Prediction:
        ctx = current()
        rows = len(features)
        if rows > self.settings.max_rows:
            raise PayloadTooLargeError(
                f"{rows} rows in one request; at most {self.settings.max_rows} (MLOPS_SERVING_MAX_ROWS)",
                field="rows",
            )
        model.input_schema.check(features)  # the dtypes of the model's signature (integers)
        try:
            prediction = await arrival.submit(features, self.settings.request_timeout_s)
        except TimeoutError as exc:
            raise PredictionTimeoutError(
                f"prediction took longer than {self.settings.request_timeout_s:g}s; request id {ctx.request_id}"
            ) from exc
        except ServingError:
            raise
        except Exception as exc:
            log.error("model %s v%s failed on request %s", model.name, model.version, ctx.request_id,
                      exc_info=exc, extra={"model": model.name, "version": model.version})
            raise ModelFaultError(
                f"model {model.name} v{model.version} failed on this input; request id {ctx.request_id} "
                "(the server log has the details)"
            ) from exc
        self.metrics.observe_prediction(model.name, model.version, prediction.labels, model.is_classifier)
        self.predlog.offer(model, ctx.request_id, ctx.received_at, features, prediction)
        return prediction
