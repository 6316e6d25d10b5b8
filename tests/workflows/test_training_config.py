"""Training configs: the shipped ones are valid, bad ones say what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.project import CANCER_CONFIG, MODELS, WINE_CONFIG

from mlops_platform.errors import ConfigError
from mlops_workflows.training.config import load_config
from mlops_workflows.training.estimator import build_estimator


def test_shipped_configs_are_valid_and_distinct() -> None:
    configs = [load_config(p) for p in sorted(MODELS.glob("*.yaml"))]
    assert {c.model_name for c in configs} >= {"wine-classifier", "breast-cancer-classifier"}
    wine = load_config(WINE_CONFIG)
    assert wine.dataset.sklearn == "wine"
    assert wine.estimator.class_ == "sklearn.ensemble.RandomForestClassifier"
    assert wine.estimator.params["n_estimators"] == 100
    assert load_config(CANCER_CONFIG).dataset.sklearn == "breast_cancer"
    for config in configs:
        build_estimator(config.estimator)


def test_overrides_apply_yaml_values() -> None:
    config = load_config(
        WINE_CONFIG, ["estimator.params.n_estimators=7", "split.test_size=0.3", "gate.min={}"]
    )
    assert config.estimator.params["n_estimators"] == 7
    assert config.split.test_size == 0.3
    assert config.gate.min == {}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "model.yaml"
    path.write_text(text)
    return path


BASE = "model_name: m\nestimator: {class: sklearn.ensemble.RandomForestClassifier}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model_name: [unclosed", "not valid YAML"),
        ("- a list", "expected a mapping"),
        (BASE, "dataset: Field required"),
        (BASE + "dataset: {sklearn: wine, uri: x.csv, target: t}", "exactly one of 'sklearn'"),
        (BASE + "dataset: {uri: x.csv}", "needs 'target'"),
        (BASE + "dataset: {sklearn: mnist}", "dataset.sklearn"),
        (BASE + "dataset: {sklearn: wine}\ngate: {min: {acuracy: 0.9}}", "did you mean 'accuracy'"),
        (BASE + "dataset: {sklearn: wine}\ngate: {min: {log_loss: 0.9}}", "put it under 'max'"),
        (BASE + "dataset: {sklearn: wine}\nsplit: {test_size: 1.5}", "split.test_size"),
        (BASE + "dataset: {sklearn: wine}\nepochs: 3", "epochs: Extra inputs are not permitted"),
        ("model_name: Bad_Name\ndataset: {sklearn: wine}\nestimator: {class: x}", "model_name"),
        (BASE + "dataset: {sklearn: wine}\nowners: [wine-owners]", "owners.0: String should match pattern"),
        (BASE + "dataset: {sklearn: wine}\njobs: {drift_check: {minute: 60}}", "jobs.drift_check.minute"),
        (BASE + "dataset: {sklearn: wine}\njobs: {batch_inference: {schedule: daily}}",
         "jobs.batch_inference.schedule"),
        (BASE + "dataset: {sklearn: wine}\njobs: {concurrency: 0}", "jobs.concurrency"),
    ],
)
def test_bad_configs_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, text))


def test_owners_and_jobs_do_not_change_the_config_digest() -> None:
    """How the platform runs a model (owners, schedules, semaphore) is not what trains: changing it
    must not make the next training run register a new version of the same data and config."""
    from mlops_workflows.training.pipeline import config_digest

    wine = load_config(WINE_CONFIG)
    moved = load_config(WINE_CONFIG, ["owners=['@org/other']", "jobs.drift_check.minute=40", "jobs.concurrency=5"])
    assert moved.owners == ["@org/other"] and moved.jobs.concurrency == 5
    assert config_digest(moved) == config_digest(wine)
    assert config_digest(load_config(WINE_CONFIG, ["split.seed=7"])) != config_digest(wine)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("cls", "params", "message"),
    [
        (
            "sklearn.ensemble.RandomForestClassifer",
            {},
            "did you mean sklearn.ensemble.RandomForestClassifier",
        ),
        ("sklearn.nothere.Model", {}, "unknown estimator"),
        ("os.system", {}, "scikit-learn classifier"),
        ("sklearn.linear_model.LinearRegression", {}, "not a scikit-learn classifier"),
        ("sklearn.ensemble.RandomForestClassifier", {"n_trees": 3}, "has no parameter"),
    ],
)
def test_bad_estimators(tmp_path: Path, cls: str, params: dict[str, object], message: str) -> None:
    config = load_config(WINE_CONFIG, [f"estimator.class={cls}", f"estimator.params={params}"])
    with pytest.raises(ConfigError, match=message):
        build_estimator(config.estimator)


def test_drift_thresholds_must_be_ordered(tmp_path: Path) -> None:
    text = BASE + "dataset: {sklearn: wine}\ndrift: {psi_warn: 0.3, psi_alert: 0.2}"
    with pytest.raises(ConfigError, match=r"psi_warn \(0.3\) must not exceed psi_alert \(0.2\)"):
        load_config(_write(tmp_path, text))
