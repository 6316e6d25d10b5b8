"""The prediction routes' direct dispatch: a ``POST`` to a prediction path goes straight to its route
function, without FastAPI's middleware stack, router and exception middlewares.

The route functions are the ones FastAPI registers (:mod:`~mlops_serving.routes.predict`,
:mod:`~mlops_serving.routes.invocations`, :mod:`~mlops_serving.routes.v2`): they take only the
``Request`` and their path parameters, so calling them here runs exactly the same code, and FastAPI
keeps them for the OpenAPI document. Their errors become responses through the app's one error table
(``on_error``). Every other request — another method, a trailing slash, a path with more segments —
goes to FastAPI, which answers it (405, redirect, 404) as before.

At one connection, FastAPI's layers cost about as much per request as a one-row forest prediction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from mlops_serving.routes import invocations, predict, v2

Endpoint = Callable[[Request], Awaitable[Response]]
ErrorTable = Callable[[str, Exception], Response | None]


def match(scope: Scope) -> Endpoint | None:
    """The route function of a prediction request (``POST``), its path parameters bound; None for any
    other request. A ``{name}`` matches one non-empty path segment, as in FastAPI."""
    if scope["method"] != "POST":
        return None
    path: str = scope["path"]
    if path == "/invocations":
        return invocations.invocations
    if path == "/predict":
        return predict.predict
    parts = path.split("/")
    if len(parts) == 4 and parts[1] == "models" and parts[3] == "predict" and parts[2]:  # /models/{name}/predict
        name = parts[2]
        return lambda request: predict.predict_model(name, request)
    if len(parts) >= 5 and parts[1] == "v2" and parts[2] == "models" and parts[-1] == "infer" and parts[3]:
        name = parts[3]
        if len(parts) == 5:  # /v2/models/{name}/infer
            return lambda request: v2.infer(name, request)
        if len(parts) == 7 and parts[4] == "versions" and parts[5]:  # /v2/models/{name}/versions/{version}/infer
            version = parts[5]
            return lambda request: v2.infer_version(name, version, request)
    return None


ENDPOINT = "mlops_serving.endpoint"
"""The scope key under which the app hands :class:`Lane` the route function :func:`match` found."""


class Lane:
    """An ASGI app answering a prediction request with the route function in ``scope[ENDPOINT]``."""

    def __init__(self, on_error: ErrorTable) -> None:
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint: Endpoint = scope[ENDPOINT]
        try:
            response = await endpoint(Request(scope, receive))
        except Exception as exc:
            answer = self.on_error(scope["path"], exc)
            if answer is None:
                raise
            response = answer
        await response(scope, receive, send)
