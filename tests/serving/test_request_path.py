"""The per-request bookkeeping made cheap for one connection: the lock-free request metrics expose
what prometheus-client's own metrics expose, and a body the server already holds is read at once
(no deadline armed) while a body still arriving keeps its deadline."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from starlette.requests import ClientDisconnect, Request
from support.procs import free_port

from mlops_platform import metric_names as mn
from mlops_serving import metrics as serving_metrics
from mlops_serving.context import BODY_RECEIVED
from mlops_serving.errors import PayloadTooLargeError, RequestTimeoutError
from mlops_serving.routes.deps import read_body
from mlops_serving.server import http_protocol

# -- metrics ----------------------------------------------------------------------------------------


def test_request_metrics_expose_what_prometheus_clients_own_metrics_expose() -> None:
    """The same observations through ServingMetrics and through prometheus-client's Counter,
    Histogram and Gauge built from the same specs give the same exposition, byte for byte."""
    ours = serving_metrics.ServingMetrics()
    registry = CollectorRegistry(auto_describe=True)
    theirs = {spec.name: serving_metrics._build(spec, registry) for spec in mn.SERVING_METRICS}
    requests, duration = theirs[mn.SERVING_REQUESTS.name], theirs[mn.SERVING_REQUEST_DURATION.name]
    request_rows, batch_rows = theirs[mn.SERVING_REQUEST_ROWS.name], theirs[mn.SERVING_BATCH_ROWS.name]
    predictions, in_flight = theirs[mn.SERVING_PREDICTIONS.name], theirs[mn.SERVING_IN_FLIGHT.name]

    ours.model_configured("wine")
    theirs[mn.SERVING_MODEL_READY.name].labels("wine").set(0)
    theirs[mn.SERVING_MODEL_LOAD_FAILURES.name].labels("wine")
    ours.model_loaded("wine", "1", "run")
    theirs[mn.SERVING_MODEL_INFO.name].labels("wine", "1", "run").set(1)
    theirs[mn.SERVING_MODEL_READY.name].labels("wine").set(1)
    # bounds themselves, between bounds, zero, beyond the last bound; a request naming no model
    for seconds, code in [(0.001, 200), (0.0004, 200), (0.0, 200), (0.0031, 422), (2.5, 503), (99.0, 200)]:
        ours.observe_request("wine", "1", "invocations", code, seconds)
        requests.labels("wine", "1", "invocations", str(code)).inc()
        duration.labels("wine", "1", "invocations").observe(seconds)
    ours.observe_request("", "", "predict", 404, 0.0002)
    requests.labels("", "", "predict", "404").inc()
    duration.labels("", "", "predict").observe(0.0002)
    for labels in (np.array([1]), np.array([0, 2, 2, 1]), np.array(["b", "a"])):
        ours.observe_prediction("wine", "1", labels, True)
        request_rows.labels("wine", "1").observe(len(labels))
        for value, count in zip(*np.unique(labels, return_counts=True), strict=True):
            predictions.labels("wine", "1", str(value)).inc(int(count))
    ours.observe_prediction("regressor", "3", np.array([0.5, 1.5]), False)
    request_rows.labels("regressor", "3").observe(2)
    for rows in (1, 2, 3, 64, 100_000):
        ours.observe_batch("wine", "1", rows)
        batch_rows.labels("wine", "1").observe(rows)
    for _ in range(3):
        ours.in_flight.inc()
        in_flight.inc()
    ours.in_flight.dec()
    in_flight.dec()

    text = generate_latest(ours.registry).decode()
    assert text == generate_latest(registry).decode()
    assert 'mlops_serving_requests_total{code="200",endpoint="invocations",model="wine",version="1"} 4.0' in text
    bucket = 'mlops_serving_request_duration_seconds_bucket{endpoint="invocations",le="0.001",model="wine",version="1"}'
    assert f"{bucket} 3.0" in text
    assert "mlops_serving_requests_in_flight 2.0" in text


# -- reading the body -------------------------------------------------------------------------------


def _request(messages: list[dict[str, Any]], *, received: bool, delay_s: float = 0.0,
             length: int | None = None) -> tuple[Request, list[int]]:
    """A request whose receive() hands out ``messages`` (each after ``delay_s``; then waits forever),
    and the list counting the receive() calls."""
    calls: list[int] = []
    headers = [(b"content-length", str(length).encode())] if length is not None else []
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/predict", "headers": headers}
    if received:
        scope[BODY_RECEIVED] = True

    async def receive() -> dict[str, Any]:
        calls.append(1)
        if len(calls) > len(messages):
            await asyncio.Event().wait()
        if delay_s:
            await asyncio.sleep(delay_s)
        return messages[len(calls) - 1]

    return Request(scope, receive), calls


def _read(request: Request, limit: int = 1000, timeout_s: float = 0.5) -> bytes:
    return asyncio.run(read_body(request, limit, timeout_s))


def test_a_body_the_server_holds_is_read_with_one_receive() -> None:
    request, calls = _request([{"type": "http.request", "body": b'{"a": 1}', "more_body": False}], received=True)
    assert _read(request) == b'{"a": 1}'
    assert len(calls) == 1


def test_a_body_still_arriving_is_read_in_chunks_within_its_deadline() -> None:
    chunks = [{"type": "http.request", "body": b'{"a":', "more_body": True},
              {"type": "http.request", "body": b"", "more_body": True},
              {"type": "http.request", "body": b" 1}", "more_body": False}]
    for received in (False, True):
        request, calls = _request(chunks, received=received, delay_s=0.01)
        assert _read(request) == b'{"a": 1}'
        assert len(calls) == 3


def test_a_body_that_stops_arriving_gets_408_and_one_the_server_holds_never_waits() -> None:
    request, _ = _request([{"type": "http.request", "body": b'{"a":', "more_body": True}], received=False)
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError, match=r"did not arrive within 0.2s.*5 bytes received"):
        _read(request, timeout_s=0.2)
    assert 0.15 < time.monotonic() - started < 2
    # the same first chunk, marked received by mistake, is still bounded by the deadline
    request, _ = _request([{"type": "http.request", "body": b'{"a":', "more_body": True}], received=True)
    with pytest.raises(RequestTimeoutError):
        _read(request, timeout_s=0.2)


@pytest.mark.parametrize("received", [False, True])
def test_a_client_gone_or_a_body_over_the_limit_is_refused_on_both_paths(received: bool) -> None:
    request, _ = _request([{"type": "http.disconnect"}], received=received)
    with pytest.raises(ClientDisconnect):
        _read(request)
    request, _ = _request([{"type": "http.request", "body": b"x" * 11, "more_body": False}], received=received)
    with pytest.raises(PayloadTooLargeError, match="over 10 bytes"):
        _read(request, limit=10)
    request, calls = _request([], received=received, length=11)
    with pytest.raises(PayloadTooLargeError, match="of 11 bytes"):
        _read(request, limit=10)
    assert not calls


# -- the server marks a body it holds -----------------------------------------------------------------


@pytest.fixture
def recording_server() -> Iterator[tuple[int, list[tuple[bool, bytes]]]]:
    """uvicorn with the model server's protocol (http_protocol) in a thread, serving an app that
    records, per request, whether BODY_RECEIVED was set when it started, and the body it read."""
    import uvicorn

    seen: list[tuple[bool, bytes]] = []

    async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                  send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            return
        marked = bool(scope.get(BODY_RECEIVED))
        body = await read_body(Request(scope, receive), 1 << 20, 5.0)
        seen.append((marked, body))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None,
                                          http=http_protocol(5.0, 5.0)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    yield port, seen
    server.should_exit = True
    thread.join(10)


def _post(sock: socket.socket, body: bytes, pause_s: float | None) -> bytes:
    head = f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    if pause_s is None:
        sock.sendall(head + body)
    else:
        sock.sendall(head + body[:3])
        time.sleep(pause_s)
        sock.sendall(body[3:])
    answer = b""
    while not answer.endswith(b"ok"):
        answer += sock.recv(4096)
    return answer


def test_the_server_marks_a_body_that_came_with_its_headers_and_not_one_still_arriving(
        recording_server: tuple[int, list[tuple[bool, bytes]]]) -> None:
    port, seen = recording_server
    with socket.create_connection(("127.0.0.1", port)) as sock:  # one keep-alive connection
        assert _post(sock, b'{"rows": [1, 2]}', None).startswith(b"HTTP/1.1 200")
        assert _post(sock, b'{"rows": [3, 4]}', 0.3).startswith(b"HTTP/1.1 200")
        assert _post(sock, b'{"rows": [5, 6]}', None).startswith(b"HTTP/1.1 200")
    assert seen == [(True, b'{"rows": [1, 2]}'), (False, b'{"rows": [3, 4]}'), (True, b'{"rows": [5, 6]}')]
