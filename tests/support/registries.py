"""What the registry contract tests and the jobs' start-up tests share: a registry MLflow's own
client filled, and the inputs and commands of the jobs that read it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

MODEL = "demo-model"


def fill_with_mlflow(mlflow: Any) -> tuple[str, str]:
    """Through MLflow's client (a :class:`mlops_platform.registry.Registry`): a run with tags,
    params, metrics (NaN and infinite too) and files, and a registered model :data:`MODEL` with
    three versions (3 deleted), tags and aliases. Returns the run id and its experiment id."""
    client = mlflow.client
    experiment = mlflow.ensure_experiment("train/demo")
    run = client.create_run(experiment, run_name="train-demo", tags={"mlops.model_name": MODEL})
    run_id = run.info.run_id
    client.log_param(run_id, "estimator", "forest")
    for key, value in {"accuracy": 0.9, "not_a_number": math.nan, "huge": math.inf}.items():
        client.log_metric(run_id, key, value)
    client.log_text(run_id, '{"ok": true}', "baseline/baseline.json")
    client.log_text(run_id, "flavors: {}\n", "model/MLmodel")
    client.log_text(run_id, "x", "model/data/weights.bin")
    client.set_terminated(run_id, "FINISHED")
    source = f"{run.info.artifact_uri}/model"
    mlflow.register(MODEL, source, run_id, None, {"gate": "passed"})
    mlflow.register(MODEL, source, run_id, None, {"gate": "passed", "dataset.digest": "abc"})
    mlflow.register(MODEL, source, run_id, None, {})
    mlflow.delete_version(MODEL, 3)
    mlflow.set_alias(MODEL, "candidate", 2)
    mlflow.set_alias(MODEL, "staging", 2)
    mlflow.set_alias(MODEL, "production", 1)
    return run_id, experiment


def wine_job_commands(folder: Path) -> dict[str, list[str]]:
    """`mlops` arguments of batch-predict and drift on 60 wine rows written under ``folder`` (the
    features named as training names them), keyed by the job's name."""
    import pandas as pd
    from sklearn.datasets import load_wine

    rows = load_wine(as_frame=True).frame.drop(columns="target").head(60)
    rows.columns = [str(c).replace("/", "_") for c in rows.columns]
    rows.to_parquet(folder / "in.parquet")
    pd.DataFrame({"id": range(60)}).join(rows).to_parquet(folder / "batch.parquet")
    return {
        "batch-predict": ["batch-predict", "wine-classifier", "--alias", "candidate", "--input",
                          str(folder / "batch.parquet"), "--output", str(folder / "out"), "--id-column", "id"],
        "drift": ["drift", "wine-classifier", "--alias", "candidate", "--input", str(folder / "in.parquet")],
    }
