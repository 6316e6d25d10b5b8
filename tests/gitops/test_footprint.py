"""The kind cluster's footprint stays under its target, and the sum counts what it says it counts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from support.project import REPO

from mlops_gitops.manifests import footprint as fp
from mlops_gitops.manifests import upstream_sizes
from mlops_gitops.manifests.discover import render
from mlops_platform import environments


def test_quantities() -> None:
    assert fp.cpu_millis("250m") == 250 and fp.cpu_millis("1") == 1000 and fp.cpu_millis(0.5) == 500
    assert fp.memory_bytes("128Mi") == 128 * 2**20 and fp.memory_bytes("1Gi") == 2**30
    assert fp.memory_bytes("512M") == 512 * 10**6 and fp.memory_bytes(1024) == 1024
    with pytest.raises(ValueError, match="not a memory quantity"):
        fp.memory_bytes("12 apples")


def test_pod_resources_count_native_sidecars_and_the_largest_init_container() -> None:
    pod = {
        "containers": [{"resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}],
        "initContainers": [
            {"restartPolicy": "Always", "resources": {"requests": {"cpu": "20m", "memory": "64Mi"}}},
            {"resources": {"requests": {"cpu": "1", "memory": "32Mi"}}},
        ],
    }
    res = fp.pod_resources(pod)
    assert (res.cpu_m, res.memory) == (1000, 128 * 2**20)
    assert res.cpu_limit_m is None  # a container without limits: unbounded


def test_kind_requests_stay_under_the_target_with_every_model_in_every_environment() -> None:
    footprint = fp.compute(REPO, "kind")
    peak = footprint.total()
    print(footprint.table())
    assert peak.cpu_m <= fp.TARGET_CPU_M, footprint.table()
    assert peak.memory <= fp.TARGET_MEMORY, footprint.table()
    # Every model (workflows/models/) in every environment, each counted as serving: one Rollout with pods.
    models = sorted(p.stem for p in (REPO / "workflows" / "models").glob("*.yaml"))
    rollouts = {line.application: line.pods for line in footprint.lines if line.workload.startswith("Rollout/")}
    assert set(rollouts) == {f"{m}-{e}" for m in models for e in environments.names()}
    assert all(pods >= 1 for pods in rollouts.values()), rollouts
    # Every workload this repository configures sets its requests; only upstream ones may not.
    unset = [f"{x.application}/{x.workload}" for x in footprint.unset() if x.source != "upstream default"]
    assert not unset, unset
    # The mesh's proxies are counted: a model server pod asks for its container plus the sidecar.
    [wine] = [x for x in footprint.lines if x.application == "wine-classifier-staging"]
    assert wine.per_pod.cpu_m == 100 + 20 and wine.per_pod.memory == (256 + 64) * 2**20
    assert any(x.transient and x.pods == len(models) for x in footprint.lines)  # training every model


def test_prod_example_is_sized_for_a_cloud_and_exceeds_the_laptop_target() -> None:
    """The same computation on the cloud example (three production replicas, larger requests) goes over."""
    footprint = fp.compute(REPO, "prod-example", nodes=3)
    assert footprint.total().cpu_m > fp.TARGET_CPU_M or footprint.total().memory > fp.TARGET_MEMORY
    production = [x for x in footprint.lines if x.application == "wine-classifier-production"]
    assert production and production[0].pods >= 3


def test_a_chart_without_a_workload_table_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(REPO, root, ignore=shutil.ignore_patterns(".git", ".venv", ".mlops", "__pycache__"))
    app = root / "apps" / "prometheus-pushgateway.yaml"
    app.write_text(app.read_text().replace("chart: prometheus-pushgateway", "chart: unknown-chart"))
    with pytest.raises(ValueError, match="unknown-chart has no workload table"):
        fp.compute(root, "kind")


def test_cli_refuses_below_the_capacity(capsys: pytest.CaptureFixture[str]) -> None:
    assert fp.main(["--root", str(REPO), "--cluster", "kind", "--target"]) == 0
    assert fp.main(["--root", str(REPO), "--cluster", "kind", "--capacity-cpus", "1",
                    "--capacity-memory", str(2 * 2**30)]) == 1
    err = capsys.readouterr().err
    assert "Docker gives 1" in err and "Give Docker more memory" in err


def _chart_pins(cluster: str) -> dict[str, set[str]]:
    """Chart -> the versions the cluster's Applications pin."""
    docs = [d for d in render(REPO / "clusters" / cluster, "kubectl")
            if isinstance(d, dict) and d.get("kind") == "Application"]
    pins: dict[str, set[str]] = {}
    for app in docs:
        spec = app.get("spec") or {}
        for source in spec.get("sources") or [spec.get("source") or {}]:
            if "chart" in source:
                pins.setdefault(str(source["chart"]), set()).add(str(source["targetRevision"]))
    return pins


@pytest.mark.parametrize("cluster", ["kind", "prod-example"])
def test_chart_defaults_were_read_at_the_versions_the_applications_pin(cluster: str) -> None:
    """A chart bumped without reading its values.yaml again fails here (CHART_READ_AT)."""
    pins = _chart_pins(cluster)
    assert pins, "no chart Application rendered"
    for chart, versions in pins.items():
        assert chart in fp.CHART_READ_AT, f"{chart}: no record of the version its defaults were read from"
        assert versions == {fp.CHART_READ_AT[chart][0]}, (chart, versions, fp.CHART_READ_AT[chart])
    assert set(fp.CHART_WORKLOADS) == set(fp.CHART_READ_AT)


