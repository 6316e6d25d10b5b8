"""A client that closes its connection mid-body, against the real server process.

It is the client's behaviour, not a server error: counted under code 499 (nginx's convention), logged
at INFO without a traceback, and never as a 500 (which the canary analysis and the error-ratio alert
would count against the model).
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families
from support.serving import WINE, WINE_ROWS, Server, wait_until

from mlops_platform import metric_names as mn


def _requests_by_code(server: Server, endpoint: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(server.get("/metrics", key=False).text):
        for sample in family.samples:
            if sample.name == mn.SERVING_REQUESTS.name and sample.labels.get("model") == WINE \
                    and sample.labels.get("endpoint") == endpoint:
                counts[sample.labels["code"]] = counts.get(sample.labels["code"], 0.0) + sample.value
    return counts


def _abort_mid_body(server: Server, path: str, request_id: str) -> None:
    """Send the headers and a third of a JSON body, then close the socket."""
    body = json.dumps({"features": WINE_ROWS * 50}).encode()
    address = urlsplit(server.url)
    head = (f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nx-api-key: {server.key}\r\nX-Request-ID: {request_id}\r\n\r\n")
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(head.encode() + body[: len(body) // 3])
        time.sleep(0.2)  # the server has read the headers and part of the body


def test_client_disconnect_mid_body_is_499_at_info(server: Server) -> None:
    paths = {"predict": f"/models/{WINE}/predict", "invocations": "/invocations",
             "v2_infer": f"/v2/models/{WINE}/infer"}
    before = {endpoint: _requests_by_code(server, endpoint) for endpoint in paths}
    for endpoint, path in paths.items():
        _abort_mid_body(server, path, f"gone-{endpoint}")

    def counted() -> Any:
        after = {endpoint: _requests_by_code(server, endpoint) for endpoint in paths}
        done = all(after[e].get("499", 0) - before[e].get("499", 0) == 1 for e in paths)
        return after if done else None

    after = wait_until(counted, 30, "three 499s in mlops_serving_requests_total")
    for endpoint in paths:
        assert after[endpoint].get("500", 0) == before[endpoint].get("500", 0), (endpoint, after[endpoint])

    entries = wait_until(
        lambda: (found := [e for e in server.logs() if str(e.get("request_id", "")).startswith("gone-")])
        and len({e["request_id"] for e in found}) == 3 and found,
        10, "the log lines of the aborted requests")
    assert all(e["level"] == "INFO" for e in entries), entries
    assert not any("exception" in e for e in entries), entries
    assert any(e.get("status") == 499 for e in entries), entries
    # a well-behaved client on the same server is unaffected
    assert server.post(f"/models/{WINE}/predict", json={"features": WINE_ROWS}).status_code == 200
