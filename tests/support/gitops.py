"""Helpers of the platform GitOps tests: the repository's manifests, rendered as Argo CD would.

A module of its own (not conftest.py) so that the tests import it by a unique name: ``conftest``
is the name of several folders' fixture modules, and the last one imported would win."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_gitops.manifests import crossref

REPO = Path(__file__).resolve().parents[2]
CLUSTERS = sorted(p.name for p in (REPO / "clusters").iterdir() if (p / "kustomization.yaml").is_file())

_CACHE: dict[Path, list[dict[str, Any]]] = {}


def render(folder: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize <folder>`` (the renderer Argo CD uses for these folders), cached."""
    folder = folder.resolve()
    if folder not in _CACHE:
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            pytest.fail("kubectl is needed to render the kustomizations (kubectl kustomize)", pytrace=False)
        result = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True,
                                timeout=120, check=False)
        assert result.returncode == 0, f"kubectl kustomize {folder}: {result.stderr}"
        _CACHE[folder] = [d for d in yaml.safe_load_all(result.stdout) if isinstance(d, dict)]
    return _CACHE[folder]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


# Every ``image:`` string anywhere in a rendered object: the validator's own walk.
images_in = crossref.images


PROJECT_REGISTRIES = ("ghcr.io/mlops-gitops/", "localhost/mlops/")


def add_components(kustomization: Path, paths: list[str]) -> None:
    """What ``kustomize edit add component`` writes (Argo CD's ``kustomize.components``)."""
    doc = yaml.safe_load(kustomization.read_text())
    doc["components"] = [*(doc.get("components") or []), *paths]
    kustomization.write_text(yaml.safe_dump(doc))


def set_images(kustomization: Path, overrides: list[str]) -> None:
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


def project_images(root: Path, cluster: str, tmp_path: Path,
                   registries: tuple[str, ...] = PROJECT_REGISTRIES) -> dict[str, set[str]]:
    """Project image -> the Applications (or model folders) that run it, in ``cluster``."""
    found: dict[str, set[str]] = {}
    rendered = render(root / "clusters" / cluster)
    for app in of_kind(rendered, "Application"):
        sources = app["spec"].get("sources") or [app["spec"]["source"]]
        # Helm charts from their repositories run no project image (their tags: tests/gitops/test_images.py).
        for source in (s for s in sources if "path" in s and "chart" not in s):
            for image in (i for d in render(root / source["path"]) for i in images_in(d)):
                found.setdefault(image, set()).add(app["metadata"]["name"])
    [appset] = [a for a in of_kind(rendered, "ApplicationSet") if a["metadata"]["name"] == "models"]
    kustomize = appset["spec"]["template"]["spec"]["source"].get("kustomize", {})
    overrides, components = kustomize.get("images", []), kustomize.get("components", [])
    copy = tmp_path / cluster / "serving" / "manifests"
    shutil.copytree(root / "serving" / "manifests", copy)
    folders = sorted(p.parent for p in copy.glob("models/*/*/kustomization.yaml"))
    assert folders
    for folder in folders:
        if overrides:
            set_images(folder / "kustomization.yaml", overrides)
        if components:
            # `kustomize edit add component`: the paths are relative to the folder in the repository.
            original = root / folder.relative_to(tmp_path / cluster)
            add_components(folder / "kustomization.yaml",
                           [os.path.relpath((original / c).resolve(), folder) for c in components])
        result = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, check=False,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        for image in (i for d in yaml.safe_load_all(result.stdout) if d for i in images_in(d)):
            found.setdefault(image, set()).add(str(folder.relative_to(copy)))
    return {i: where for i, where in found.items() if i.startswith(registries)}


VALIDATED = ("apps", "clusters", "infra", "infra/mlops_platform/environments.yaml", "serving/manifests",
             "serving/Dockerfile", "workflows/manifests", "workflows/Dockerfile", "workflows/models",
             ".github/CODEOWNERS")
"""What `hack/validate` reads of the repository: its manifests, the Dockerfiles they name, the list of
environments, the training configs and the owners file the model checks compare with."""


def copy_validated(root: Path) -> Path:
    """A copy of :data:`VALIDATED` (no Python packages) under ``root``, for tests that break it."""
    for rel in VALIDATED:
        source = REPO / rel
        if source.is_dir():
            shutil.copytree(source, root / rel, ignore=shutil.ignore_patterns("mlops_*", "__pycache__", "*.py"))
        elif source.is_file():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / rel)
    return root
