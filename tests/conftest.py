"""Shared fixtures: a clean environment per test and models trained in an embedded store.

Helpers that tests import (paths, `run_mlops`, `base_env`) live in `support/project.py`; the real
services the tests start, one module each, in `support/` (their shared session fixtures:
`support/fixtures.py`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# No test process, nor any server a fixture starts, sends MLflow usage telemetry.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"

from support.project import CANCER_CONFIG, LEAKY, WINE_CONFIG, EmbeddedStore, run_mlops

# Session fixtures of the shared services (postgres, s3): one module per service in support/.
pytest_plugins = ["support.fixtures"]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees a developer's services, and none writes into the repository by accident."""
    for name in LEAKY:
        # set first so that monkeypatch records it: a value the test sets (MLflow's set_tracking_uri
        # sets MLFLOW_TRACKING_URI) is removed after it, not read by the next module's settings
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStore]:
    workdir = tmp_path_factory.mktemp("trained")
    store = EmbeddedStore(workdir)
    for config in (WINE_CONFIG, CANCER_CONFIG):
        result = run_mlops("train", "--config", str(config), cwd=workdir, env=store.env())
        assert result.returncode == 0, result.stdout + result.stderr
    yield store
