"""Helpers of the platform GitOps tests: the repository's manifests, rendered as Argo CD would.

A module of its own (not conftest.py) so that the tests import it by a unique name: ``conftest``
is the name of several folders' fixture modules, and the last one imported would win."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

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
        assert result.returncode == 0, f"kubectl kustomize {folder.relative_to(REPO)}: {result.stderr}"
        _CACHE[folder] = [d for d in yaml.safe_load_all(result.stdout) if isinstance(d, dict)]
    return _CACHE[folder]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def images_in(value: Any) -> Iterator[str]:
    """Every ``image:`` string anywhere in a rendered object."""
    if isinstance(value, dict):
        for key, sub in value.items():
            if key == "image" and isinstance(sub, str):
                yield sub
            else:
                yield from images_in(sub)
    elif isinstance(value, list):
        for item in value:
            yield from images_in(item)
