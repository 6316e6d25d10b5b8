"""The project as tests see it: paths, the `mlops` CLI as a subprocess, an embedded store."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "workflows" / "models"
WINE_CONFIG = MODELS / "wine-classifier.yaml"
CANCER_CONFIG = MODELS / "breast-cancer-classifier.yaml"

# Variables that would point a test at a developer's real services.
LEAKY = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",  # mlflow.set_registry_uri in a test process sets it, as set_tracking_uri does its twin
    "MLOPS_HOME",
    "MLOPS_STORE_URI",
    "MLOPS_ARTIFACT_ROOT",
    "MLOPS_S3_ENDPOINT_URL",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)


def base_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: this one without leaky variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in LEAKY}
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
