"""The FastAPI application factory: ``create_app(settings)``. Nothing is configured at import time.

Also the two cross-cutting pieces: the request middleware (request id, in-flight gauge, request
metrics, error and access logs) and the ONE table mapping domain errors to responses.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlops_serving import __version__
from mlops_serving import openapi as openapi_doc
from mlops_serving.auth import Authenticator, KeyStore
from mlops_serving.context import CURRENT, REQUEST_ID_HEADER, RequestContext, current, request_id_from
from mlops_serving.dataplane import DataPlane
from mlops_serving.errors import ClientClosedRequestError, ModelInputError, ServingError
from mlops_serving.metrics import ServingMetrics
from mlops_serving.predlog import PredictionLogger
from mlops_serving.routes import health, invocations, lane, predict, v2
from mlops_serving.routes.deps import SECURITY_SCHEMES
from mlops_serving.runtime import ModelManager
from mlops_serving.settings import ServingSettings

log = logging.getLogger("mlops_serving")
access = logging.getLogger("mlops_serving.access")


def endpoint_of(path: str) -> str | None:
    """The ``endpoint`` metric label of a prediction path, None for every other path."""
    if path == "/invocations":
        return "invocations"
    if path == "/predict" or (path.startswith("/models/") and path.endswith("/predict")):
        return "predict"
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        return "v2_infer"
    return None


class ServingApp(FastAPI):
    """FastAPI, except that a prediction request (:func:`mlops_serving.routes.lane.match`) goes
    straight to its route function through :attr:`lane`, past FastAPI's middleware stack and router."""

    lane: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = lane.match(scope) if scope["type"] == "http" and self.lane is not None else None
        if endpoint is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        scope[lane.ENDPOINT] = endpoint
        assert self.lane is not None
        await self.lane(scope, receive, send)


class RequestMiddleware:
    """Pure ASGI middleware (no per-request task, unlike BaseHTTPMiddleware): around FastAPI's router,
    and around the prediction lane (:class:`ServingApp`)."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics, access_log: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                header = value.decode("latin-1")
                break
        ctx = RequestContext(request_id_from(header), endpoint=endpoint_of(scope["path"]))
        token = CURRENT.set(ctx)
        status = 0
        id_header = (REQUEST_ID_HEADER.encode(), ctx.request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), id_header]
                if ctx.endpoint is not None:
                    self.metrics.observe_request(ctx.model, ctx.version, ctx.endpoint, status,
                                                 time.perf_counter() - ctx.started)
            await send(message)

        if ctx.endpoint is not None:
            self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if status == 0:
                body = json.dumps({"error": {"code": "INTERNAL_ERROR",
                                             "message": f"internal error; request id {ctx.request_id}"},
                                   "request_id": ctx.request_id}).encode()
                await send_with_id({"type": "http.response.start", "status": 500,
                                    "headers": [(b"content-type", b"application/json"),
                                                (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
        finally:
            if ctx.endpoint is not None:
                self.metrics.in_flight.dec()
            if self.access_log or status >= 400:
                access.log(
                    logging.WARNING if status >= 500 else logging.INFO,
                    "%s %s %d", scope["method"], scope["path"], status,
                    extra={"status": status, "duration_ms": round((time.perf_counter() - ctx.started) * 1000, 3),
                           "model": ctx.model or None, "version": ctx.version or None},
                )
            CURRENT.reset(token)


def _error_body(path: str, error: ServingError, request_id: str) -> dict[str, Any]:
    if path == "/invocations":  # MLflow's scoring server shape
        return {"error_code": error.code, "message": error.message, "request_id": request_id}
    if path.startswith("/v2"):  # Open Inference Protocol: {"error": "<message>"}
        return {"error": error.message, "request_id": request_id}
    return {"error": {"code": error.code, "message": error.message, "field": error.field}, "request_id": request_id}


def error_response(path: str, exc: Exception) -> Response | None:
    """The one table mapping errors to responses: a :class:`ServingError` gets its status and the
    protocol's error shape, a client that went away 499; None for anything else (a fault: 500)."""
    if isinstance(exc, ClientDisconnect):
        # The client's behaviour, not a fault of ours: INFO, no traceback, its own status (499).
        log.info("client closed the connection before the request body was complete (%s)", path)
        exc = ClientClosedRequestError("client closed the request")
    if not isinstance(exc, ServingError):
        return None
    request_id = current().request_id
    if exc.status_code >= 500 and exc.__cause__ is None:
        log.error("%s: %s", type(exc).__name__, exc.message)
    body = json.dumps(_error_body(path, exc, request_id)).encode()
    return Response(body, status_code=exc.status_code, media_type="application/json", headers=exc.headers())


