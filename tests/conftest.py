"""Shared fixtures: a clean environment per test and models trained in an embedded store."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# No test process, nor any server a fixture starts, sends MLflow usage telemetry.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "workflows" / "models"
WINE_CONFIG = MODELS / "wine-classifier.yaml"
CANCER_CONFIG = MODELS / "breast-cancer-classifier.yaml"

# Variables that would point a test at a developer's real services.
_LEAKY = (
    "MLFLOW_TRACKING_URI",
    "MLOPS_HOME",
    "MLOPS_STORE_URI",
    "MLOPS_ARTIFACT_ROOT",
    "MLOPS_S3_ENDPOINT_URL",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees a developer's services, and none writes into the repository by accident."""
    for name in _LEAKY:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def base_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: this one without leaky variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY}
    env.update(extra)
    return env


def run_mlops(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the `mlops` CLI as a user would, in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "mlops_workflows.cli", *args],
        cwd=cwd,
        env=env if env is not None else base_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass(frozen=True)
class EmbeddedStore:
    """A working directory whose `.mlops/` holds both example models, trained once per session."""

    workdir: Path

    @property
    def home(self) -> Path:
        return self.workdir / ".mlops"

    def env(self, **extra: str) -> dict[str, str]:
        return base_env(MLOPS_HOME=str(self.home), **extra)


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStore]:
    workdir = tmp_path_factory.mktemp("trained")
    store = EmbeddedStore(workdir)
    for config in (WINE_CONFIG, CANCER_CONFIG):
        result = run_mlops("train", "--config", str(config), cwd=workdir, env=store.env())
        assert result.returncode == 0, result.stdout + result.stderr
    yield store
