"""The app-of-apps of every cluster: projects, wave order, destinations, one source of truth. (The rules
every Application follows — waves, automated sync, pinned charts, one namespace owner, the root
Application — are the validator's: infra/mlops_gitops/manifests/policy_argocd.py.)"""

from __future__ import annotations

import itertools
from typing import Any

import yaml
from support.gitops import CLUSTERS, REPO, of_kind, render

FLOATING = {"head", "main", "master", "latest", "stable", "*", ""}

# Dependency order of the platform (issue: Istio base -> istiod -> gateway, Argo Rollouts, Argo
# Workflows, kube-prometheus-stack, Pushgateway, MinIO, PostgreSQL, MLflow, platform config,
# workflow templates, models); each entry must sync in an earlier wave than the next.
ORDER = [
    "namespaces",
    "istio-base",
    "istiod",
    "istio-gateway",
    "argo-rollouts",
    "argo-workflows",
    "kube-prometheus-stack",
    "prometheus-pushgateway",
    "minio",
    "postgres",
    "mlflow",
    "mesh",
    "workflow-templates",
    "models-gateway",
]


def _wave(obj: dict[str, Any]) -> int:
    return int((obj["metadata"].get("annotations") or {})["argocd.argoproj.io/sync-wave"])


def _sources(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return ([spec["source"]] if spec.get("source") else []) + list(spec.get("sources") or [])


def _created_namespaces() -> set[str]:
    names: set[str] = set()
    for kfile in REPO.glob("infra/**/kustomization.yaml"):
        if yaml.safe_load(kfile.read_text()).get("kind") == "Component":
            continue
        names.update(d["metadata"]["name"] for d in of_kind(render(kfile.parent), "Namespace"))
    return names


def test_every_application_has_a_project_and_a_created_namespace(
    cluster_objects: list[dict[str, Any]],
) -> None:
    projects = {p["metadata"]["name"] for p in of_kind(cluster_objects, "AppProject")}
    # Namespaces of infra/, and those a cluster's own folder adds (kind: gitea).
    namespaces = _created_namespaces() | {n["metadata"]["name"] for n in of_kind(cluster_objects, "Namespace")}
    apps = [(a["metadata"]["name"], a["spec"], a) for a in of_kind(cluster_objects, "Application")]
    apps += [(f"{s['metadata']['name']} (generated)", s["spec"]["template"]["spec"], s)
             for s in of_kind(cluster_objects, "ApplicationSet")]
    for name, spec, _obj in apps:
        assert spec.get("project") in projects, f"{name}: project {spec.get('project')!r} is not an AppProject"
        namespace = spec["destination"]["namespace"]
        for env in ("staging", "production"):
            resolved = namespace.replace("{{ .path.basename }}", env)
            assert resolved in namespaces, f"{name}: destination namespace {resolved!r} is created by no manifest"
            if resolved == namespace:
                break
        assert spec["destination"].get("server") == "https://kubernetes.default.svc"


def test_waves_follow_the_dependency_order(cluster_objects: list[dict[str, Any]]) -> None:
    waves = {a["metadata"]["name"]: _wave(a) for a in of_kind(cluster_objects, "Application")}
    for before, after in itertools.pairwise(ORDER):
        assert waves[before] < waves[after], f"{before} (wave {waves[before]}) must sync before {after}"
    # Operators and the secrets their consumers mount come before the consumers.
    assert waves["external-secrets"] < waves["secret-store"] < waves["secrets-mlops"] < waves["minio"]
    assert waves["secrets-monitoring"] < waves["kube-prometheus-stack"]
    assert waves["cloudnative-pg"] < waves["postgres"]


def test_git_sources_come_from_the_clusters_repository(cluster: str, cluster_objects: list[dict[str, Any]]) -> None:
    """Charts (pinned, values from this repository: the validator's policy_argocd) aside, every source is
    the cluster's own repository at a fixed revision, and the Git server's Application on kind reads
    its values inline (it cannot read them from itself) and is applied by hack/kind-up.sh."""
    repo_url = _cluster_config(cluster)["repoURL"]
    for app in of_kind(cluster_objects, "Application"):
        name = app["metadata"]["name"]
        for source in _sources(app["spec"]):
            if "chart" in source:
                if name == "gitea" and cluster == "kind":
                    assert source["helm"]["valuesObject"] and "valueFiles" not in source["helm"]
                    assert app["metadata"]["labels"]["mlops.io/bootstrap"] == "true"
                continue
            assert source["repoURL"] == repo_url, f"{name}: {source['repoURL']}"
            assert str(source["targetRevision"]).lower() not in FLOATING - {"main"} or source.get("ref")


def test_repository_coordinates_are_written_once_per_cluster(cluster: str) -> None:
    """Only clusters/<name>/kustomization.yaml names the repository; apps/ holds placeholders."""
    config = _cluster_config(cluster)
    for path in (REPO / "apps").glob("*.yaml"):
        text = path.read_text()
        assert config["repoURL"] not in text, f"{path.relative_to(REPO)} repeats the repository URL"
        assert config["repository"] not in text, f"{path.relative_to(REPO)} repeats the repository"
    rendered = yaml.safe_dump_all(render(REPO / "clusters" / cluster))
    for placeholder in ("GIT_REPO_URL", "GIT_REVISION", "GIT_REPOSITORY", "CLUSTER/"):
        assert placeholder not in rendered
    texts = [p.read_text() for p in (REPO / "clusters" / cluster).rglob("*.yaml")]
    assert sum(t.count(config["repoURL"]) for t in texts) == 1
    # owner/name is part of the URL too: apart from the URL, it is written once.
    assert sum(t.count(config["repository"]) for t in texts) == 2
    owner_name = config["repoURL"].removesuffix(".git").split("/")[-2:]
    assert config["repository"] == "/".join(owner_name), "repository (owner/name) must name the repoURL's repository"


def test_argocd_restores_the_application_health_check() -> None:
    [cm] = of_kind(render(REPO / "infra" / "argocd"), "ConfigMap")
    assert cm["metadata"]["name"] == "argocd-cm"
    assert "obj.status.health" in cm["data"]["resource.customizations.health.argoproj.io_Application"]


def test_models_project_is_restricted_to_the_model_namespaces(cluster_objects: list[dict[str, Any]]) -> None:
    projects = {p["metadata"]["name"]: p["spec"] for p in of_kind(cluster_objects, "AppProject")}
    # No '*' and the chart repositories: the validator's policy_argocd. The models may only create
    # namespaced objects, in their environments' namespaces and the gateway's.
    assert projects["models"]["clusterResourceWhitelist"] == []
    assert {d["namespace"] for d in projects["models"]["destinations"]} == {
        "models-*", "istio-system"}


def _cluster_config(cluster: str) -> dict[str, str]:
    kustomization = yaml.safe_load((REPO / "clusters" / cluster / "kustomization.yaml").read_text())
    [generator] = [g for g in kustomization["configMapGenerator"] if g["name"] == "cluster-config"]
    return dict(literal.split("=", 1) for literal in generator["literals"])


def test_cluster_list() -> None:
    assert "kind" in CLUSTERS and len(CLUSTERS) >= 2


def test_each_cluster_has_one_root_syncing_its_folder(cluster: str, cluster_objects: list[dict[str, Any]]) -> None:
    """The shared root Application (clusters/components/base/) points at each cluster's own folder."""
    roots = [a for a in of_kind(cluster_objects, "Application") if a["metadata"]["name"] == "root"]
    assert [r["spec"]["source"]["path"] for r in roots] == [f"clusters/{cluster}"]
