"""Monitoring under STRICT mTLS, and the promotion bot's view of the alert rules."""

from __future__ import annotations

import re
from typing import Any

import yaml
from support.gitops import REPO, of_kind, render

from mlops_workflows.promote.settings import PromotionSettings

MONITOR_KINDS = ("PodMonitor", "ServiceMonitor")


def _mesh_namespaces() -> set[str]:
    return {n["metadata"]["name"] for n in of_kind(render(REPO / "infra" / "namespaces"), "Namespace")
            if (n["metadata"].get("labels") or {}).get("istio-injection") == "enabled"}


def _prometheus_spec() -> dict[str, Any]:
    values = yaml.safe_load((REPO / "infra" / "kube-prometheus-stack" / "values.yaml").read_text())
    return dict(values["prometheus"]["prometheusSpec"])


def _monitors() -> list[dict[str, Any]]:
    folders = [REPO / "infra" / "monitoring", *sorted((REPO / "serving" / "manifests" / "models").glob("*/*"))]
    return [m for folder in folders for kind in MONITOR_KINDS for m in of_kind(render(folder), kind)]


def _target_namespaces(monitor: dict[str, Any]) -> set[str]:
    selector = monitor["spec"].get("namespaceSelector") or {}
    return set(selector.get("matchNames") or [monitor["metadata"].get("namespace", "")])


def test_monitors_of_mesh_workloads_scrape_with_the_istio_certificates() -> None:
    """Istio's documented approach: Prometheus gets the workload certificate from a sidecar at
    /etc/prom-certs/; every monitor of a mesh target scrapes https with it, through one scrape class
    (a PodMonitor's own tlsConfig cannot name files)."""
    spec = _prometheus_spec()
    mounts = [m["mountPath"].rstrip("/") + "/" for m in spec["volumeMounts"]]
    classes = {c["name"]: c for c in spec.get("scrapeClasses") or []}
    mesh = _mesh_namespaces()
    checked = set()
    for monitor in _monitors():
        name = f"{monitor['kind']}/{monitor['metadata'].get('namespace')}/{monitor['metadata']['name']}"
        if not _target_namespaces(monitor) & mesh:
            continue
        checked.add(monitor["kind"])
        scrape_class = classes.get(monitor["spec"].get("scrapeClass", ""))
        assert scrape_class, f"{name} scrapes a mesh namespace without a scrape class of {sorted(classes)}"
        tls = scrape_class["tlsConfig"]
        for key in ("caFile", "certFile", "keyFile"):
            assert any(tls[key].startswith(m) for m in mounts), f"{key} {tls[key]} is not mounted into Prometheus"
        endpoints = monitor["spec"].get("podMetricsEndpoints") or monitor["spec"].get("endpoints")
        for endpoint in endpoints:
            assert endpoint.get("scheme") == "https", f"{name}: scheme must be https under STRICT mTLS"
            assert "tlsConfig" not in endpoint, f"{name}: the scrape class holds the TLS settings"
    assert checked == set(MONITOR_KINDS)


def test_drift_alert_pattern_of_the_promotion_bot_matches_the_drift_alerts() -> None:
    pattern = str(PromotionSettings.model_fields["drift_alert_pattern"].default)
    alerts = {r["alert"]: r for rule in of_kind(render(REPO / "infra" / "monitoring" / "rules"), "PrometheusRule")
              for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r}
    matched = {name for name in alerts if re.fullmatch(pattern, name)}
    drift = {name for name in alerts if name.endswith("Drift")}
    assert drift, "no drift alert in infra/monitoring/rules/"
    assert matched == drift, f"pattern {pattern!r} matches {sorted(matched)}, the drift alerts are {sorted(drift)}"
    for name in drift:  # the bot matches alerts to a model by this label
        assert "model" in alerts[name]["expr"], name
