"""The training job: load → split → fit → evaluate → gate → log → register → alias.

Everything that can fail on bad input fails before anything is registered, and the version is
created only after its run holds the model, the metrics and the baseline statistics, so the
registry never holds a version without its baseline. If a step after registration fails, the
new version is deleted again.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlops_drift.baseline import BASELINE_ARTIFACT, MonitoringPolicy, artifact_uri, compute_baseline
from mlops_platform import registry_names as reg
from mlops_platform.errors import ConfigError, InvalidInputError
from mlops_platform.registry import Registry, metric_key
from mlops_workflows.settings import TrainingSettings
from mlops_workflows.skopsio import import_skops_io
from mlops_workflows.training.config import PLATFORM_FIELDS, TrainingConfig, load_config
from mlops_workflows.training.data import Dataset, load_dataset
from mlops_workflows.training.estimator import build_estimator, describe
from mlops_workflows.training.gate import GateResult, evaluate_gate
from mlops_workflows.training.lineage import GitState, git_state
from mlops_workflows.training.metrics import evaluate
from mlops_workflows.training.modelenv import model_pip_requirements, requirements_check_scope
from mlops_workflows.training.modellog import log_sklearn_model

STEPS = 7


class Progress:
    """Numbered progress lines on stderr, with the time each step started."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.count = 0
        self.start = time.monotonic()

    def step(self, message: str) -> None:
        self.count += 1
        elapsed = time.monotonic() - self.start
        print(f"[{self.count}/{self.total}] {elapsed:6.1f}s  {message}", file=self.stream, flush=True)


@dataclass(frozen=True)
class TrainingOutcome:
    model_name: str
    version: str
    run_id: str
    run_url: str
    metrics: dict[str, float]
    gate: GateResult
    production_version: str | None
    dataset_digest: str
    git_commit: str
    aliases: list[str]


@dataclass(frozen=True)
class TrainingSkipped:
    """Nothing was registered: an existing version was trained on the same data with the same config."""

    model_name: str
    existing_version: str
    dataset_digest: str
    dataset_source: str
    config_digest: str


