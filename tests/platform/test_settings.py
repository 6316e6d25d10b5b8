"""Settings: defaults of the embedded mode, fail-fast errors naming the variable, masking."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.project import base_env, run_mlops

from mlops_platform.errors import ConfigError
from mlops_platform.settings import PlatformSettings, load_settings, mask_url


def test_embedded_defaults_live_under_dot_mlops(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(PlatformSettings)
    assert settings.embedded
    assert settings.effective_tracking_uri == f"sqlite:///{tmp_path}/.mlops/mlflow.db"
    assert settings.effective_artifact_root == (tmp_path / ".mlops" / "artifacts").as_uri()
    assert settings.effective_store_uri == str(tmp_path / ".mlops" / "store")


def test_cluster_mode_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.mlops:5000")
    monkeypatch.setenv("MLOPS_STORE_URI", "s3://predictions/logs")
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://minio.mlops:9000")
    settings = load_settings(PlatformSettings)
    assert not settings.embedded
    assert settings.effective_artifact_root is None  # the server decides
    assert settings.effective_store_uri == "s3://predictions/logs"
    assert settings.s3_endpoint_url == "http://minio.mlops:9000"
    assert settings.ui_url == "http://mlflow.mlops:5000"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MLFLOW_TRACKING_URI", "ftp://host/x", "MLFLOW_TRACKING_URI"),
        ("MLOPS_STORE_URI", "gs://bucket/x", "MLOPS_STORE_URI"),
        ("MLOPS_STORE_URI", "s3://", "MLOPS_STORE_URI"),
        ("MLOPS_S3_ENDPOINT_URL", "minio:9000", "MLOPS_S3_ENDPOINT_URL"),
        ("MLOPS_TRACKING_TIMEOUT_S", "-1", "MLOPS_TRACKING_TIMEOUT_S"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=message):
        load_settings(PlatformSettings)


def test_mask_url_hides_passwords_only() -> None:
    assert (
        mask_url("postgresql://mlflow:s3cret@db:5432/mlflow") == "postgresql://mlflow:********@db:5432/mlflow"
    )
    assert mask_url("http://mlflow:5000") == "http://mlflow:5000"


def test_config_command_masks_secrets(tmp_path: Path) -> None:
    env = base_env(
        MLFLOW_TRACKING_URI="postgresql://mlflow:hunter2@db/mlflow",
        AWS_ACCESS_KEY_ID="AKIAEXAMPLE",
        AWS_SECRET_ACCESS_KEY="very-secret-key",
    )
    result = run_mlops("config", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout and "very-secret-key" not in result.stdout
    assert "AWS_SECRET_ACCESS_KEY" in result.stdout and "********" in result.stdout
    assert "AKIAEXAMPLE" in result.stdout
    assert "(effective) mode" in result.stdout and "server" in result.stdout


def test_config_command_fails_fast_on_bad_settings(tmp_path: Path) -> None:
    result = run_mlops("config", cwd=tmp_path, env=base_env(MLOPS_STORE_URI="gs://elsewhere"))
    assert result.returncode == 2
    assert "MLOPS_STORE_URI" in result.stderr and "Traceback" not in result.stderr
