"""Every image and base image the platform runs is pinned, and every image built here has a Dockerfile."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from support.gitops import CLUSTERS, REPO, images_in, render

DOCKERFILES = {
    "ghcr.io/mlops-gitops/model-server": REPO / "serving" / "Dockerfile",
    "ghcr.io/mlops-gitops/mlops-jobs": REPO / "workflows" / "Dockerfile",
    "ghcr.io/mlops-gitops/mlflow-server": REPO / "infra" / "mlflow" / "Dockerfile",
}
TAG = re.compile(r"^[\w.-]+$")


def _check(image: str) -> None:
    name, _, digest = image.partition("@")
    repository, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "")
    assert digest or (tag and tag != "latest" and TAG.match(tag)), f"image {image!r} is not pinned"
    assert repository


@pytest.mark.parametrize("folder", ["workflows/manifests", "infra/mlflow", "infra/minio", "infra/postgres",
                                    *(f"clusters/{c}/workflow-templates" for c in CLUSTERS)])
def test_rendered_images_are_pinned(folder: str) -> None:
    images = [i for d in render(REPO / folder) for i in images_in(d)]
    images += [d["spec"]["imageName"] for d in render(REPO / folder) if d.get("kind") == "Cluster"]
    assert images, folder
    for image in images:
        _check(image)


def test_images_in_chart_values_are_pinned() -> None:
    for path in sorted(REPO.glob("infra/*/values*.yaml")) + sorted(REPO.glob("clusters/*/values/*.yaml")):
        values = yaml.safe_load(path.read_text()) or {}
        stack = [values]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                if isinstance(node.get("repository"), str) and "tag" in node:
                    assert str(node["tag"]) not in ("", "latest"), f"{path}: {node}"
                if "tag" in node and isinstance(node["tag"], str) and node is not values:
                    assert node["tag"] != "latest", path
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
        if path.name == "values.yaml" and path.parent.name == "argo-workflows":
            assert values["images"]["tag"].startswith("v3.7.")


@pytest.mark.parametrize(("image", "dockerfile"), sorted(DOCKERFILES.items()))
def test_dockerfiles_are_multi_stage_non_root_and_pinned(image: str, dockerfile: Any) -> None:
    text = dockerfile.read_text()
    assert image in text, f"{dockerfile} does not name the image it builds"
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(froms) >= 2, "multi-stage"
    for base in froms:
        base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
        _check(base)
    assert re.search(r"^USER 1\d{4}(:\d+)?$", text, re.M), "runs as a numeric non-root user"
    assert "pip install" in text
    if image.endswith("/mlflow-server"):
        # mlflow and its drivers only: the tracking-server extra's requirements, no project package.
        assert "['tracking-server']" in text and "COPY pyproject.toml ./" in text
        assert not re.search(r"^COPY (?!pyproject\.toml |--from=)", text, re.M), "copies the project into the image"
        assert not re.search(r"pip install [^\n]*\.\[", text), "installs the project"
    else:
        assert '".[serving]"' in text or '".[workflows]"' in text


def test_rendered_images_built_here_have_a_dockerfile() -> None:
    for folder in ("workflows/manifests", "infra/mlflow"):
        for image in (i for d in render(REPO / folder) for i in images_in(d)):
            if image.startswith("ghcr.io/mlops-gitops/"):
                assert image.split(":")[0] in DOCKERFILES, image
