"""Settings of the local platform (``mlops lifecycle``, ``mlops rollout status``): ``MLOPS_LOCAL_*``."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LocalSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLOPS_LOCAL_", extra="ignore", env_ignore_empty=True,
                                      populate_by_name=True)

    home: Path = Field(
        Path(".mlops/lifecycle"), validation_alias=AliasChoices("MLOPS_LOCAL_HOME"),
        description="Folder of one run (services' data and logs, the Git server's repository, the rollout "
        "state file); emptied when a run starts.")
    time_scale: float = Field(
        0.05, gt=0, le=1, validation_alias=AliasChoices("MLOPS_LOCAL_TIME_SCALE"),
        description="The one factor every duration of the rendered manifests is multiplied by: canary pauses, "
        "analysis intervals, windows and initial delays, scale-down delays and the PodMonitor's scrape interval "
        "(0.05: a 1m pause lasts 3 s).")
    step_requests: int = Field(
        1000, ge=0, validation_alias=AliasChoices("MLOPS_LOCAL_STEP_REQUESTS"),
        description="Answers counted through Envoy at a setWeight before the next step starts.")
    client_threads: int = Field(
        6, ge=1, le=64, validation_alias=AliasChoices("MLOPS_LOCAL_CLIENT_THREADS"),
        description="Concurrent connections of the traffic client during a canary.")
    canary_rps: float = Field(
        250.0, gt=0, validation_alias=AliasChoices("MLOPS_LOCAL_CANARY_RPS"),
        description="Requests per second the traffic client sends to an environment during its canary.")
    background_rps: float = Field(
        15.0, ge=0, validation_alias=AliasChoices("MLOPS_LOCAL_BACKGROUND_RPS"),
        description="Requests per second the traffic client sends to each served environment between canaries.")
    pods_per_replicaset: int = Field(
        1, ge=1, le=4, validation_alias=AliasChoices("MLOPS_LOCAL_PODS_PER_REPLICASET"),
        description="Processes started per ReplicaSet at most (the Rollout's replicas, capped: 2 cores).")
    min_scrape_interval_s: float = Field(
        1.0, gt=0, validation_alias=AliasChoices("MLOPS_LOCAL_MIN_SCRAPE_INTERVAL_S"),
        description="Lower bound of the scaled scrape interval.")
    startup_timeout_s: float = Field(
        120.0, gt=0, validation_alias=AliasChoices("MLOPS_LOCAL_STARTUP_TIMEOUT_S"),
        description="How long a service or model server may take to become ready.")

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale

    @property
    def state_file(self) -> Path:
        return self.home / "state" / "rollouts.json"


__all__ = ["LocalSettings"]
