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
from support.gitops import REPO, images_in, project_images, set_images


def _built() -> dict[str, str]:
    """image -> Dockerfile, from ``hack/build-images.sh --list``."""
    result = subprocess.run(["bash", str(REPO / "hack" / "build-images.sh"), "--list"], capture_output=True,
                            text=True, check=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    return dict(line.split() for line in result.stdout.splitlines())


def test_every_project_image_of_the_kind_cluster_is_built_by_the_build_script(tmp_path: Path) -> None:
    built = _built()
    assert set(built.values()) == {"serving/Dockerfile", "workflows/Dockerfile", "infra/mlflow/Dockerfile"}
    used = project_images(REPO, "kind", tmp_path)
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
    set_images(folder / "kustomization.yaml", ["ghcr.io/mlops-gitops/model-server=localhost/mlops/model-server"])
    out = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, check=True).stdout
    images = {i for d in yaml.safe_load_all(out) if d for i in images_in(d)}
    assert "localhost/mlops/model-server:0.2.0" in images
    assert "localhost/mlops/model-server:0.2.0" not in _built()


@pytest.mark.parametrize("cluster", ["prod-example"])
def test_production_example_runs_registry_images_only(cluster: str, tmp_path: Path) -> None:
    used = project_images(REPO, cluster, tmp_path)
    assert used
    local = {i: sorted(w) for i, w in used.items() if not i.startswith("ghcr.io/mlops-gitops/")}
    assert not local, f"{cluster} runs images no registry serves: {local}"
