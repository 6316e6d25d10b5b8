"""``mlflow server`` on a free loopback port: a SQL backend store, artifacts proxied to S3."""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from support.procs import LOOPBACK, free_port, managed, require_binary, spawn, wait_for_http
from support.seaweedfs import S3


@dataclass(frozen=True)
class MlflowServer:
    """A running MLflow tracking server with a SQL backend store and proxied S3 artifacts."""

    tracking_uri: str
    artifact_bucket: str
    s3: S3
    backend_uri: str


def _sqlalchemy_url(uri: str) -> str:
    """A libpq-style ``postgresql://`` URL with the driver SQLAlchemy should use made explicit.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3; only psycopg2 may be installed.
    """
    for scheme in ("postgresql://", "postgres://"):
        if uri.startswith(scheme) and importlib.util.find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + uri.removeprefix(scheme)
    return uri


@contextlib.contextmanager
def mlflow_server(
    workdir: Path,
    backend_uri: str,
    s3: S3,
    bucket: str = "mlflow",
    *,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[MlflowServer]:
    """``mlflow server`` on a free loopback port: ``backend_uri`` store, artifacts proxied to ``s3://bucket/artifacts``.

    A bare ``postgresql://`` ``backend_uri`` is handed to the server as ``postgresql+psycopg2://``
    (``MlflowServer.backend_uri`` keeps the URL as given, usable with ``psycopg2.connect``).
    Creates ``bucket`` first, logs to ``workdir/mlflow-server.log`` and waits (up to 120 s, the
    database migrations run at startup) for ``GET /health``.
    """
    mlflow = require_binary("mlflow")
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "mlflow-server.log"
    s3.make_bucket(bucket)
    port = free_port()
    argv = [
        mlflow,
        "server",
        "--backend-store-uri",
        _sqlalchemy_url(backend_uri),
        "--serve-artifacts",
        "--artifacts-destination",
        f"s3://{bucket}/artifacts",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--workers",
        "1",
        "--allowed-hosts",
        f"{LOOPBACK}:{port},localhost:{port},{LOOPBACK},localhost",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    env.update(s3.env())
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            # No huey job-runner processes: tests need the tracking API only.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
    )
    if extra_env:
        env.update(extra_env)
    proc = spawn(argv, log, cwd=workdir, env=env)
    tracking_uri = f"http://{LOOPBACK}:{port}"
    with managed(proc, grace=10):
        wait_for_http(f"{tracking_uri}/health", timeout=120, proc=proc, log=log)
        yield MlflowServer(tracking_uri=tracking_uri, artifact_bucket=bucket, s3=s3, backend_uri=backend_uri)
