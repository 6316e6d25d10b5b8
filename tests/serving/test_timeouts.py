"""Connection timeouts of a real `python -m mlops_serving` process: silent and trickling sockets
are closed after MLOPS_SERVING_HEADER_TIMEOUT_S, idle keep-alive connections after
MLOPS_SERVING_IDLE_TIMEOUT_S, bodies trickled past MLOPS_SERVING_BODY_TIMEOUT_S get a 408 (or,
already answered, a closed connection), and normal requests are answered all the while."""

from __future__ import annotations

import json
import selectors
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.serving import WINE, WINE_ROWS, Keys, Server, start_server

SILENT = 300
TRICKLING = 100
HEADER_TIMEOUT_S = 1.5
IDLE_TIMEOUT_S = 2
BODY_TIMEOUT_S = 1.5
SLOW_BODIES = 60  # predictions reading their body: 408
SLOW_UNREAD = 20  # answered before their body (no API key: 401), which then keeps trickling


@pytest.fixture(scope="module")
def timeout_server(trained_store: Any, keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("timeouts")
    env = trained_store.env(
        MLOPS_SERVING_MODELS=f"{WINE}:1", MLOPS_SERVING_AUTH="api-key", MLOPS_SERVING_API_KEYS_FILE=str(keys.file),
        MLOPS_SERVING_PREDLOG_SAMPLE_RATE="0", MLOPS_SERVING_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S),
        MLOPS_SERVING_IDLE_TIMEOUT_S=str(IDLE_TIMEOUT_S), MLOPS_SERVING_BODY_TIMEOUT_S=str(BODY_TIMEOUT_S),
    )
    started = start_server(workdir, env, key=keys.full)
    yield started
    started.stop()


def _port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _closed_by_server(sockets: list[socket.socket], timeout: float, trickle: set[socket.socket],
                      received: dict[socket.socket, bytes] | None = None) -> set[socket.socket]:
    """Wait up to ``timeout`` for the server to close each socket (EOF or reset), sending one byte
    every half second on those in ``trickle`` (and keeping what each received in ``received``);
    the set of those it closed."""
    selector = selectors.DefaultSelector()
    for sock in sockets:
        selector.register(sock, selectors.EVENT_READ)
    closed: set[socket.socket] = set()
    deadline = time.monotonic() + timeout
    next_trickle = time.monotonic() + 0.5
    while len(closed) < len(sockets) and time.monotonic() < deadline:
        for key, _ in selector.select(0.1):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(65536)
            except ConnectionError:
                data = b""
            if not data:
                closed.add(sock)
                selector.unregister(sock)
            elif received is not None:
                received[sock] = received.get(sock, b"") + data
        if time.monotonic() >= next_trickle:
            next_trickle += 0.5
            for sock in trickle - closed:
                try:
                    sock.send(b"x")
                except OSError:
                    closed.add(sock)
                    selector.unregister(sock)
    selector.close()
    return closed


def test_silent_and_trickling_connections_are_closed_while_requests_succeed(timeout_server: Server) -> None:
    port = _port(timeout_server)
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(SILENT)]
    trickling = [socket.create_connection(("127.0.0.1", port)) for _ in range(TRICKLING)]
    opened = time.monotonic()
    try:
        for sock in trickling:
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        # normal requests are answered while the idle sockets are open
        for _ in range(5):
            response = timeout_server.post("/predict", json={"features": WINE_ROWS})
            assert response.status_code == 200, response.text
        assert time.monotonic() - opened < HEADER_TIMEOUT_S, "the normal requests were too slow to overlap"
        closed = _closed_by_server(silent + trickling, HEADER_TIMEOUT_S + 5, set(trickling))
        elapsed = time.monotonic() - opened
        assert len(closed) == SILENT + TRICKLING, f"{SILENT + TRICKLING - len(closed)} connections still open"
        assert elapsed >= HEADER_TIMEOUT_S - 0.1, f"closed after {elapsed:.2f}s, before the header timeout"
    finally:
        for sock in silent + trickling:
            sock.close()
    response = timeout_server.post("/predict", json={"features": WINE_ROWS})
    assert response.status_code == 200, response.text


def _exchange(sock: socket.socket, request: bytes) -> bytes:
    """Send ``request``, read one whole response (headers plus Content-Length bytes)."""
    sock.sendall(request)
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_idle_keep_alive_connection_is_closed_after_the_idle_timeout(timeout_server: Server) -> None:
    body = json.dumps({"features": WINE_ROWS[:1]}).encode()
    request = (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"x-api-key: {timeout_server.key}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", _port(timeout_server))) as sock:
        sock.settimeout(IDLE_TIMEOUT_S + 5)
        assert _exchange(sock, request).startswith(b"HTTP/1.1 200")
        time.sleep(IDLE_TIMEOUT_S / 2)  # kept alive: a second request on the same connection is answered
        assert _exchange(sock, request).startswith(b"HTTP/1.1 200")
        answered = time.monotonic()
        assert sock.recv(65536) == b""  # then closed by the server once idle
        idle = time.monotonic() - answered
    assert IDLE_TIMEOUT_S - 0.5 <= idle <= IDLE_TIMEOUT_S + 2, f"closed after {idle:.2f}s idle"


def test_trickled_bodies_get_408_and_are_closed_while_requests_succeed(timeout_server: Server) -> None:
    port = _port(timeout_server)
    head = ("POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: 100000\r\n{key}\r\n")
    reading = [socket.create_connection(("127.0.0.1", port)) for _ in range(SLOW_BODIES)]
    unread = [socket.create_connection(("127.0.0.1", port)) for _ in range(SLOW_UNREAD)]
    opened = time.monotonic()
    received: dict[socket.socket, bytes] = {}
    try:
        for sock in reading:
            sock.sendall(head.format(key=f"x-api-key: {timeout_server.key}\r\n").encode() + b'{"features":')
        for sock in unread:
            sock.sendall(head.format(key="").encode() + b'{"features":')
        for _ in range(5):  # normal requests are answered while the bodies trickle
            response = timeout_server.post("/predict", json={"features": WINE_ROWS})
            assert response.status_code == 200, response.text
        assert time.monotonic() - opened < BODY_TIMEOUT_S, "the normal requests were too slow to overlap"
        closed = _closed_by_server(reading + unread, BODY_TIMEOUT_S + 5, set(reading + unread), received)
        elapsed = time.monotonic() - opened
        assert len(closed) == SLOW_BODIES + SLOW_UNREAD, f"{SLOW_BODIES + SLOW_UNREAD - len(closed)} still open"
        assert elapsed >= BODY_TIMEOUT_S - 0.1, f"closed after {elapsed:.2f}s, before the body timeout"
    finally:
        for sock in reading + unread:
            sock.close()
    timeouts = [received.get(sock, b"") for sock in reading]
    assert all(answer.startswith(b"HTTP/1.1 408") for answer in timeouts), {a[:60] for a in timeouts}
    head_408, _, body_408 = timeouts[0].partition(b"\r\n\r\n")
    assert b"connection: close" in head_408.lower()
    assert "MLOPS_SERVING_BODY_TIMEOUT_S" in json.loads(body_408)["error"]["message"]
    assert all(received.get(sock, b"").startswith(b"HTTP/1.1 401") for sock in unread)
    response = timeout_server.post("/predict", json={"features": WINE_ROWS})
    assert response.status_code == 200, response.text
    log = timeout_server.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