def test_kind_counts_argo_cd_at_the_sizes_kind_up_applies() -> None:
    footprint = fp.compute(REPO, "kind")
    argocd = {x.workload: x for x in footprint.lines if x.application == "argocd"}
    assert set(argocd) == set(fp.ARGOCD_WORKLOADS)
    sizes = upstream_sizes.load(REPO / "clusters" / "kind" / upstream_sizes.ARGOCD_FILE)
    for workload, line in argocd.items():
        assert not line.per_pod.unset and line.source == upstream_sizes.ARGOCD_FILE, workload
        assert line.per_pod == fp.Resources.of(sizes[workload])
    # Without the file (prod-example installs Argo CD its own way) they stay unset, and say so.
    prod = [x for x in fp.compute(REPO, "prod-example", nodes=3).lines if x.application == "argocd"]
    assert prod and all(x.per_pod.unset and x.source == "upstream default" for x in prod)


def test_values_merge_over_chart_defaults_and_autoscalers_count_their_minimum(tmp_path: Path) -> None:
    """Helm's merge: a chart default a value file leaves unset still applies (minio's 16Gi request);
    a chart scaled by its autoscaler runs its minimum (the gateway's autoscaling.minReplicas)."""
    root = tmp_path / "repo"
    shutil.copytree(REPO, root, ignore=shutil.ignore_patterns(".git", ".venv", ".mlops", "__pycache__"))
    minio = root / "infra" / "minio" / "values.yaml"
    doc = yaml.safe_load(minio.read_text())
    doc.pop("resources")
    minio.write_text(yaml.safe_dump(doc))
    (root / "clusters" / "kind" / "values" / "minio.yaml").write_text("resources:\n  requests:\n    cpu: 20m\n")
    (root / "clusters" / "kind" / "values" / "istio-gateway.yaml").write_text(
        "autoscaling:\n  enabled: true\n  minReplicas: 3\n")
    lines = {x.workload: x for x in fp.compute(root, "kind").lines}
    minio_line = lines["minio/minio"]
    assert minio_line.per_pod.memory >= 16 * 2**30 and minio_line.source == "chart values"
    gateway = lines["gateway/istio-ingressgateway"]
    assert gateway.pods == 3
    assert gateway.per_pod.cpu_m == 50  # infra/istio/values-gateway.yaml over the chart's 100m


def test_upstream_sizes_print_kubectl_arguments_and_refuse_malformed_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("deployment/argocd-server:\n  requests: {cpu: 20m, memory: 64Mi}\n"
                    "  limits: {cpu: 500m, memory: 256Mi}\n")
    assert upstream_sizes.main([str(good)]) == 0
    assert capsys.readouterr().out.split() == [
        "deployment/argocd-server", "--requests=cpu=20m,memory=64Mi", "--limits=cpu=500m,memory=256Mi"]
    for text in ("pod/argocd-server:\n  requests: {cpu: 1, memory: 1Gi}\n  limits: {cpu: 1, memory: 1Gi}\n",
                 "deployment/argocd-server:\n  requests: {cpu: 1}\n  limits: {cpu: 1, memory: 1Gi}\n",
                 "deployment/argocd-server:\n  requests: {cpu: 1, memory: 1Gi}\n"):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        assert upstream_sizes.main([str(bad)]) == 2
        assert capsys.readouterr().err.startswith("error: ")


def test_kubectl_applies_the_argo_cd_sizes_as_the_footprint_counts_them(tmp_path: Path) -> None:
    """hack/kind-up.sh runs `kubectl set resources WORKLOAD --requests=.. --limits=..` with the lines
    upstream_sizes prints; kubectl (offline, --local) gives every container exactly those resources."""
    sizes = upstream_sizes.load(REPO / "clusters" / "kind" / upstream_sizes.ARGOCD_FILE)
    for workload, resources in sizes.items():
        kind, name = workload.split("/")
        pod = {"containers": [{"name": name, "image": "quay.io/argoproj/argocd:v3.5.1"}],
               "initContainers": [{"name": "copyutil", "image": "quay.io/argoproj/argocd:v3.5.1"}]}
        obj = {"apiVersion": "apps/v1", "kind": {"deployment": "Deployment", "statefulset": "StatefulSet"}[kind],
               "metadata": {"name": name, "namespace": "argocd"},
               "spec": {"selector": {"matchLabels": {"app": name}},
                        "template": {"metadata": {"labels": {"app": name}}, "spec": pod}}}
        manifest = tmp_path / f"{name}.yaml"
        manifest.write_text(yaml.safe_dump(obj))
        result = subprocess.run(["kubectl", "set", "resources", "--local", "-f", str(manifest),
                                 *upstream_sizes.kubectl_args(resources), "-o", "yaml"],
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        spec = yaml.safe_load(result.stdout)["spec"]["template"]["spec"]
        assert fp.pod_resources(spec) == fp.Resources.of(resources), workload
