"""The benchmark's reference (a script, not a test): the wine training job written by hand, the naive way.

    python tests/benchmarks/reference_train.py CONFIG

What a person would write with MLflow's documented calls and no tuning: load, split, fit,
evaluate, gate on the config's absolute thresholds, then one MLflow run holding the same things
`mlops train` logs (params, metrics, the dataset input, the config, the effective config, the
baseline statistics, the labelled holdout rows, the gate result, the model with signature and
input example) and a new registered version with the same tags and the `candidate` alias.
``mlflow.sklearn.log_model`` is called as its documentation shows, without ``pip_requirements``,
so MLflow infers them.
``MLOPS_HOME`` names the store, as for `mlops`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
import yaml
from mlflow import MlflowClient
from mlflow.data.pandas_dataset import from_pandas
from mlflow.models import infer_signature
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, f1_score, log_loss, precision_recall_fscore_support, roc_auc_score
from sklearn.model_selection import train_test_split

from mlops_drift.baseline import compute_baseline


def main() -> int:
    config_path = Path(sys.argv[1])
    config = yaml.safe_load(config_path.read_text())
    home = Path(os.environ.get("MLOPS_HOME", ".mlops")).resolve()
    uri = f"sqlite:///{home / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    name = config["model_name"]

    frame = load_wine(as_frame=True).frame
    frame.columns = [str(c).replace("/", "_") for c in frame.columns]
    features = [c for c in frame.columns if c != "target"]
    x, y = frame[features].to_numpy(dtype="float64"), frame["target"].to_numpy()
    split = config["split"]
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=split["test_size"], random_state=split["seed"], stratify=y
    )
    params = config["estimator"]["params"]
    model = RandomForestClassifier(**params).fit(x_train, y_train)

    predicted, proba = model.predict(x_test), model.predict_proba(x_test)
    metrics = {
        "accuracy": accuracy_score(y_test, predicted),
        "f1_macro": f1_score(y_test, predicted, average="macro"),
        "log_loss": log_loss(y_test, proba, labels=model.classes_),
        "roc_auc_ovr": roc_auc_score(y_test, proba, multi_class="ovr", average="macro"),
    }
    precision, recall, _, _ = precision_recall_fscore_support(y_test, predicted, zero_division=0)
    for cls, p, r in zip(model.classes_, precision, recall, strict=True):
        metrics[f"precision.{cls}"], metrics[f"recall.{cls}"] = p, r
    checks = [
        {"metric": k, "passed": metrics[k] >= v, "message": f"{k} {metrics[k]:.4f} >= {v}"}
        for k, v in config["gate"]["min"].items()
    ] + [
        {"metric": k, "passed": metrics[k] <= v, "message": f"{k} {metrics[k]:.4f} <= {v}"}
        for k, v in config["gate"]["max"].items()
    ]
    passed = all(c["passed"] for c in checks)
    baseline = compute_baseline(
        x_train, features, model.predict(x_test), model.classes_, bins=config["baseline"]["bins"]
    )
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()

    experiment = mlflow.set_experiment(name)
    example = pd.DataFrame(x_train[:5], columns=features)
    with mlflow.start_run(run_name=f"train-{name}") as run:
        mlflow.set_tags({"mlops.model_name": name, "mlflow.source.git.commit": commit, "git.dirty": "false"})
        mlflow.log_params(
            {
                "estimator": config["estimator"]["class"],
                **{f"estimator.{k}": v for k, v in params.items()},
                **{f"split.{k}": v for k, v in split.items()},
                "baseline.bins": config["baseline"]["bins"],
                "dataset.source": "sklearn.datasets.load_wine",
                "features": len(features),
            }
        )
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        dataset = from_pandas(frame, source="sklearn.datasets.load_wine", name="wine", targets="target")
        mlflow.log_input(dataset, context="training")
        mlflow.log_text(config_path.read_text(), f"config/{config_path.name}")
        mlflow.log_dict(config, "config/effective.json")
        mlflow.log_dict(baseline.model_dump(), "baseline/baseline.json")
        holdout = pd.DataFrame(x_test, columns=features)
        holdout["target"] = [str(label) for label in y_test]
        with tempfile.TemporaryDirectory() as tmp:
            holdout.to_parquet(Path(tmp) / "holdout.parquet", index=False)
            mlflow.log_artifact(str(Path(tmp) / "holdout.parquet"), "holdout")
        mlflow.log_dict({"passed": passed, "checks": checks, "production": None}, "gate/gate.json")
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(example, model.predict(x_train[:5])),
            input_example=example.head(3),
            skops_trusted_types=config["estimator"]["trusted_types"],
        )

    client = MlflowClient()
    with contextlib.suppress(mlflow.exceptions.MlflowException):  # it exists
        client.create_registered_model(name)
    tags = {
        "gate": "passed" if passed else "failed",
        "gate.reasons": json.dumps([c["message"] for c in checks]),
        "dataset.digest": dataset.digest,
        "dataset.source": "sklearn.datasets.load_wine",
        "git.commit": commit,
        "baseline": f"runs:/{run.info.run_id}/baseline/baseline.json",
        "training.config": str(config_path),
        "training.config.digest": hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest(),
        "holdout": f"runs:/{run.info.run_id}/holdout/holdout.parquet",
    }
    version = client.create_model_version(
        name, info.model_uri, run_id=run.info.run_id, tags=tags, model_id=info.model_id
    )
    if passed:
        client.set_registered_model_alias(name, "candidate", version.version)
    print(f"{name} v{version.version} gate {'PASSED' if passed else 'FAILED'} experiment {experiment.experiment_id}")
    return 0 if passed else 3


if __name__ == "__main__":
    sys.exit(main())
