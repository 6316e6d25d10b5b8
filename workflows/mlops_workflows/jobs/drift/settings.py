"""Settings of the drift job: the shared platform settings plus ``MLOPS_DRIFT_*``."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from mlops_drift.report import DEFAULT_PSI_ALERT, DEFAULT_PSI_WARN
from mlops_platform.durations import DurationError, parse_duration
from mlops_platform.settings import PlatformSettings

ENV_PREFIX = "MLOPS_DRIFT_"


class DriftSettings(PlatformSettings):
    """``MLOPS_DRIFT_<FIELD>`` for every field below; the command's flags override them per model."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", env_ignore_empty=True, populate_by_name=True
    )

    psi_warn: float = Field(DEFAULT_PSI_WARN, gt=0, description="PSI from which a feature is a warning.")
    psi_alert: float = Field(DEFAULT_PSI_ALERT, gt=0, description="PSI from which a feature has drifted.")
    min_rows: int = Field(
        500, ge=1, description="Fewest rows to compare; below it the status is 'insufficient data' (no alarm)."
    )
    window: str = Field("1h", description="Default window over the prediction logs, ending now (e.g. 1h, 1d).")
    schedule_interval_s: float = Field(
        3600.0,
        gt=0,
        description="How often the job is scheduled per model; pushed so the staleness alert fires after "
        "twice this without a successful run. hack/validate checks it against the drift CronWorkflows' schedules.",
    )
    insufficient_runs_alert: int = Field(
        3,
        ge=1,
        le=1000,
        description="Consecutive insufficient-data runs of a version from which MlopsDriftInsufficientData fires.",
    )
    read_threads: int = Field(8, ge=1, le=64, description="Prediction-log files read in parallel.")

    @field_validator("window")
    @classmethod
    def _check_window(cls, value: str) -> str:
        try:
            parse_duration(value)
        except DurationError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _ordered(self) -> DriftSettings:
        if self.psi_warn > self.psi_alert:
            raise ValueError("MLOPS_DRIFT_PSI_WARN must not exceed MLOPS_DRIFT_PSI_ALERT")
        return self