def install_error_handlers(app: FastAPI) -> None:
    """FastAPI's exception handlers: each turns its error into a :class:`ServingError` or hands it to
    :func:`error_response` as it is."""

    async def serving_error(request: Request, exc: Exception) -> Response:
        response = error_response(request.url.path, exc)
        assert response is not None
        return response

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return await serving_error(request, ModelInputError(f"{where}: {first.get('msg')}", field=where))

    async def http_error(request: Request, exc: Exception) -> Response:
        # Starlette's own answers (no such path, method not allowed) in the protocol's error shape too.
        assert isinstance(exc, StarletteHTTPException)
        error = ServingError(str(exc.detail))
        error.status_code, error.code = exc.status_code, "NOT_FOUND" if exc.status_code == 404 else "HTTP_ERROR"
        response = await serving_error(request, error)
        response.headers.update(exc.headers or {})
        return response

    app.add_exception_handler(ServingError, serving_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(ClientDisconnect, serving_error)
    app.add_exception_handler(RequestValidationError, validation_error)


def _document_security(app: FastAPI, models: list[str]) -> None:
    """Complete the OpenAPI document: the API-key schemes the prediction routes name in their
    ``security``, every status of every operation and one error shape per protocol."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = openapi_doc.complete(build(), models)
            schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: ServingSettings, loader: Callable[..., Any] | None = None) -> FastAPI:
    """The app for ``settings``; ``loader(registry, ref) -> LoadedModel`` replaces the registry
    loader (tests use it to serve hand-made models)."""
    metrics = ServingMetrics()
    store = (
        KeyStore(settings.api_keys_file, settings.api_keys_reload_s)
        if settings.effective_auth == "api-key" and settings.api_keys_file is not None
        else None
    )
    dataplane = DataPlane(
        settings, metrics, ModelManager(settings, metrics, loader), PredictionLogger(settings, metrics),
        Authenticator(store),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if store is None:
            log.warning("API-key auth is OFF (%s): every client may call every model",
                        "MLOPS_SERVING_AUTH=off" if settings.auth == "off" else "default of the embedded store")
        log.info(
            "mlops-serving %s starting: models %s, batching %s, prediction log %s",
            __version__, ", ".join(str(ref) for ref in settings.models),
            f"on ({settings.batch_window_ms:g} ms, {settings.batch_max_rows} rows)" if settings.batching else "off",
            f"{settings.predlog_sample_rate:.0%}" if settings.predlog_sample_rate > 0 else "off",
        )
        dataplane.start()
        grpc_server = None
        if settings.grpc_port is not None:
            from mlops_serving.oip_grpc import service as grpc_service

            grpc_server = await grpc_service.start(dataplane, settings.host, settings.grpc_port, settings.access_log)
        yield
        log.info("shutting down: in-flight requests are done; flushing the prediction log")
        if grpc_server is not None:  # HTTP has drained; gRPC calls in flight get the same budget
            await grpc_server.stop(max(1.0, settings.request_drain_s))
        await dataplane.stop()
        log.info("stopped")

    app = ServingApp(
        title="mlops model server",
        version=__version__,
        description="Real-time inference for registered model versions: the platform's JSON protocol, "
        "MLflow's scoring protocol and the Open Inference Protocol v2.",
        lifespan=lifespan,
    )
    app.state.dataplane = dataplane
    app.state.settings = settings
    install_error_handlers(app)
    for router in (predict.router, invocations.router, v2.router, health.router):  # hot routes first
        app.include_router(router)
    _document_security(app, [ref.name for ref in settings.models])
    app.add_middleware(RequestMiddleware, metrics=metrics, access_log=settings.access_log)
    app.lane = RequestMiddleware(lane.Lane(error_response), metrics=metrics, access_log=settings.access_log)
    return app
