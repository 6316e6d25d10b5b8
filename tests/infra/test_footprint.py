"""The kind cluster's footprint stays under its target, and the sum counts what it says it counts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.project import REPO

from mlops_platform.manifests import footprint as fp


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


def test_kind_requests_stay_under_the_target_with_two_models_in_two_environments() -> None:
    footprint = fp.compute(REPO, "kind")
    peak = footprint.total()
    print(footprint.table())
    assert peak.cpu_m <= fp.TARGET_CPU_M, footprint.table()
    assert peak.memory <= fp.TARGET_MEMORY, footprint.table()
    # Two models, two environments, each serving (pinned): four Rollouts with pods.
    rollouts = {line.application: line.pods for line in footprint.lines if line.workload.startswith("Rollout/")}
    assert set(rollouts) == {f"{m}-{e}" for m in ("wine-classifier", "breast-cancer-classifier")
                             for e in ("staging", "production")}
    assert all(pods >= 1 for pods in rollouts.values()), rollouts
    # Every workload this repository configures sets its requests; only upstream ones may not.
    unset = [f"{x.application}/{x.workload}" for x in footprint.unset() if x.source != "upstream default"]
    assert not unset, unset
    # The mesh's proxies are counted: a model server pod asks for its container plus the sidecar.
    [wine] = [x for x in footprint.lines if x.application == "wine-classifier-staging"]
    assert wine.per_pod.cpu_m == 100 + 20 and wine.per_pod.memory == (256 + 64) * 2**20
    assert any(x.transient and x.pods == 2 for x in footprint.lines)  # training both models


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
