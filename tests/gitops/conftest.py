"""Fixtures of the platform GitOps tests: one cluster at a time and its rendered app-of-apps."""

from __future__ import annotations

from typing import Any

import pytest
from support.gitops import CLUSTERS, REPO, render


@pytest.fixture(params=CLUSTERS)
def cluster(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def cluster_objects(cluster: str) -> list[dict[str, Any]]:
    return render(REPO / "clusters" / cluster)
