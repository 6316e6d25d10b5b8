"""The kind cluster runs exactly the images hack/build-images.sh builds; prod-example keeps registry images.

Every Application of a cluster is rendered from its path as Argo CD would (the models ApplicationSet's
folders with its ``kustomize.images`` applied the way Argo CD applies them: ``kustomize edit set
image`` writes them into the folder's kustomization, under the folder's own replacements), and every
project image it names is checked against the list the build script prints.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .gitops_support import REPO, images_in, of_kind, render

PROJECT_REGISTRIES = ("ghcr.io/mlops-gitops/", "localhost/mlops/")


def _built() -> dict[str, str]:
    """image -> Dockerfile, from ``hack/build-images.sh --list``."""
    result = subprocess.run(["bash", str(REPO / "hack" / "build-images.sh"), "--list"], capture_output=True,
                            text=True, check=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    return dict(line.split() for line in result.stdout.splitlines())


def _set_images(kustomization: Path, overrides: list[str]) -> None:
    """What ``kustomize edit set image old=new[:tag]`` writes (Argo CD's ``kustomize.images``)."""
    doc = yaml.safe_load(kustomization.read_text())
    entries = doc.setdefault("images", [])
    for spec in overrides:
        old, _, new = spec.partition("=")
        entry: dict[str, str] = {"name": old}
        name, _, tag = new.rpartition(":") if ":" in new.rsplit("/", 1)[-1] else (new, "", "")
        entry["newName"] = name
        if tag:
            entry["newTag"] = tag
        entries.append(entry)
    kustomization.write_text(yaml.safe_dump(doc))


def _project_images(cluster: str, tmp_path: Path) -> dict[str, set[str]]:
    """Project image -> the Applications (or model folders) that run it, in ``cluster``."""
    found: dict[str, set[str]] = {}
    rendered = render(REPO / "clusters" / cluster)
    for app in of_kind(rendered, "Application"):
        sources = app["spec"].get("sources") or [app["spec"]["source"]]
        # Helm charts from their repositories run no project image (their tags: test_gitops_images).
        for source in (s for s in sources if "path" in s and "chart" not in s):
            for image in (i for d in render(REPO / source["path"]) for i in images_in(d)):
                found.setdefault(image, set()).add(app["metadata"]["name"])
    [appset] = [a for a in of_kind(rendered, "ApplicationSet") if a["metadata"]["name"] == "models"]
    overrides = appset["spec"]["template"]["spec"]["source"].get("kustomize", {}).get("images", [])
    copy = tmp_path / cluster / "serving" / "manifests"
    shutil.copytree(REPO / "serving" / "manifests", copy)
    folders = sorted(p.parent for p in copy.glob("models/*/*/kustomization.yaml"))
    assert folders
    for folder in folders:
        if overrides:
            _set_images(folder / "kustomization.yaml", overrides)
        result = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, check=False,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        for image in (i for d in yaml.safe_load_all(result.stdout) if d for i in images_in(d)):
            found.setdefault(image, set()).add(str(folder.relative_to(copy)))
    return {i: where for i, where in found.items() if i.startswith(PROJECT_REGISTRIES)}


def test_every_project_image_of_the_kind_cluster_is_built_by_the_build_script(tmp_path: Path) -> None:
    built = _built()
    assert set(built.values()) == {"serving/Dockerfile", "workflows/Dockerfile", "infra/mlflow/Dockerfile"}
    used = _project_images("kind", tmp_path)
    # All three images run on kind: the model servers, the workflow steps and analysis Jobs, MLflow.
    assert {i.rsplit(":", 1)[0].rsplit("/", 1)[1] for i in used} == {"model-server", "mlops-jobs", "mlflow-server"}
    not_built = {i: sorted(w) for i, w in used.items() if i not in built}
    assert not not_built, f"kind runs images hack/build-images.sh does not build: {not_built}"


def test_the_build_tags_follow_a_release_bump(tmp_path: Path) -> None:
    """A model folder that pins another tag than the build makes the check fail (the check can fail)."""
    release = REPO / "serving" / "manifests" / "models" / "wine-classifier" / "staging" / "release.env"
    text = release.read_text()
    assert "IMAGE_TAG=0.1.0" in text
    copy = tmp_path / "serving" / "manifests"
    shutil.copytree(REPO / "serving" / "manifests", copy)
    (copy / "models" / "wine-classifier" / "staging" / "release.env").write_text(
        text.replace("IMAGE_TAG=0.1.0", "IMAGE_TAG=0.2.0"))
    folder = copy / "models" / "wine-classifier" / "staging"
    _set_images(folder / "kustomization.yaml", ["ghcr.io/mlops-gitops/model-server=localhost/mlops/model-server"])
    out = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, check=True).stdout
    images = {i for d in yaml.safe_load_all(out) if d for i in images_in(d)}
    assert "localhost/mlops/model-server:0.2.0" in images
    assert "localhost/mlops/model-server:0.2.0" not in _built()


@pytest.mark.parametrize("cluster", ["prod-example"])
def test_production_example_runs_registry_images_only(cluster: str, tmp_path: Path) -> None:
    used = _project_images(cluster, tmp_path)
    assert used
    local = {i: sorted(w) for i, w in used.items() if not i.startswith("ghcr.io/mlops-gitops/")}
    assert not local, f"{cluster} runs images no registry serves: {local}"
