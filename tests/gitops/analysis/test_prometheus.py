"""The AnalysisTemplates' PromQL against a real Prometheus scraping real model-server processes.

Three servers of the trained wine-classifier stand in for pods: "stable" and "canary" serve
version 1, "broken" is configured with a version that does not exist and answers 503. Prometheus
scrapes them every second and attaches the labels a PodMonitor would (namespace, pod-template
hash). The templates are evaluated with ``mlops_gitops.analysis`` (``mlops analysis run``).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support.procs import free_port, require_binary, wait_for_http

from mlops_gitops.analysis import AnalysisResult, load_templates, resolve_metrics, run_analysis

pytestmark = pytest.mark.integration

TEMPLATES = Path(__file__).resolve().parents[3] / "serving" / "manifests" / "base"
NAMESPACE = "models-test"
WINE_ROW = [13.2, 1.78, 2.14, 11.2, 100.0, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050.0]
ROWS = [WINE_ROW, [12.37, 0.94, 1.36, 10.6, 88.0, 1.98, 0.57, 0.28, 0.42, 1.95, 1.05, 1.82, 520.0],
        [12.86, 1.35, 2.32, 18.0, 122.0, 1.51, 1.25, 0.21, 0.94, 4.1, 0.76, 1.29, 630.0]]
ARGS = {"namespace": NAMESPACE, "stable-hash": "stable", "window": "20s", "interval": "2s", "count": "3",
        "min-requests": "10", "min-success-ratio": "0.95", "max-p95-latency-seconds": "2.5", "max-psi": "0.25"}


@dataclass
class Stack:
    prometheus: str
    servers: dict[str, str]
    stop: threading.Event = field(default_factory=threading.Event)
    traffic: threading.Thread | None = None

    def _send(self) -> None:
        body = json.dumps({"features": ROWS}).encode()
        while not self.stop.is_set():
            for track in ("stable", "canary", "broken"):
                request = urllib.request.Request(f"{self.servers[track]}/models/wine-classifier/predict",
                                                 data=body, headers={"Content-Type": "application/json"})
                with contextlib.suppress(OSError):
                    urllib.request.urlopen(request, timeout=5).close()
            time.sleep(0.05)

    def ensure_traffic(self) -> None:
        if self.traffic is None:
            self.traffic = threading.Thread(target=self._send, daemon=True)
            self.traffic.start()
            time.sleep(6)  # a few scrapes, so rate() has two samples of every series

    def analyse(self, canary_hash: str) -> AnalysisResult:
        templates = load_templates(sorted(TEMPLATES.glob("analysistemplate-*.yaml")))
        metrics = resolve_metrics(templates, {**ARGS, "canary-hash": canary_hash}, self.prometheus)
        return run_analysis(metrics, terminate_on_failure=False)


def _server(store: Any, model: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = store.env(MLOPS_SERVING_MODELS=model, MLOPS_SERVING_HOST="127.0.0.1", MLOPS_SERVING_PORT=str(port),
                    MLOPS_SERVING_PREDLOG_SAMPLE_RATE="0", MLOPS_SERVING_LOAD_RETRY_MAX_S="60")
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mlops_serving"], cwd=store.workdir, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def stack(trained_store: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_bin = require_binary("prometheus")
    work = tmp_path_factory.mktemp("analysis")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        servers = {}
        for track, model in (("stable", "wine-classifier:1"), ("canary", "wine-classifier:1"),
                             ("broken", "wine-classifier:999")):
            proc, url = _server(trained_store, model, work / f"{track}.log")
            procs.append(proc)
            servers[track] = url
        targets = "\n".join(
            f"      - targets: ['{url.removeprefix('http://')}']\n"
            f"        labels: {{namespace: {NAMESPACE}, rollouts_pod_template_hash: {track}}}"
            for track, url in servers.items())
        config = work / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n  - job_name: model-server\n    honor_labels: true\n    static_configs:\n"
            f"{targets}\n", encoding="utf-8")
        prom_port = free_port()
        with (work / "prometheus.log").open("wb") as out:
            procs.append(subprocess.Popen(
                [prometheus_bin, f"--config.file={config}", f"--storage.tsdb.path={work / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{prom_port}"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
        prometheus = f"http://127.0.0.1:{prom_port}"
        wait_for_http(f"{prometheus}/-/ready", timeout=60, proc=procs[-1], log=work / "prometheus.log")
        for (track, url), proc in zip(servers.items(), procs, strict=False):
            wait_for_http(f"{url}/healthz", timeout=120, proc=proc, log=work / f"{track}.log")
        for track in ("stable", "canary"):
            wait_for_http(f"{servers[track]}/readyz", timeout=120, log=work / f"{track}.log")
        yield Stack(prometheus, servers)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
            if proc.poll() is None:
                proc.kill()


def _phases(result: AnalysisResult) -> dict[str, str]:
    return {m.name: m.phase for m in result.metrics}


def test_no_traffic_is_inconclusive_not_successful(stack: Stack) -> None:
    # Runs before any traffic: the canary is scraped but has answered nothing.
    result = stack.analyse("canary")
    assert result.phase == "Inconclusive", _phases(result)
    assert set(_phases(result).values()) == {"Inconclusive"}, _phases(result)


def test_healthy_canary_is_successful(stack: Stack) -> None:
    stack.ensure_traffic()
    result = stack.analyse("canary")
    assert result.phase == "Successful", result.to_dict()
    assert set(_phases(result).values()) == {"Successful"}


def test_canary_answering_errors_fails_the_success_rate(stack: Stack) -> None:
    stack.ensure_traffic()
    result = stack.analyse("broken")
    phases = _phases(result)
    assert phases["success-rate"] == "Failed", result.to_dict()
    assert phases["request-count"] == "Successful", result.to_dict()
    assert result.phase == "Failed"