def config_digest(config: TrainingConfig) -> str:
    """sha256 of the effective config (after --set overrides), independent of key order; the
    owners and jobs (how the platform runs the model) do not change what trains, so not the digest."""
    trained = config.model_dump(by_alias=True, mode="json", exclude=set(PLATFORM_FIELDS))
    text = json.dumps(trained, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def mlflow_dataset(dataset: Dataset) -> Any:
    """The dataset as MLflow records it as the run's input; its digest is what `dataset.digest` holds."""
    from mlflow.data.pandas_dataset import from_pandas

    return from_pandas(dataset.frame, source=dataset.source, name=dataset.name, targets=dataset.target)


def same_version(registry: Registry, name: str, data: str, config: str) -> Any | None:
    """The newest version of ``name`` whose dataset digest and config digest equal these."""
    found = registry.versions_tagged(name, {reg.TAG_DATASET_DIGEST: data, reg.TAG_CONFIG_DIGEST: config})
    return found[-1] if found else None


def train(
    config_path: Path,
    settings: TrainingSettings,
    overrides: list[str] | None = None,
    progress: Progress | None = None,
) -> TrainingOutcome | TrainingSkipped:
    """Train, gate and register a version; or register nothing (:class:`TrainingSkipped`) when a
    version trained on the same data (dataset digest) with the same effective config exists."""
    progress = progress or Progress(STEPS)
    config = load_config(config_path, overrides)
    model = build_estimator(config.estimator)  # an unknown estimator fails before any I/O
    registry = Registry(settings)
    registry.check_reachable()
    import_skops_io(settings)  # before MLflow's sklearn flavour imports it (saving, or loading production)

    where = config.dataset.sklearn or config.dataset.uri
    if settings.snapshots_uri:
        where = f"newest snapshot under {settings.snapshots_uri.rstrip('/')}/{config.model_name}/, else {where}"
    progress.step(f"loading dataset ({where})")
    snapshots = f"{settings.snapshots_uri.rstrip('/')}/{config.model_name}" if settings.snapshots_uri else None
    dataset = load_dataset(config.dataset, settings, snapshot=snapshots)
    source_dataset = mlflow_dataset(dataset)  # hashed once: the skip check, the run's input, the version tag
    data_digest, cfg_digest = str(source_dataset.digest), config_digest(config)
    existing = same_version(registry, config.model_name, data_digest, cfg_digest)
    if existing is not None:
        return TrainingSkipped(config.model_name, str(existing.version), data_digest, dataset.source, cfg_digest)
    x_train, x_test, y_train, y_test = _split(dataset, config)

    progress.step(
        f"training {describe(config.estimator)} on {len(y_train)} rows, {len(dataset.feature_names)} features"
    )
    _fit(model, config, x_train, y_train)

    progress.step(f"evaluating on the holdout ({len(y_test)} rows)")
    metrics = evaluate(model, x_test, y_test)
    production = registry.version_by_alias(config.model_name, reg.PRODUCTION)
    production_metrics = None
    if production is not None:
        production_metrics = _production_metrics(registry, config.model_name, production, dataset, x_test, y_test)

    progress.step("applying the gate" + (f" (against production v{production.version})" if production else ""))
    gate = evaluate_gate(
        config.gate, metrics, production_metrics, str(production.version) if production is not None else None
    )
    baseline = compute_baseline(
        x_train, dataset.feature_names, model.predict(x_test), model.classes_, bins=config.baseline.bins
    )
    baseline = baseline.model_copy(update={"monitoring": MonitoringPolicy(**config.drift.model_dump())})

    progress.step("logging the run to MLflow")
    git = git_state(config_path.resolve())
    experiment_id = registry.ensure_experiment(settings.experiment_prefix + config.model_name)
    run_id, model_uri, model_id, digest = _log_run(
        experiment_id,
        config,
        config_path,
        dataset,
        source_dataset,
        model,
        x_train,
        metrics,
        gate,
        production_metrics,
        baseline.model_dump(),
        git,
        holdout=_holdout_frame(dataset, x_test, y_test),
    )

    progress.step(f"registering a new version of {config.model_name}")
    tags = {
        reg.TAG_GATE: reg.GATE_PASSED if gate.passed else reg.GATE_FAILED,
        reg.TAG_GATE_REASONS: json.dumps([c.message for c in gate.checks]),
        reg.TAG_DATASET_DIGEST: digest,
        reg.TAG_DATASET_SOURCE: dataset.source,
        reg.TAG_GIT_COMMIT: git.commit + ("-dirty" if git.dirty else ""),
        reg.TAG_BASELINE: artifact_uri(run_id),
        reg.TAG_CONFIG: str(config_path),
        reg.TAG_CONFIG_DIGEST: cfg_digest,
        reg.TAG_HOLDOUT: f"runs:/{run_id}/{reg.HOLDOUT_ARTIFACT}",
    }
    version = registry.register(config.model_name, model_uri, run_id, model_id, tags)
    aliases: list[str] = []
    try:
        if gate.passed:
            progress.step(f"gate passed: alias '{reg.CANDIDATE}' -> v{version.version}")
            registry.set_alias(config.model_name, reg.CANDIDATE, version.version)
            aliases.append(reg.CANDIDATE)
        else:
            progress.step(f"gate failed: v{version.version} stays registered without an alias")
    except BaseException:
        registry.delete_version(config.model_name, version.version)
        raise
    return TrainingOutcome(
        model_name=config.model_name,
        version=str(version.version),
        run_id=run_id,
        run_url=registry.run_url(experiment_id, run_id),
        metrics=metrics,
        gate=gate,
        production_version=str(production.version) if production is not None else None,
        dataset_digest=digest,
        git_commit=git.label,
        aliases=aliases,
    )


def _holdout_frame(dataset: Dataset, x_test: Any, y_test: Any) -> pd.DataFrame:
    """The labelled holdout rows, stored with the version: the staging canary replays them."""
    frame = pd.DataFrame(np.asarray(x_test, dtype=np.float64), columns=dataset.feature_names)
    frame[reg.HOLDOUT_TARGET] = [str(label) for label in y_test]
    return frame


def _split(dataset: Dataset, config: TrainingConfig) -> tuple[Any, Any, Any, Any]:
    from sklearn.model_selection import train_test_split

    labels = dataset.labels
    try:
        parts: list[Any] = train_test_split(
            dataset.features,
            labels,
            test_size=config.split.test_size,
            random_state=config.split.seed,
            stratify=labels if config.split.stratify else None,
        )
    except ValueError as exc:
        raise InvalidInputError(f"{dataset.source}: cannot split {len(labels)} rows for training: {exc}") from exc
    return parts[0], parts[1], parts[2], parts[3]


def _fit(model: Any, config: TrainingConfig, x_train: npt.NDArray[np.float64], y_train: Any) -> None:
    try:
        model.fit(x_train, y_train)
    except (ValueError, TypeError) as exc:
        if type(exc).__name__ == "InvalidParameterError":
            raise ConfigError(f"estimator.params: {exc}") from exc
        raise InvalidInputError(f"{describe(config.estimator)} cannot be fitted on this data: {exc}") from exc


def _production_metrics(
    registry: Registry, name: str, production: Any, dataset: Dataset, x_test: Any, y_test: Any
) -> dict[str, float]:
    """The production version's metrics on this run's holdout; empty if it expects other features."""
    from mlflow.models import get_model_info

    info = get_model_info(f"models:/{name}/{production.version}")
    expected = info.signature.inputs.input_names() if info.signature is not None else None
    if expected is not None and list(expected) != dataset.feature_names:
        return {}
    return evaluate(registry.load_sklearn_model(name, production.version), x_test, y_test)


def _log_run(
    experiment_id: str,
    config: TrainingConfig,
    config_path: Path,
    dataset: Dataset,
    source_dataset: Any,
    model: Any,
    x_train: npt.NDArray[np.float64],
    metrics: dict[str, float],
    gate: GateResult,
    production_metrics: dict[str, float] | None,
    baseline: dict[str, Any],
    git: GitState,
    holdout: pd.DataFrame | None = None,
) -> tuple[str, str, str, str]:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.models import infer_signature
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

    example = pd.DataFrame(x_train[:5], columns=dataset.feature_names)
    signature = infer_signature(example, model.predict(x_train[:5]))
    params = {
        "estimator": config.estimator.class_,
        **{f"estimator.{k}": v for k, v in config.estimator.params.items()},
        "split.test_size": config.split.test_size,
        "split.seed": config.split.seed,
        "split.stratify": config.split.stratify,
        "baseline.bins": config.baseline.bins,
        reg.TAG_DATASET_SOURCE: dataset.source,  # also a param of the run
        "features": len(dataset.feature_names),
    }
    logged = {metric_key(k): v for k, v in metrics.items()}
    if production_metrics is not None:
        logged.update({metric_key(f"production.{k}"): v for k, v in production_metrics.items()})
    context = _context_tags(git)
    run_name = f"train-{config.model_name}"
    run_tags = {
        **context,
        MLFLOW_RUN_NAME: run_name,
        reg.RUN_TAG_MODEL_NAME: config.model_name,
        reg.RUN_TAG_GIT_DIRTY: str(git.dirty).lower(),
    }
    run_id = str(MlflowClient().create_run(experiment_id, tags=run_tags, run_name=run_name).info.run_id)
    with mlflow.start_run(run_id=run_id):  # the new run, as the active run
        mlflow.log_params(params)
        mlflow.log_metrics(logged)
        mlflow.log_input(source_dataset, context="training")
        mlflow.log_text(config_path.read_text(), f"config/{config_path.name}")
        mlflow.log_dict(config.model_dump(by_alias=True), "config/effective.json")
        mlflow.log_dict(baseline, BASELINE_ARTIFACT)
        if holdout is not None:
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                local = Path(tmp) / Path(reg.HOLDOUT_ARTIFACT).name
                holdout.to_parquet(local, index=False)
                mlflow.log_artifact(str(local), str(Path(reg.HOLDOUT_ARTIFACT).parent))
        mlflow.log_dict(
            {
                "passed": gate.passed,
                "checks": [c.__dict__ for c in gate.checks],
                "production": production_metrics,
            },
            "gate/gate.json",
        )
        try:
            with requirements_check_scope():
                info = log_sklearn_model(
                    model,
                    run_id,
                    experiment_id=experiment_id,
                    run_params={k: str(v) for k, v in params.items()},
                    context_tags=context,
                    signature=signature,
                    input_example=example.head(3),
                    pip_requirements=model_pip_requirements(),
                    trusted_types=config.estimator.trusted_types,
                )
        except MlflowException as exc:
            if "untrusted types" in str(exc):
                found = re.findall(r"Untrusted types found in the file: \[([^\]]*)\]", str(exc))
                raise ConfigError(
                    f"{config.estimator.class_} serializes types skops does not trust by default "
                    f"({found[0] if found else 'see MLflow error'}); review them and list them in "
                    "estimator.trusted_types of the training config"
                ) from exc
            raise
    return run_id, info.model_uri, info.model_id, str(source_dataset.digest)


def _context_tags(git: GitState) -> dict[str, str]:
    """The tags MLflow's run context gives a run and its logged model (user, source and any
    context provider's), with the git tags from ``git`` (the config's working tree, read once)
    instead of MLflow's own GitPython look-up of the repository of the file the process started from."""
    from mlflow.tracking.context.git_context import GitRunContext
    from mlflow.tracking.context.registry import resolve_tags
    from mlflow.utils.mlflow_tags import MLFLOW_GIT_BRANCH, MLFLOW_GIT_REPO_URL

    ours = {reg.RUN_TAG_GIT_COMMIT: git.commit}
    if git.branch is not None:
        ours[MLFLOW_GIT_BRANCH] = git.branch
    if git.remote_url is not None:
        ours[MLFLOW_GIT_REPO_URL] = git.remote_url
    # `ignore` takes provider classes (it tests isinstance), though MLflow's hint names instances
    tags: dict[str, str] = resolve_tags(ours, ignore=[GitRunContext])  # type: ignore[list-item]
    return tags
