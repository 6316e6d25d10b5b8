"""Run what Argo CD would apply: the local platform's pod resolution (``mlops_local.podspec``) for tests.

One code path: ``mlops lifecycle`` starts model servers, analysis Jobs and workflow steps from the
same resolution. Here ``render`` skips (or fails under ``MLOPS_REQUIRE_INTEGRATION=1``) when kubectl
is missing, and paths default to this checkout. See ``mlops_local.podspec`` for what is resolved.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mlops_local import podspec
from mlops_local.podspec import ENTRYPOINTS, MissingReference, PodCommand, Rendered

from .procs import require_binary
from .project import REPO

__all__ = [
    "ENTRYPOINTS",
    "IMAGES",
    "MissingReference",
    "PodCommand",
    "Rendered",
    "external_secret_keys",
    "render",
]

IMAGES: dict[str, Path] = podspec.images(REPO)


def render(overlay: Path, *, common_annotations: Mapping[str, str] | None = None) -> Rendered:
    kubectl = require_binary("kubectl")
    return podspec.render(overlay, repo=REPO, common_annotations=common_annotations, kubectl=kubectl)


def external_secret_keys(name: str) -> set[str] | None:
    return podspec.external_secret_keys(name, REPO)
