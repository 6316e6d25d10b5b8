"""Settings of the training job: the shared platform settings plus ``MLOPS_TRAIN_*``."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mlops_platform.settings import PlatformSettings


class TrainingSettings(PlatformSettings):
    model_config = SettingsConfigDict(
        env_prefix="MLOPS_TRAIN_", extra="ignore", env_ignore_empty=True, populate_by_name=True
    )

    snapshots_uri: str | None = Field(
        None,
        description="Folder or s3:// prefix of labelled dataset snapshots: training reads the newest "
        "snapshot under <snapshots_uri>/<model name>/ (the greatest name: a CSV/Parquet file or a "
        "folder of them) instead of the config's dataset; without one there, the config's dataset.",
    )
    experiment_prefix: str = Field(
        "",
        description="Prefix of the MLflow experiment name; the experiment is <prefix><model name>.",
    )
