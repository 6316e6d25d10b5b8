"""Dependencies shared by the routes, as ``Annotated`` aliases.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in a worker thread,
a thread hop per dependency per request. The prediction routes (the hot path) take only the
``Request`` and call :func:`dataplane_of` and :func:`principal_of` directly: FastAPI's
dependency solving costs about a third of a millisecond per request there. They declare
:data:`SECURITY` for the OpenAPI document instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from mlops_serving.auth import Principal
from mlops_serving.dataplane import DataPlane
from mlops_serving.errors import PayloadTooLargeError
from mlops_serving.protocols.tabular import LARGE_BODY, check_volume

T = TypeVar("T")

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


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or 413 as soon as it is over ``limit`` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(
            f"request body of {declared} bytes; at most {limit} (MLOPS_SERVING_MAX_BODY_BYTES)", field="body"
        )
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(
                f"request body over {limit} bytes (MLOPS_SERVING_MAX_BODY_BYTES)", field="body"
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_body(body: bytes, max_rows: int, width: int, parse: Callable[..., T], *args: Any) -> T:
    """``parse(body, *args)``: inline for a small body (no thread hop on the hot path); from
    :data:`~mlops_serving.protocols.tabular.LARGE_BODY` bytes on, first a bound on the values it
    holds (``max_rows`` rows of ``width`` features) and then in a worker thread, so that parsing
    and validating a big (or hostile) body never holds up the other requests on the event loop."""
    if len(body) < LARGE_BODY:
        return parse(body, *args)
    check_volume(body, max_rows, width)
    return await asyncio.to_thread(parse, body, *args)
