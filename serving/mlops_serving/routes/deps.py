"""Dependencies shared by the routes, as ``Annotated`` aliases.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in a worker thread,
a thread hop per dependency per request. The prediction routes (the hot path) take only the
``Request`` and call :func:`dataplane_of` and :func:`principal_of` directly: FastAPI's
dependency solving costs about a third of a millisecond per request there. They declare
:data:`SECURITY` for the OpenAPI document instead.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import ClientDisconnect
from starlette.types import Message

from mlops_serving.auth import Principal
from mlops_serving.context import BODY_RECEIVED
from mlops_serving.dataplane import DataPlane
from mlops_serving.errors import PayloadTooLargeError, RequestTimeoutError

_api_key = APIKeyHeader(name="x-api-key", auto_error=False, description="API key (`mlops keys create`)")
_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")


async def get_dataplane(request: Request) -> DataPlane:
    dataplane: DataPlane = request.app.state.dataplane
    return dataplane


DataPlaneDep = Annotated[DataPlane, Depends(get_dataplane)]


def dataplane_of(request: Request) -> DataPlane:
    dataplane: DataPlane = request.app.state.dataplane
    return dataplane


def principal_of(request: Request) -> Principal:
    dataplane = dataplane_of(request)
    if not dataplane.auth.enabled:
        return dataplane.auth.authenticate(None, None)
    headers = request.headers
    return dataplane.auth.authenticate(headers.get("x-api-key"), headers.get("authorization"))


SECURITY_SCHEMES: dict[str, Any] = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key", "description": "API key (`mlops keys create`)"},
    "Bearer": {"type": "http", "scheme": "bearer", "description": "API key as a bearer token"},
}
SECURITY: dict[str, Any] = {"security": [{"ApiKey": []}, {"Bearer": []}]}
"""``openapi_extra`` of the authenticated routes that do not use :data:`PrincipalDep`."""


async def get_principal(
    dataplane: DataPlaneDep,
    api_key: Annotated[str | None, Security(_api_key)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Principal:
    return dataplane.auth.authenticate(api_key, f"Bearer {bearer.credentials}" if bearer is not None else None)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The request body; 413 as soon as it is over ``limit`` bytes (declared or streamed), 408 (and
    the connection closed) when it has not all arrived ``timeout_s`` after the headers.

    When the server tells that the whole body has arrived (:data:`~mlops_serving.context.BODY_RECEIVED`:
    a small body comes with its headers), it is taken at once, without arming a deadline."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(
            f"request body of {declared} bytes; at most {limit} (MLOPS_SERVING_MAX_BODY_BYTES)", field="body"
        )
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    if request.scope.get(BODY_RECEIVED):
        message = await receive()
        chunk = _chunk(message, size, limit)
        if not message.get("more_body", False):
            return chunk
        chunks.append(chunk)
        size += len(chunk)
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await receive()
                chunk = _chunk(message, size, limit)
                chunks.append(chunk)
                size += len(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise RequestTimeoutError(
            f"the request body did not arrive within {timeout_s:g}s (MLOPS_SERVING_BODY_TIMEOUT_S); "
            f"{size} bytes received", field="body",
        ) from None
    return b"".join(chunks)


def _chunk(message: Message, size: int, limit: int) -> bytes:
    """The body bytes of a received ASGI message, ``size`` bytes having come before; ClientDisconnect
    when the client went away, 413 beyond ``limit``."""
    if message["type"] != "http.request":
        raise ClientDisconnect()
    chunk: bytes = message.get("body", b"")
    if size + len(chunk) > limit:
        raise PayloadTooLargeError(f"request body over {limit} bytes (MLOPS_SERVING_MAX_BODY_BYTES)", field="body")
    return chunk
