"""The Open Inference Protocol's gRPC service (``inference.GRPCInferenceService``) on its own port.

It runs on the HTTP server's event loop (``grpc.aio``), started and stopped by the app's
lifespan, and shares everything behind the routes with HTTP: the data plane (readiness, the
batcher, limits, deadline), the API keys (metadata ``x-api-key`` or ``authorization: Bearer``),
the metrics (``endpoint="v2_grpc"``, ``code`` = the HTTP status the same error has on REST, so
the canary analysis and the alerts count both alike) and the prediction log. Translation of
messages lives in :mod:`mlops_serving.protocols.v2_grpc`; this module only does the transport.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc

from mlops_platform import metric_names as mn
from mlops_serving import __version__
from mlops_serving.context import CURRENT, REQUEST_ID_HEADER, RequestContext, request_id_from
from mlops_serving.dataplane import DataPlane
from mlops_serving.errors import ModelNotFoundError, ModelNotReadyError, ServingError
from mlops_serving.oip_grpc import grpc_predict_v2_pb2 as pb
from mlops_serving.oip_grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from mlops_serving.protocols import v2_grpc
from mlops_serving.runtime import LoadedModel

log = logging.getLogger("mlops_serving")
access = logging.getLogger("mlops_serving.access")

ENDPOINT = mn.SERVING_ENDPOINT_V2_GRPC


def _check_version(model: LoadedModel, version: str) -> None:
    if version and version != model.version:
        raise ModelNotFoundError(
            f"model {model.name} version {version} is not served here; serving version {model.version}",
            field="version",
        )


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, dataplane: DataPlane, access_log: bool) -> None:
        self.dataplane = dataplane
        self.metrics = dataplane.metrics
        self.access_log = access_log

    async def _call(self, method: str, context: grpc.aio.ServicerContext[Any, Any], handler: Any,
                    prediction: bool = False) -> Any:
        """Run ``handler(ctx)`` with a request context, the metrics, the logs and error mapping."""
        metadata = {key: value for key, value in (context.invocation_metadata() or ())
                    if isinstance(value, str)}
        ctx = RequestContext(request_id_from(metadata.get(REQUEST_ID_HEADER)),
                             endpoint=ENDPOINT if prediction else None)
        token = CURRENT.set(ctx)
        status = 200
        error: ServingError | None = None
        if prediction:
            self.metrics.in_flight.inc()
        try:
            return await handler(metadata)
        except ServingError as exc:
            status, error = exc.status_code, exc
        except Exception:
            status = 500
            log.exception("unhandled error on gRPC %s", method)
            error = ServingError(f"internal error; request id {ctx.request_id}")
        finally:
            if prediction:
                self.metrics.in_flight.dec()
                self.metrics.observe_request(ctx.model, ctx.version, ENDPOINT, status,
                                             time.perf_counter() - ctx.started)
            if self.access_log or status >= 400:
                access.log(
                    logging.WARNING if status >= 500 else logging.INFO, "gRPC %s %d", method, status,
                    extra={"status": status, "duration_ms": round((time.perf_counter() - ctx.started) * 1000, 3),
                           "model": ctx.model or None, "version": ctx.version or None},
                )
            CURRENT.reset(token)
            if error is None:
                context.set_trailing_metadata(((REQUEST_ID_HEADER, ctx.request_id),))
        assert error is not None
        if status >= 500 and status != 503 and error.__cause__ is None:
            log.error("%s: %s", type(error).__name__, error.message)
        code = getattr(grpc.StatusCode, v2_grpc.GRPC_CODES.get(status, "INTERNAL"))
        await context.abort(code, f"{error.message} (request id {ctx.request_id})",
                            trailing_metadata=((REQUEST_ID_HEADER, ctx.request_id),))

    def _principal(self, metadata: dict[str, str]) -> Any:
        auth = self.dataplane.auth
        return auth.authenticate(metadata.get("x-api-key"), metadata.get("authorization"))

    # -- health and metadata --------------------------------------------------------------------

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        ready, _ = self.dataplane.ready()
        return pb.ServerReadyResponse(ready=ready)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        return pb.ServerMetadataResponse(name="mlops-serving", version=__version__)

    async def ModelReady(self, request: Any, context: Any) -> Any:
        async def handle(metadata: dict[str, str]) -> Any:
            try:
                model = self.dataplane.models.get(request.name)
            except ModelNotReadyError:
                return pb.ModelReadyResponse(ready=False)
            _check_version(model, request.version)
            return pb.ModelReadyResponse(ready=True)

        return await self._call("ModelReady", context, handle)

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        async def handle(metadata: dict[str, str]) -> Any:
            self._principal(metadata).authorize(request.name)
            model = self.dataplane.models.get(request.name)
            _check_version(model, request.version)
            return v2_grpc.model_metadata(model)

        return await self._call("ModelMetadata", context, handle)

    # -- inference ------------------------------------------------------------------------------

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        async def handle(metadata: dict[str, str]) -> Any:
            dataplane = self.dataplane
            self._principal(metadata).authorize(request.model_name)
            model = dataplane.model(request.model_name)
            _check_version(model, request.model_version)
            with dataplane.arrival(model) as arrival:
                parsed = v2_grpc.parse_infer(request, model)
                prediction = await dataplane.predict(model, arrival, parsed.features)
            current = CURRENT.get()
            return v2_grpc.render_infer(model, prediction, parsed, current.request_id if current else "")

        return await self._call("ModelInfer", context, handle, prediction=True)


async def start(dataplane: DataPlane, host: str, port: int, access_log: bool) -> grpc.aio.Server:
    """The gRPC server on ``host:port`` (on the running event loop); messages above the HTTP body
    limit are refused by gRPC itself (RESOURCE_EXHAUSTED)."""
    limit = dataplane.settings.max_body_bytes
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", limit),
                                      ("grpc.so_reuseport", 0)])
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        InferenceService(dataplane, access_log), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if server.add_insecure_port(address) == 0:  # pragma: no cover - grpc raises in recent versions
        raise OSError(f"cannot listen on {address} for gRPC")
    await server.start()
    log.info("Open Inference Protocol gRPC on %s", address, extra={"grpc_port": port})
    return server

