"""The service helpers start real PostgreSQL, SeaweedFS S3 and MLflow servers that work together."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.mlflow_server import MlflowServer, mlflow_server
from support.postgres import Postgres
from support.procs import free_port, wait_for_http
from support.seaweedfs import S3

pytestmark = pytest.mark.integration


def _timed(what: str, started: float) -> None:
    print(f"\n[services] {what} started in {time.monotonic() - started:.1f}s")


@pytest.fixture(scope="module")
def _no_telemetry() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.setenv("DO_NOT_TRACK", "true")
        yield


@pytest.fixture(scope="module")
def mlflow(
    tmp_path_factory: pytest.TempPathFactory, postgres: Postgres, s3: S3, _no_telemetry: None
) -> Iterator[MlflowServer]:
    backend = postgres.create_database("mlflow_tracking")
    started = time.monotonic()
    with mlflow_server(tmp_path_factory.mktemp("mlflow"), backend, s3, bucket="mlflow-artifacts") as server:
        _timed("MLflow server", started)
        yield server


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_wait_for_http_times_out_with_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="did not answer"):
        wait_for_http(f"http://127.0.0.1:{free_port()}/", timeout=0.5)


def test_wait_for_http_reports_a_dead_process_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "print('boom: cannot bind'); raise SystemExit(3)"], stdout=out, stderr=out
        )
    with pytest.raises(RuntimeError, match=r"(?s)exited with code 3.*boom: cannot bind"):
        wait_for_http(f"http://127.0.0.1:{free_port()}/", timeout=30, proc=proc, log=log)


def test_postgres_accepts_password_connections_and_creates_databases(postgres: Postgres) -> None:
    import psycopg2

    assert postgres.url == f"postgresql://{postgres.user}:{postgres.password}@127.0.0.1:{postgres.port}/postgres"
    with psycopg2.connect(postgres.url) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_user, inet_server_addr()::text")
        user, addr = cur.fetchone()
    assert user == postgres.user
    assert addr.split("/")[0] == "127.0.0.1"

    url = postgres.create_database("service_check")
    assert url.endswith("/service_check")
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE t (x int)")
            cur.execute("INSERT INTO t VALUES (42)")
            cur.execute("SELECT current_database(), x FROM t")
            assert cur.fetchone() == ("service_check", 42)
    finally:
        conn.close()

    wrong = url.replace(f":{postgres.password}@", ":not-the-password@")
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(wrong).close()


def test_seaweedfs_s3_round_trips_objects(s3: S3) -> None:
    from botocore.exceptions import ClientError

    s3.make_bucket("roundtrip")
    s3.make_bucket("roundtrip")  # idempotent
    client = s3.client()
    body = b"hello seaweedfs " + uuid.uuid4().bytes
    client.put_object(Bucket="roundtrip", Key="dir/object.bin", Body=body)
    assert client.get_object(Bucket="roundtrip", Key="dir/object.bin")["Body"].read() == body
    listed = client.list_objects_v2(Bucket="roundtrip", Prefix="dir/")
    assert [(o["Key"], o["Size"]) for o in listed["Contents"]] == [("dir/object.bin", len(body))]
    assert "roundtrip" in {b["Name"] for b in client.list_buckets()["Buckets"]}

    env = s3.env()
    assert env["AWS_ENDPOINT_URL"] == env["MLFLOW_S3_ENDPOINT_URL"] == s3.endpoint_url
    assert env["AWS_ACCESS_KEY_ID"] == s3.access_key

    intruder = S3(endpoint_url=s3.endpoint_url, access_key="nobody", secret_key="wrong")
    with pytest.raises(ClientError):
        intruder.client().list_buckets()


def test_mlflow_server_stores_runs_in_postgres_and_artifacts_in_s3(
    mlflow: MlflowServer, postgres: Postgres, s3: S3
) -> None:
    import psycopg2
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow.tracking_uri)
    experiment_id = client.create_experiment(f"service-check-{uuid.uuid4().hex[:8]}")
    run = client.create_run(experiment_id, run_name="service-check")
    run_id = run.info.run_id
    client.log_param(run_id, "alpha", "0.5")
    client.log_metric(run_id, "accuracy", 0.93)
    client.log_text(run_id, "artifact through the proxy", "notes/hello.txt")
    client.set_terminated(run_id)

    assert [a.path for a in client.list_artifacts(run_id, "notes")] == ["notes/hello.txt"]
    fetched = client.get_run(run_id)
    assert fetched.data.params == {"alpha": "0.5"}
    assert fetched.data.metrics == {"accuracy": 0.93}

    # The artifact object really is in the SeaweedFS bucket, under the proxied destination.
    s3_client = s3.client()
    keys = [
        o["Key"]
        for o in s3_client.list_objects_v2(Bucket=mlflow.artifact_bucket, Prefix="artifacts/").get("Contents", [])
    ]
    expected = f"artifacts/{experiment_id}/{run_id}/artifacts/notes/hello.txt"
    assert expected in keys, keys
    body = s3_client.get_object(Bucket=mlflow.artifact_bucket, Key=expected)["Body"].read()
    assert body == b"artifact through the proxy"

    # The run row is in PostgreSQL.
    conn = psycopg2.connect(mlflow.backend_uri)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT experiment_id, status, artifact_uri FROM runs WHERE run_uuid = %s", (run_id,))
            row = cur.fetchone()
    finally:
        conn.close()
    assert row is not None
    assert str(row[0]) == experiment_id
    assert row[1] == "FINISHED"
    assert row[2].startswith("mlflow-artifacts:")
    assert mlflow.backend_uri.startswith(f"postgresql://{postgres.user}:")
