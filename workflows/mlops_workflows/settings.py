"""Settings of the training job: the shared platform settings plus ``MLOPS_TRAIN_*``."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mlops_platform.settings import PlatformSettings


class TrainingSettings(PlatformSettings):
    model_config = SettingsConfigDict(
        env_prefix="MLOPS_TRAIN_", extra="ignore", env_ignore_empty=True, populate_by_name=True
    )

    experiment_prefix: str = Field(
        "",
        description="Prefix of the MLflow experiment name; the experiment is <prefix><model name>.",
    )
