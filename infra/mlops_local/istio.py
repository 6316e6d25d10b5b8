"""istiod's job for an ingress gateway: Envoy routes and clusters from rendered Istio objects.

- the hosts of each VirtualService that the Gateway admits (its ``<namespace>/<host pattern>``
  entries) become one virtual host of the route configuration ``http.80``;
- each HTTP route becomes one Envoy route per match entry (Istio ORs them) with
  ``weighted_clusters``; a weight-0 destination is left out, as istiod does; the route's ``timeout``
  is kept and Istio's default retry policy (2 attempts on connect failure, refused stream,
  unavailable, cancelled and 503) is added;
- each destination is the cluster ``outbound|<port>||<service fqdn>`` whose endpoints are the
  processes behind that Service; its DestinationRule's ``connectionPool.http.http1MaxPendingRequests``
  and ``outlierDetection`` become circuit breakers and outlier detection;
- a Host or path no route matches gets Envoy's 404, as at an Istio gateway.

Matches other than URI prefix/exact, TLS and mesh (sidecar) routing are not translated.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

from mlops_platform.durations import parse_go_duration as parse_duration

ROUTE_CONFIG = "http.80"
ISTIO_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"


def cluster_name(host: str, port: int, namespace: str) -> str:
    """Istio's name of the outbound cluster of a Service, ``outbound|<port>||<fqdn>``."""
    return f"outbound|{port}||{service_fqdn(host, namespace)}"


def service_fqdn(host: str, namespace: str) -> str:
    return host if "." in host else f"{host}.{namespace}.svc.cluster.local"


def gateway_hosts(virtual_service: Mapping[str, Any], gateway: Mapping[str, Any]) -> list[str]:
    """The VirtualService hosts that ``gateway`` admits (its ``<namespace>/<host pattern>`` entries)."""
    namespace = virtual_service["metadata"]["namespace"]
    gw_ref = f"{gateway['metadata'].get('namespace', namespace)}/{gateway['metadata']['name']}"
    if gw_ref not in (virtual_service["spec"].get("gateways") or []):
        return []
    patterns = []
    for server in gateway["spec"]["servers"]:
        for entry in server["hosts"]:
            ns, _, pattern = entry.rpartition("/")  # no namespace: any ("*"); ".": the Gateway's own
            if ns in ("", "*", namespace) or (ns == "." and namespace == gateway["metadata"]["namespace"]):
                patterns.append(pattern)
    return [h for h in virtual_service["spec"]["hosts"] if any(fnmatch.fnmatchcase(h, p) for p in patterns)]


def _matches(route: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for match in route.get("match") or [{}]:
        if set(match) - {"uri"}:
            raise NotImplementedError(f"route {route.get('name')!r}: only uri matches are translated")
        uri = match.get("uri") or {"prefix": "/"}
        if set(uri) not in ({"prefix"}, {"exact"}):
            raise NotImplementedError(f"route {route.get('name')!r}: uri match {uri} is not translated")
        out.append({"path" if "exact" in uri else "prefix": next(iter(uri.values()))})
    return out


def destinations(virtual_service: Mapping[str, Any]) -> list[tuple[str, int]]:
    """Every (Service host, port) a VirtualService routes to, weight 0 included."""
    found: list[tuple[str, int]] = []
    for http in virtual_service["spec"].get("http") or []:
        for dest in http["route"]:
            key = (str(dest["destination"]["host"]), int(dest["destination"].get("port", {}).get("number", 80)))
            if key not in found:
                found.append(key)
    return found


def virtual_host(virtual_service: Mapping[str, Any], domains: Sequence[str]) -> dict[str, Any]:
    """The Envoy virtual host of a VirtualService (``domains``: see :func:`gateway_hosts`)."""
    namespace = virtual_service["metadata"]["namespace"]
    routes = []
    for http in virtual_service["spec"].get("http") or []:
        weighted = []
        for dest in http["route"]:
            host, port = dest["destination"]["host"], int(dest["destination"].get("port", {}).get("number", 80))
            weight = int(dest.get("weight", 100 if len(http["route"]) == 1 else 0))
            if weight > 0:  # istiod leaves weight-0 destinations out
                weighted.append({"name": cluster_name(host, port, namespace), "weight": weight})
        action: dict[str, Any] = {
            "weighted_clusters": {"clusters": weighted},
            "retry_policy": {"retry_on": ISTIO_RETRY_ON, "num_retries": 2, "retriable_status_codes": [503]},
        }
        if "timeout" in http:
            action["timeout"] = http["timeout"]
        for index, match in enumerate(_matches(http)):
            routes.append({"name": f"{http.get('name', '')}-{index}", "match": match, "route": action})
    return {"name": f"{virtual_service['metadata']['name']}.{namespace}", "domains": list(domains), "routes": routes}


def route_configuration(virtual_hosts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        "name": ROUTE_CONFIG,
        "virtual_hosts": list(virtual_hosts),
    }


def _seconds(value: str) -> str:
    return f"{parse_duration(value):g}s"


def cluster(name: str, endpoints: Sequence[tuple[str, int]],
            destination_rule: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A STATIC Envoy cluster for a Service whose endpoints are ``endpoints`` (address, port)."""
    out: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "name": name,
        "type": "STATIC",
        "connect_timeout": "2s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": address, "port_value": port}}}}
                for address, port in endpoints]}],
        },
    }
    policy = (destination_rule or {}).get("spec", {}).get("trafficPolicy") or {}
    pending = ((policy.get("connectionPool") or {}).get("http") or {}).get("http1MaxPendingRequests")
    if pending is not None:
        out["circuit_breakers"] = {"thresholds": [{"max_pending_requests": int(pending)}]}
    outlier = policy.get("outlierDetection")
    if outlier:
        detection: dict[str, Any] = {}
        if "consecutive5xxErrors" in outlier:
            detection["consecutive_5xx"] = int(outlier["consecutive5xxErrors"])
        if "interval" in outlier:
            detection["interval"] = _seconds(str(outlier["interval"]))
        if "baseEjectionTime" in outlier:
            detection["base_ejection_time"] = _seconds(str(outlier["baseEjectionTime"]))
        if "maxEjectionPercent" in outlier:
            detection["max_ejection_percent"] = int(outlier["maxEjectionPercent"])
        out["outlier_detection"] = detection
    return out


def destination_rule_for(host: str, namespace: str, rules: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    fqdn = service_fqdn(host, namespace)
    for rule in rules:
        rule_ns = rule["metadata"].get("namespace", namespace)
        if service_fqdn(str(rule["spec"]["host"]), rule_ns) == fqdn:
            return rule
    return None


__all__ = ["ROUTE_CONFIG", "cluster", "cluster_name", "destination_rule_for", "destinations", "gateway_hosts",
           "route_configuration", "service_fqdn", "virtual_host"]
