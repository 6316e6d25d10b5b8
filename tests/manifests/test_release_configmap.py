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
