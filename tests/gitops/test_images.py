"""The Dockerfiles of the three images built here. (Every image and base image pinned, a Dockerfile for
each image built here, non-root users: the validator's crossref.check_image and policy_images.)"""

from __future__ import annotations

import re
from typing import Any

import pytest
from support.gitops import REPO

DOCKERFILES = {
    "ghcr.io/mlops-gitops/model-server": REPO / "serving" / "Dockerfile",
    "ghcr.io/mlops-gitops/mlops-jobs": REPO / "workflows" / "Dockerfile",
    "ghcr.io/mlops-gitops/mlflow-server": REPO / "infra" / "mlflow" / "Dockerfile",
}


@pytest.mark.parametrize(("image", "dockerfile"), sorted(DOCKERFILES.items()))
def test_dockerfiles_name_their_image_and_install_only_their_extra(image: str, dockerfile: Any) -> None:
    """Multi-stage, pinned bases and a numeric non-root user: the validator's policy_images."""
    text = dockerfile.read_text()
    assert image in text, f"{dockerfile} does not name the image it builds"
    assert "pip install" in text
    if image.endswith("/mlflow-server"):
        # mlflow and its drivers only: the tracking-server extra's requirements, no project package.
        assert "['tracking-server']" in text and "COPY pyproject.toml ./" in text
        assert not re.search(r"^COPY (?!pyproject\.toml |--from=)", text, re.M), "copies the project into the image"
        assert not re.search(r"pip install [^\n]*\.\[", text), "installs the project"
    else:
        assert '".[serving]"' in text or '".[workflows]"' in text
