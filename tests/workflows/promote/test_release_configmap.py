"""A canary never loses the ConfigMap its stable pods read (argo-rollouts#1297, fluxcd/flux2#3378).

The release ConfigMap's name carries its content hash, so each promotion creates a new one; the
previous one must survive the sync that starts the canary (Argo CD prunes by default in the
ApplicationSet), and must not make the Application OutOfSync afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.podexec import render
from support.project import REPO

ENV_FOLDERS = sorted(p.parent for p in (REPO / "serving" / "manifests" / "models").glob("*/*/kustomization.yaml"))


@pytest.mark.parametrize("folder", ENV_FOLDERS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_release_configmap_read_by_pods_is_never_pruned(folder: Path) -> None:
    rendered = render(folder)
    rollouts = rendered.of_kind("Rollout")
    assert len(rollouts) == 1
    pod = rollouts[0]["spec"]["template"]["spec"]
    referenced = {
        env["valueFrom"]["configMapKeyRef"]["name"]
        for c in pod["containers"]
        for env in c.get("env", [])
        if "configMapKeyRef" in env.get("valueFrom", {})
    } | {s["configMapRef"]["name"] for c in pod["containers"] for s in c.get("envFrom", []) if "configMapRef" in s}
    hashed = [cm for cm in rendered.of_kind("ConfigMap") if cm["metadata"]["name"] in referenced]
    assert any("-model-server-release-" in cm["metadata"]["name"] for cm in hashed), referenced
    for cm in hashed:
        annotations = cm["metadata"].get("annotations", {})
        options = {o.strip() for o in annotations.get("argocd.argoproj.io/sync-options", "").split(",")}
        assert "Prune=false" in options, f"{cm['metadata']['name']} would be pruned at the next release"
        compare = annotations.get("argocd.argoproj.io/compare-options", "")
        assert "IgnoreExtraneous" in compare, f"{cm['metadata']['name']} left behind would show OutOfSync"


@pytest.mark.parametrize("folder", ENV_FOLDERS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_fresh_clone_pins_nothing_and_runs_no_model_server_pods(folder: Path) -> None:
    """release.env pins no version, so the environment renders a Rollout of 0 replicas and nothing scales it."""
    from mlops_workflows.promote.release import pinned_version

    assert pinned_version((folder / "release.env").read_text()) is None
    rendered = render(folder)
    [rollout] = rendered.of_kind("Rollout")
    assert rollout["spec"]["replicas"] == 0
    assert rendered.of_kind("HorizontalPodAutoscaler") == []
    assert rendered.of_kind("PodDisruptionBudget") == []


def test_the_first_pin_lets_the_autoscaler_own_the_replicas(tmp_path: Path) -> None:
    """What the first promotion commits (pin + drop the unpinned component) renders pods again."""
    import shutil

    from mlops_workflows.promote.release import drop_unpinned, set_model_version

    copy = tmp_path / "serving" / "manifests"
    shutil.copytree(REPO / "serving" / "manifests", copy)
    folder = copy / "models" / "wine-classifier" / "production"
    (folder / "release.env").write_text(set_model_version((folder / "release.env").read_text(), 4))
    (folder / "kustomization.yaml").write_text(drop_unpinned((folder / "kustomization.yaml").read_text()))
    rendered = render(folder)
    [rollout] = rendered.of_kind("Rollout")
    assert "replicas" not in rollout["spec"]
    [hpa] = rendered.of_kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == rollout["metadata"]["name"]
    assert len(rendered.of_kind("PodDisruptionBudget")) == 1
    pod = rendered.rollout_container(rollout["metadata"]["name"], "model-server", secrets=_store_secret())
    assert pod.env["MODEL_VERSION"] == "4"


def _store_secret() -> dict[str, dict[str, str]]:
    from support.podexec import external_secret_keys

    keys = external_secret_keys("model-store-credentials") or set()
    return {"model-store-credentials": dict.fromkeys(keys, "test")}
