"""The staging health gate against a real Prometheus scraping a stand-in model server."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from support.fakehost import FakeGitHub
from support.promote import MODEL, GitOps

from mlops_platform import metric_names as mn

PROMETHEUS = shutil.which("prometheus")


class Exporter:
    """Serves mlops_serving_requests_total for staging v2 of the model; counts grow with every scrape."""

    def __init__(self) -> None:
        self.ok_per_scrape = 100
        self.errors_per_scrape = 0
        self.ok = 0.0
        self.errors = 0.0

    def text(self) -> str:
        self.ok += self.ok_per_scrape
        self.errors += self.errors_per_scrape
        name = mn.SERVING_REQUESTS.name
        labels = (
            f'namespace="models-staging",{mn.LABEL_MODEL}="{MODEL}",'
            f'{mn.LABEL_VERSION}="2",{mn.LABEL_ENDPOINT}="predict"'
        )
        return (
            f"# TYPE {name} counter\n"
            f'{name}{{{labels},{mn.LABEL_CODE}="200"}} {self.ok}\n'
            f'{name}{{{labels},{mn.LABEL_CODE}="500"}} {self.errors}\n'
        )


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, Exporter]]:
    if PROMETHEUS is None:
        pytest.skip("prometheus not installed")
    from support.procs import free_port, wait_for_http

    exporter = Exporter()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = exporter.text().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "groups:\n- name: drift\n  rules:\n  - alert: MlopsFeatureDrift\n    expr: drift_flag > 0\n"
        f"    labels:\n      {mn.LABEL_MODEL}: {MODEL}\n  - record: drift_flag\n    expr: vector(0)\n"
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{rules}]\n"
        "scrape_configs:\n- job_name: model\n  static_configs:\n"
        f"  - targets: ['127.0.0.1:{server.server_address[1]}']\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/-/ready", timeout=60, proc=proc, log=tmp_path / "prometheus.log")
        yield url, exporter
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        server.shutdown()
        server.server_close()


def _query(url: str, expr: str) -> list[Any]:
    with urllib.request.urlopen(f"{url}/api/v1/query?{urlencode({'query': expr})}", timeout=5) as response:
        return list(json.loads(response.read())["data"]["result"])


def _wait_until(condition: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"Prometheus never showed {what}")
        time.sleep(0.5)


def test_health_gate_passes_then_refuses_on_errors_and_drift(
    bot_env: dict[str, str],
    gitops: GitOps,
    github: FakeGitHub,
    prometheus: tuple[str, Exporter],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlops_workflows.cli import main

    url, exporter = prometheus
    monkeypatch.setenv("MLOPS_PROMETHEUS_URL", url)
    total = f'sum(increase({mn.SERVING_REQUESTS.name}{{{mn.LABEL_MODEL}="{MODEL}"}}[1h]))'
    _wait_until(lambda: bool(_query(url, total)) and float(_query(url, total)[0]["value"][1]) > 0, "traffic")

    code = main(["promote", MODEL, "--to", "production", "--dry-run"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "[ok] health: v2 in staging:" in out and "error ratio 0.00%" in out
    assert "No drift alert firing for `wine-classifier`" in out

    # the version starts failing 1 request in 6, and a drift alert fires
    exporter.errors_per_scrape = 20
    errors = total.replace(
        f'{mn.LABEL_MODEL}="{MODEL}"', f'{mn.LABEL_MODEL}="{MODEL}",{mn.LABEL_CODE}=~"5.."'
    )
    _wait_until(lambda: bool(_query(url, errors)) and float(_query(url, errors)[0]["value"][1]) > 0, "errors")
    (tmp_path / "rules.yaml").write_text(
        (tmp_path / "rules.yaml").read_text().replace("vector(0)", "vector(1)")
    )
    urllib.request.urlopen(urllib.request.Request(f"{url}/-/reload", method="POST"), timeout=10).close()
    _wait_until(
        lambda: bool(_query(url, 'ALERTS{alertname="MlopsFeatureDrift",alertstate="firing"}')), "the alert"
    )

    before = gitops.remote_branches()
    code = main(["promote", MODEL, "--to", "production"])
    out, err = capsys.readouterr()
    assert code == 3
    assert "[health] v2 is unhealthy in staging: error ratio" in err and "is above 1.00%" in err
    assert "drift alert firing: MlopsFeatureDrift" in err
    assert gitops.remote_branches() == before and github.requests == []
