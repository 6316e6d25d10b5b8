"""Per-request context: the request id (for logs and responses) and the labels of its metrics."""

from __future__ import annotations

import random
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass, field

REQUEST_ID_HEADER = "x-request-id"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


@dataclass
class RequestContext:
    request_id: str
    endpoint: str | None = None  # set for prediction requests: a value of metric_names.SERVING_ENDPOINTS
    model: str = ""
    version: str = ""
    received_at: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)


SERVER_REQUESTS = "mlops_serving.server_requests"
"""ASGI scope key: the requests the HTTP server has started and not finished, a sized collection
(the server's, shared by every request; see :mod:`mlops_serving.server`). The batcher reads its
length to tell a lone request from one of a burst (:mod:`mlops_serving.batching`)."""

BODY_RECEIVED = "mlops_serving.body_received"
"""ASGI scope key, set (True) by the HTTP server once a request's whole body has arrived: reading it
then cannot wait, so it needs no deadline (see :func:`mlops_serving.routes.deps.read_body`)."""

CURRENT: ContextVar[RequestContext | None] = ContextVar("mlops_serving_request", default=None)


def new_request_id() -> str:
    """32 random hex digits. From the process PRNG, not os.urandom: an id needs to be unique, not
    secret, and a system call per request shows up in the latency."""
    return f"{random.getrandbits(128):032x}"


def request_id_from(header: str | None) -> str:
    """The client's X-Request-ID when it is a sane token, else a new random id."""
    if header is not None and _VALID_ID.match(header):
        return header
    return new_request_id()


def current() -> RequestContext:
    ctx = CURRENT.get()
    if ctx is None:  # outside a request (tests calling the data plane directly)
        ctx = RequestContext(new_request_id())
        CURRENT.set(ctx)
    return ctx
