"""Policy of monitoring under STRICT mTLS: Prometheus scrapes the mesh's workloads with the mesh's certificates.

Istio's documented approach: Prometheus gets the workload certificate from a sidecar at a mounted path;
every PodMonitor or ServiceMonitor of a target in a mesh namespace (``istio-injection: enabled``)

- scrapes through a scrape class of the cluster's Prometheus (``prometheus.prometheusSpec.scrapeClasses``
  of the kube-prometheus-stack values), whose ``tlsConfig`` files (CA, certificate, key) lie under one of
  Prometheus' ``volumeMounts`` (a monitor's own ``tlsConfig`` cannot name files);
- uses ``scheme: https`` on every endpoint, and leaves TLS to the scrape class.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mlops_gitops.manifests import chartvalues
from mlops_gitops.manifests.model import Obj, Problem

MONITOR_KINDS = ("PodMonitor", "ServiceMonitor")
MONITORING_GROUP = "monitoring.coreos.com"
PROMETHEUS_CHART = "kube-prometheus-stack"
MESH_LABEL = ("istio-injection", "enabled")
TLS_FILES = ("caFile", "certFile", "keyFile")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def mesh_namespaces(objects: Iterable[Obj]) -> set[str]:
    label, value = MESH_LABEL
    return {o.name for o in objects if o.kind == "Namespace" and o.group == ""
            and _dict(o.metadata.get("labels")).get(label) == value}


def monitors_of_the_mesh(objects: Iterable[Obj], mesh: set[str]) -> list[Obj]:
    found = []
    for obj in objects:
        if obj.kind not in MONITOR_KINDS or obj.group != MONITORING_GROUP:
            continue
        selector = _dict(obj.spec.get("namespaceSelector"))
        targets = set(map(str, _list(selector.get("matchNames")))) or {obj.namespace}
        if selector.get("any") is True or targets & mesh:
            found.append(obj)
    return found


def check_endpoints(monitor: Obj) -> Iterator[Problem]:
    endpoints = _list(monitor.spec.get("podMetricsEndpoints")) or _list(monitor.spec.get("endpoints"))
    for endpoint in map(_dict, endpoints):
        port = endpoint.get("port") or endpoint.get("targetPort") or "?"
        if endpoint.get("scheme") != "https":
            yield Problem.at(monitor, f"endpoint {port}: scheme must be https under STRICT mTLS")
        if "tlsConfig" in endpoint:
            yield Problem.at(monitor, f"endpoint {port}: tlsConfig belongs to the scrape class")


def check_scrape_class(monitor: Obj, prometheus_spec: dict[str, Any], where: str) -> Iterator[Problem]:
    """``where``: the cluster whose Prometheus scrapes (for the message)."""
    mounts = [str(_dict(m).get("mountPath", "")).rstrip("/") + "/" for m in _list(prometheus_spec.get("volumeMounts"))]
    classes = {str(_dict(c).get("name")): _dict(c) for c in _list(prometheus_spec.get("scrapeClasses"))}
    name = monitor.spec.get("scrapeClass")
    scrape_class = classes.get(str(name)) if name else None
    if scrape_class is None:
        yield Problem.at(monitor, f"scrapes a mesh namespace without a scrape class of the Prometheus of {where} "
                                  f"(scrapeClass {name!r}, defined: {sorted(classes)})")
        return
    tls = _dict(scrape_class.get("tlsConfig"))
    for key in TLS_FILES:
        path = str(tls.get(key, ""))
        if not any(path.startswith(m) for m in mounts):
            yield Problem.at(monitor, f"scrape class {name!r} of {where}: tlsConfig.{key} {path!r} is not under a "
                                      "volume Prometheus mounts")


def prometheus_specs(objects: Iterable[Obj], root: Path) -> Iterator[tuple[Obj, dict[str, Any]]]:
    """Each kube-prometheus-stack Application of a bundle with its merged ``prometheus.prometheusSpec``."""
    for app in objects:
        if app.kind != "Application" or app.group != "argoproj.io":
            continue
        for chart, _, values, _ in chartvalues.app_values(app, root):
            if chart == PROMETHEUS_CHART:
                yield app, _dict(chartvalues.get(values, "prometheus.prometheusSpec", {}))


def check_repo(objects: list[Obj], cluster_bundles: Iterable[list[Obj]], root: Path) -> Iterator[Problem]:
    """Every monitor of the mesh, against the Prometheus of every cluster bundle."""
    monitors = monitors_of_the_mesh(objects, mesh_namespaces(objects))
    for monitor in monitors:
        yield from check_endpoints(monitor)
    for bundle in cluster_bundles:
        for app, spec in prometheus_specs(bundle, root):
            for monitor in monitors:
                yield from check_scrape_class(monitor, spec, str(app.source))
