"""Run the app under uvicorn: ONE process, one event loop (see :mod:`mlops_serving.metrics`).

uvicorn handles SIGTERM: it stops accepting connections, lets in-flight requests finish (at most
``MLOPS_SERVING_SHUTDOWN_TIMEOUT_S`` minus the prediction-log flush budget), then runs the
lifespan shutdown, which flushes the prediction log within its budget. So a rolling update loses no accepted request.

Connections are bounded in time: a client has ``MLOPS_SERVING_HEADER_TIMEOUT_S`` to send a
request's headers (from the accept, and from the first byte of each later request on the
connection), and a keep-alive connection idle for ``MLOPS_SERVING_IDLE_TIMEOUT_S`` between
requests is closed; so silent or trickling sockets cannot pile up until file descriptors run out.
A request's body must arrive within ``MLOPS_SERVING_BODY_TIMEOUT_S`` of its headers: a prediction
still reading it answers 408 and closes the connection, and any connection still receiving a body
a second after that deadline is closed (e.g. one trickling the body of a request already answered).
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from mlops_serving import logs
from mlops_serving.context import BODY_RECEIVED, SERVER_REQUESTS
from mlops_serving.settings import ServingSettings

BODY_GRACE_S = 1.0
"""After the body deadline, how long a request still being answered has to send its response (a
prediction answers 408 itself) before its connection is closed anyway."""


def http_protocol(header_timeout_s: float, body_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol plus a header-read and a body-read deadline (uvicorn has neither);
    in every request's scope, the server's requests in flight (uvicorn's set of request tasks:
    :data:`~mlops_serving.context.SERVER_REQUESTS`) and, once the whole body has arrived,
    :data:`~mlops_serving.context.BODY_RECEIVED`."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class DeadlineProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None
        _body_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(header_timeout_s, self._header_deadline)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _disarm_body(self) -> None:
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None

        def _header_deadline(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def _body_deadline(self, grace: bool) -> None:
            self._body_timer = None
            cycle = self.cycle
            if grace and cycle is not None and not cycle.response_complete:
                # the app is still on this request (a prediction reading its body answers 408 itself)
                self._body_timer = self.loop.call_later(BODY_GRACE_S, self._body_deadline, False)
            elif not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.scope[SERVER_REQUESTS] = self.tasks  # type: ignore[literal-required]
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()
            self._disarm_body()
            self._body_timer = self.loop.call_later(body_timeout_s, self._body_deadline, True)

        def on_message_complete(self) -> None:
            self._disarm_body()
            self.scope[BODY_RECEIVED] = True  # type: ignore[literal-required]
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            self._disarm_body()
            super().connection_lost(exc)

    return DeadlineProtocol


def run(settings: ServingSettings) -> int:
    # The collector stays off until the first model is loaded (runtime._freeze_heap).
    gc.disable()
    import uvicorn

    from mlops_serving.app import create_app

    logs.configure(settings.log_level, settings.log_format)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, int(settings.request_drain_s)),
        timeout_keep_alive=max(1, round(settings.idle_timeout_s)),
        http=http_protocol(settings.header_timeout_s, settings.body_timeout_s),
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1
