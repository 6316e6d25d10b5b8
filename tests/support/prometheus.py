"""Start a real Prometheus and Pushgateway (Debian packages) for tests on free loopback ports.

Both run in their own process group with their output in a log file in ``workdir``, and are
killed (the whole group) at teardown, also when the test failed. A missing binary skips the test,
or fails it under ``MLOPS_REQUIRE_INTEGRATION=1`` (see :mod:`support.procs`).
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from support.procs import LOOPBACK, free_port, managed, require_binary, spawn, wait_for_http

__all__ = ["Prometheus", "Pushgateway", "extract_rules", "prometheus_server", "pushgateway_server", "wait_until"]

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
T = TypeVar("T")


def _get_json(url: str) -> Any:
    with _NO_PROXY.open(url, timeout=10) as response:
        return json.loads(response.read())


def wait_until(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.25) -> T:
    """Call ``probe`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass(frozen=True)
class Pushgateway:
    url: str

    @property
    def target(self) -> str:
        """host:port, as a Prometheus scrape target."""
        return urllib.parse.urlsplit(self.url).netloc

    def metrics_text(self) -> str:
        with _NO_PROXY.open(f"{self.url}/metrics", timeout=10) as response:
            return str(response.read().decode())


@dataclass(frozen=True)
class Prometheus:
    url: str

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector of ``promql`` now: [{"metric": {...}, "value": [t, "v"]}, ...]."""
        body = _get_json(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        body = _get_json(f"{self.url}/api/v1/alerts")
        alerts: list[dict[str, Any]] = body["data"]["alerts"]
        return alerts

    def rule_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = _get_json(f"{self.url}/api/v1/rules")["data"]["groups"]
        return groups


@contextlib.contextmanager
def pushgateway_server(workdir: Path) -> Iterator[Pushgateway]:
    """``prometheus-pushgateway`` on a free loopback port, in memory (no persistence file)."""
    binary = require_binary("prometheus-pushgateway")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "pushgateway.log"
    # Debian's build defaults --persistence.file to the machine-wide /var/lib/prometheus/pushgateway.data:
    # every Pushgateway started with the default would share (and load) the groups of all the others.
    proc = spawn([binary, f"--web.listen-address={LOOPBACK}:{port}", "--persistence.file="], log, cwd=workdir)
    url = f"http://{LOOPBACK}:{port}"
    with managed(proc, grace=5):
        wait_for_http(f"{url}/-/ready", timeout=30, proc=proc, log=log)
        yield Pushgateway(url)


@contextlib.contextmanager
def prometheus_server(
    workdir: Path,
    scrape_targets: Sequence[str],
    rule_files: Sequence[Path] = (),
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
) -> Iterator[Prometheus]:
    """``prometheus`` scraping ``scrape_targets`` (host:port) with honor_labels, as a Pushgateway is
    scraped, and evaluating ``rule_files``; TSDB in ``workdir``."""
    binary = require_binary("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {
                "job_name": "pushgateway",
                "honor_labels": True,
                "static_configs": [{"targets": list(scrape_targets)}],
            }
        ],
    }
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    log = workdir / "prometheus.log"
    argv = [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address={LOOPBACK}:{port}",
        "--storage.tsdb.retention.time=1h",
    ]
    proc = spawn(argv, log, cwd=workdir)
    url = f"http://{LOOPBACK}:{port}"
    with managed(proc, grace=5):
        wait_for_http(f"{url}/-/ready", timeout=60, proc=proc, log=log)
        yield Prometheus(url)


def extract_rules(manifests: Sequence[Path], out: Path) -> Path:
    """A plain Prometheus rules file holding the ``spec.groups`` of PrometheusRule manifests."""
    groups: list[Any] = []
    for manifest in manifests:
        for doc in yaml.safe_load_all(manifest.read_text()):
            if doc and doc.get("kind") == "PrometheusRule":
                groups.extend(doc["spec"]["groups"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return out
