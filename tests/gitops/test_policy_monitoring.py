"""The validator's monitoring policy (mlops_gitops.manifests.policy_monitoring): each rule passes a good
repository and names the problem in a bad one."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_gitops.manifests import Obj, Source, policy_monitoring

PROMETHEUS_VALUES = {"prometheus": {"prometheusSpec": {
    "volumeMounts": [{"name": "istio-certs", "mountPath": "/etc/prom-certs/"}],
    "scrapeClasses": [{"name": "istio-mtls", "tlsConfig": {
        "caFile": "/etc/prom-certs/root-cert.pem", "certFile": "/etc/prom-certs/cert-chain.pem",
        "keyFile": "/etc/prom-certs/key.pem", "insecureSkipVerify": True}}],
}}}


def _namespace(name: str, mesh: bool) -> dict[str, Any]:
    labels = {"istio-injection": "enabled"} if mesh else {}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def good_monitors() -> list[dict[str, Any]]:
    return [
        _namespace("models", mesh=True),
        _namespace("plain", mesh=False),
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
         "metadata": {"name": "server", "namespace": "models"},
         "spec": {"scrapeClass": "istio-mtls", "selector": {},
                  "podMetricsEndpoints": [{"port": "http", "scheme": "https"}]}},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
         "metadata": {"name": "db", "namespace": "plain"},
         "spec": {"selector": {}, "endpoints": [{"port": "metrics"}]}},
    ]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "prometheus.yaml").write_text(yaml.safe_dump(PROMETHEUS_VALUES))
    return tmp_path


def _cluster() -> list[Obj]:
    app = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
           "metadata": {"name": "kube-prometheus-stack", "namespace": "argocd"},
           "spec": {"sources": [{"repoURL": "https://charts.example.com", "chart": "kube-prometheus-stack",
                                 "targetRevision": "1.0.0", "helm": {"valueFiles": ["$values/prometheus.yaml"]}}]}}
    return [Obj(app, Source(Path("clusters/demo"), rendered=True))]


def _problems(docs: list[dict[str, Any]], root: Path) -> list[str]:
    objects = [Obj(d, Source(Path("infra/monitoring"), rendered=True)) for d in docs]
    return [str(p) for p in policy_monitoring.check_repo(objects, [_cluster()], root)]


def _pod_monitor(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == "PodMonitor"]
    spec: dict[str, Any] = doc["spec"]
    return spec


def _no_scrape_class(docs: list[dict[str, Any]]) -> None:
    del _pod_monitor(docs)["scrapeClass"]


def _plain_http(docs: list[dict[str, Any]]) -> None:
    _pod_monitor(docs)["podMetricsEndpoints"][0]["scheme"] = "http"


def _own_tls(docs: list[dict[str, Any]]) -> None:
    _pod_monitor(docs)["podMetricsEndpoints"][0]["tlsConfig"] = {"insecureSkipVerify": True}


def _plain_namespace_joins_the_mesh(docs: list[dict[str, Any]]) -> None:
    docs[1]["metadata"]["labels"] = {"istio-injection": "enabled"}


def test_a_good_repository_has_no_problem(root: Path) -> None:
    assert _problems(good_monitors(), root) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_no_scrape_class, "PodMonitor/models/server: scrapes a mesh namespace without a scrape class of the "
                           "Prometheus of clusters/demo/ (scrapeClass None, defined: ['istio-mtls'])"),
        (_plain_http, "PodMonitor/models/server: endpoint http: scheme must be https under STRICT mTLS"),
        (_own_tls, "PodMonitor/models/server: endpoint http: tlsConfig belongs to the scrape class"),
        (_plain_namespace_joins_the_mesh, "ServiceMonitor/plain/db: endpoint metrics: scheme must be https"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_each_rule_names_the_problem(root: Path, mutate: Callable[[list[dict[str, Any]]], None],
                                     expected: str) -> None:
    docs = copy.deepcopy(good_monitors())
    mutate(docs)
    problems = _problems(docs, root)
    assert any(expected in p for p in problems), problems


def test_the_certificates_must_be_mounted(root: Path) -> None:
    values = copy.deepcopy(PROMETHEUS_VALUES)
    values["prometheus"]["prometheusSpec"]["volumeMounts"] = [{"name": "other", "mountPath": "/etc/other"}]
    (root / "prometheus.yaml").write_text(yaml.safe_dump(values))
    problems = _problems(good_monitors(), root)
    assert [p.split(": ", 2)[2] for p in problems] == [
        f"scrape class 'istio-mtls' of clusters/demo/: tlsConfig.{key} '{path}' is not under a volume Prometheus "
        "mounts" for key, path in (("caFile", "/etc/prom-certs/root-cert.pem"),
                                   ("certFile", "/etc/prom-certs/cert-chain.pem"),
                                   ("keyFile", "/etc/prom-certs/key.pem"))]
