"""A tracking server behind Basic auth: a real `mlflow server` behind a small loopback reverse proxy
that refuses every request without the right ``Authorization: Basic`` header.

Credentials given as ``user:password@`` in MLFLOW_TRACKING_URI or as MLFLOW_TRACKING_USERNAME /
MLFLOW_TRACKING_PASSWORD pass the reachability check and reach MLflow; the password appears in no
output of the CLI (run links, logs, errors)."""

from __future__ import annotations

import base64
import http.server
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.project import base_env, run_mlops

pytestmark = pytest.mark.integration

USER, PASSWORD = "mlops-bot", "s3cr3t-Pa55word"
WINE_CONFIG = Path(__file__).resolve().parents[2] / "workflows" / "models" / "wine-classifier.yaml"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class _BasicAuthProxy(http.server.ThreadingHTTPServer):
    upstream: str
    refused: int = 0


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _BasicAuthProxy
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _proxy(self) -> None:
        if self.headers.get("Authorization") != self.expected:
            self.server.refused += 1
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "authorization", "connection")}
        request = urllib.request.Request(self.server.upstream + self.path, data=body, headers=headers,
                                         method=self.command)
        try:
            response = _OPENER.open(request, timeout=60)
        except urllib.error.HTTPError as exc:
            response = exc
        data = response.read()
        self.send_response(response.status)
        for key, value in response.headers.items():
            if key.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _proxy


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, s3: Any) -> Iterator[tuple[str, Any]]:
    from support.mlflow_server import mlflow_server

    root = tmp_path_factory.mktemp("basic-auth")
    backend = f"sqlite:///{root / 'mlflow.db'}"
    with mlflow_server(root / "mlflow", backend, s3, bucket=s3.new_bucket("mlflow")) as ml:
        proxy = _BasicAuthProxy(("127.0.0.1", 0), _Handler)
        proxy.upstream = ml.tracking_uri
        thread = threading.Thread(target=proxy.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"127.0.0.1:{proxy.server_address[1]}", s3
        finally:
            proxy.shutdown()
            proxy.server_close()


def test_credentials_in_the_tracking_uri(guarded: tuple[str, Any], tmp_path: Path) -> None:
    address, s3 = guarded
    env = base_env(MLFLOW_TRACKING_URI=f"http://{USER}:{PASSWORD}@{address}", **s3.env())
    trained = run_mlops("train", "--config", str(WINE_CONFIG), cwd=tmp_path, env=env)
    output = trained.stdout + trained.stderr
    assert trained.returncode == 0, output
    assert PASSWORD not in output
    assert f"run: http://{address}/#/experiments/" in trained.stdout  # the link carries no user:password@
    listed = run_mlops("models", "list", cwd=tmp_path, env=env)
    assert listed.returncode == 0 and "wine-classifier" in listed.stdout, listed.stdout + listed.stderr
    shown = run_mlops("config", cwd=tmp_path, env=env)
    assert shown.returncode == 0 and PASSWORD not in shown.stdout + shown.stderr, shown.stdout + shown.stderr


def test_credentials_in_mlflow_variables(guarded: tuple[str, Any], tmp_path: Path) -> None:
    address, s3 = guarded
    env = base_env(MLFLOW_TRACKING_URI=f"http://{address}", MLFLOW_TRACKING_USERNAME=USER,
                   MLFLOW_TRACKING_PASSWORD=PASSWORD, **s3.env())
    listed = run_mlops("models", "list", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert PASSWORD not in listed.stdout + listed.stderr


def test_wrong_or_missing_credentials_are_a_clear_error(guarded: tuple[str, Any], tmp_path: Path) -> None:
    address, s3 = guarded
    for uri in (f"http://{USER}:wrong-{PASSWORD}@{address}", f"http://{address}"):
        result = run_mlops("models", "list", cwd=tmp_path, env=base_env(MLFLOW_TRACKING_URI=uri, **s3.env()))
        assert result.returncode == 2, result.stdout + result.stderr
        assert "refused" in result.stderr and "Traceback" not in result.stderr
        assert f"wrong-{PASSWORD}" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_run_links_and_masked_settings_carry_no_password() -> None:
    from mlops_platform.settings import PlatformSettings

    settings = PlatformSettings(tracking_uri=f"https://{USER}:{PASSWORD}@mlflow.example:5000")
    assert settings.ui_url == "https://mlflow.example:5000"
    assert settings.tracking_credentials == (USER, PASSWORD)
    assert PASSWORD not in repr(settings.describe())
    database = PlatformSettings(tracking_uri=f"postgresql://{USER}:{PASSWORD}@db:5432/mlflow")
    assert database.effective_tracking_uri.endswith(f"{PASSWORD}@db:5432/mlflow")  # the database's own
    assert PASSWORD not in repr(database.describe()) and database.tracking_credentials is None


def test_the_jobs_registry_over_http_sends_the_credentials(guarded: tuple[str, Any]) -> None:
    """The registry the jobs use on a tracking server (MLflow's REST API without MLflow) sends Basic
    auth from the URI or MLflow's variables, records and reads a job's run through the guard, and
    says clearly when the credentials are refused."""
    from mlops_platform.errors import ConfigError
    from mlops_platform.registry import open_registry
    from mlops_platform.registry_http import HttpRegistry
    from mlops_platform.settings import PlatformSettings

    address, _ = guarded
    light = open_registry(PlatformSettings(tracking_uri=f"http://{USER}:{PASSWORD}@{address}"))
    assert isinstance(light, HttpRegistry)
    light.check_reachable()
    run_id, url = light.record_job_run("jobs/guarded", "r", {"mlops.job": "drift"}, {"p": 1}, {"rows": 2.0},
                                       {"drift/report.json": "{}"})
    assert PASSWORD not in url
    run = light.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params == {"p": "1"} and run.data.metrics == {"rows": 2.0}
    assert light.load_run_file(run_id, "drift/report.json") == b"{}"
    by_variables = PlatformSettings(tracking_uri=f"http://{address}", tracking_username=USER,
                                    tracking_password=PASSWORD)
    assert open_registry(by_variables).recent_job_run_tags("jobs/guarded", {}, "mlops.job", 5) == ["drift"]
    for uri in (f"http://{USER}:wrong-{PASSWORD}@{address}", f"http://{address}"):
        refused = open_registry(PlatformSettings(tracking_uri=uri))
        with pytest.raises(ConfigError, match="refused") as error:
            refused.check_reachable()
        with pytest.raises(ConfigError, match="refused") as read_error:
            refused.get_run(run_id)
        assert PASSWORD not in str(error.value) + str(read_error.value)
