"""Run the app under uvicorn: ONE process, one event loop (see :mod:`mlops_serving.metrics`).

uvicorn handles SIGTERM: it stops accepting connections, lets in-flight requests finish (at most
``MLOPS_SERVING_SHUTDOWN_TIMEOUT_S`` minus the prediction-log flush budget), then runs the
lifespan shutdown, which flushes the prediction log within its budget. So a rolling update loses no accepted request.
"""

from __future__ import annotations

from mlops_serving import logs
from mlops_serving.settings import ServingSettings


def run(settings: ServingSettings) -> int:
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
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1
