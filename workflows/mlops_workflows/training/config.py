"""The training config: one YAML file per model under ``workflows/models/``."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlops_platform.errors import ConfigError
from mlops_platform.model_names import MODEL_NAME_PATTERN
from mlops_workflows.training.metrics import LOWER_IS_BETTER, METRIC_NAMES

SKLEARN_DATASETS = ("wine", "breast_cancer", "iris", "digits")
DEFAULT_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DatasetConfig(_Strict):
    sklearn: Literal["wine", "breast_cancer", "iris", "digits"] | None = Field(
        None, description="A dataset that ships with scikit-learn."
    )
    uri: str | None = Field(None, description="A CSV or Parquet file: a path or an s3:// URI.")
    target: str | None = Field(None, description="The target column of a file dataset.")
    features: list[str] | None = Field(None, description="Feature columns (default: all but the target).")
    format: Literal["csv", "parquet"] | None = Field(None, description="Default: from the file suffix.")

    @model_validator(mode="after")
    def _one_source(self) -> DatasetConfig:
        if (self.sklearn is None) == (self.uri is None):
            raise ValueError("give exactly one of 'sklearn' (a bundled dataset) and 'uri' (a file)")
        if self.uri is not None and not self.target:
            raise ValueError("a file dataset needs 'target', the name of its label column")
        return self


class EstimatorConfig(_Strict):
    class_: str = Field(alias="class", description="Import path of a scikit-learn classifier.")
    params: dict[str, Any] = Field(default_factory=dict)
    trusted_types: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TRUSTED_TYPES),
        description="Types skops may load beyond its defaults (see README: model serialization).",
    )


class SplitConfig(_Strict):
    test_size: float = Field(0.25, gt=0, lt=1)
    seed: int = 42
    stratify: bool = True


class BaselineConfig(_Strict):
    bins: int = Field(10, ge=2, le=100)


class DriftConfig(_Strict):
    """This model's drift thresholds, stored with each version's baseline statistics; unset
    values use the drift job's defaults (MLOPS_DRIFT_*)."""

    psi_warn: float | None = Field(None, gt=0, description="PSI from which a feature is a warning.")
    psi_alert: float | None = Field(None, gt=0, description="PSI from which a feature has drifted.")
    min_rows: int | None = Field(None, ge=1, description="Fewest rows a drift check compares.")

    @model_validator(mode="after")
    def _ordered(self) -> DriftConfig:
        if self.psi_warn is not None and self.psi_alert is not None and self.psi_warn > self.psi_alert:
            raise ValueError(f"psi_warn ({self.psi_warn}) must not exceed psi_alert ({self.psi_alert})")
        return self


class GateConfig(_Strict):
    min: dict[str, float] = Field(default_factory=dict, description="Metric must be at least this.")
    max: dict[str, float] = Field(default_factory=dict, description="Metric must be at most this.")
    tolerance: dict[str, float] = Field(
        default_factory=dict,
        description="Largest allowed regression against the version holding `production`.",
    )

    @field_validator("min", "max", "tolerance")
    @classmethod
    def _known_metrics(cls, value: dict[str, float]) -> dict[str, float]:
        for name, bound in value.items():
            if name not in METRIC_NAMES:
                close = difflib.get_close_matches(name, METRIC_NAMES, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"unknown metric {name!r}{hint}; known: {', '.join(METRIC_NAMES)}")
            if bound < 0:
                raise ValueError(f"{name}: a bound must not be negative, got {bound}")
        return value

    @model_validator(mode="after")
    def _directions(self) -> GateConfig:
        for name in self.min:
            if name in LOWER_IS_BETTER:
                raise ValueError(f"{name} is better when lower: put it under 'max', not 'min'")
        for name in self.max:
            if name not in LOWER_IS_BETTER:
                raise ValueError(f"{name} is better when higher: put it under 'min', not 'max'")
        return self


class BatchInferenceConfig(_Strict):
    """The nightly CronWorkflow batch-inference-<model> (workflows/manifests/models.generated.yaml)."""

    schedule: str = Field(
        "0 2 * * *", pattern=r"^(@\w+|\S+( \S+){4})$", description="Cron schedule (UTC): five fields or @daily."
    )
    shards: int = Field(4, ge=1, le=64, description="Pods scoring the input in parallel.")


class DriftCheckConfig(_Strict):
    """The CronWorkflow drift-check-<model>: one check over the last hour of the prediction log."""

    minute: int = Field(
        5, ge=0, le=59,
        description="Minute of every hour it runs at (hourly, as MLOPS_DRIFT_SCHEDULE_INTERVAL_S says).",
    )


class JobsConfig(_Strict):
    """How the platform runs this model's workflows; `mlops models sync` writes them from this."""

    concurrency: int = Field(
        2, ge=1, le=100, description="Workflows of this model at once, whatever their kind (its semaphore)."
    )
    batch_inference: BatchInferenceConfig = BatchInferenceConfig()
    drift_check: DriftCheckConfig = DriftCheckConfig()


OWNER_PATTERN = r"^@[A-Za-z0-9][A-Za-z0-9-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$|^[^@\s]+@[^@\s]+$"


class TrainingConfig(_Strict):
    model_name: str = Field(pattern=MODEL_NAME_PATTERN)
    description: str = ""
    owners: list[Annotated[str, Field(pattern=OWNER_PATTERN)]] = Field(
        default_factory=list,
        description="Who approves this model's production pins: GitHub teams or users (.github/CODEOWNERS).",
    )
    jobs: JobsConfig = JobsConfig()
    dataset: DatasetConfig
    estimator: EstimatorConfig
    split: SplitConfig = SplitConfig()
    baseline: BaselineConfig = BaselineConfig()
    gate: GateConfig = GateConfig()
    drift: DriftConfig = DriftConfig()


PLATFORM_FIELDS = frozenset({"owners", "jobs"})
"""Fields about how the platform runs the model, not about what it trains: not part of the config
digest that tells whether a version was already trained with this config."""


def _apply_override(data: dict[str, Any], assignment: str) -> None:
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set expects key.path=value, got {assignment!r}")
    node: Any = data
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {part!r} is not a mapping in the config")
        node = node.setdefault(part, {})
    if not isinstance(node, dict):
        raise ConfigError(f"--set {key}: cannot set a key inside a non-mapping value")
    node[parts[-1]] = yaml.safe_load(raw)


def load_config(path: Path, overrides: list[str] | None = None) -> TrainingConfig:
    """Read and validate a training config; errors name the file and the field."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"training config {path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"training config {path}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"training config {path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"training config {path}: expected a mapping at the top level")
    for assignment in overrides or []:
        _apply_override(data, assignment)
    try:
        return TrainingConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "(top level)"
            lines.append(f"{where}: {error['msg']}")
        raise ConfigError(f"training config {path}:\n  " + "\n  ".join(lines)) from None
