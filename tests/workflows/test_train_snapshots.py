"""Training from the newest dataset snapshot, and a retraining that would duplicate a version."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from support.project import WINE_CONFIG, base_env, run_mlops

pytestmark = pytest.mark.integration

MODEL = "wine-classifier"


def _wine() -> pd.DataFrame:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame.columns = [str(c).replace("/", "_") for c in frame.columns]
    return frame


def test_newest_snapshot_is_trained_on_and_a_duplicate_registers_nothing(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    home = tmp_path / ".mlops"
    snapshots = tmp_path / "snapshots"
    folder = snapshots / MODEL
    folder.mkdir(parents=True)
    wine = _wine()
    wine.sample(frac=0.8, random_state=1).to_csv(folder / "2026-11-30.csv", index=False)
    newest = folder / "2026-12-01"
    newest.mkdir()
    wine.iloc[:90].to_parquet(newest / "part-0.parquet")
    wine.iloc[90:].to_parquet(newest / "part-1.parquet")
    (newest / "_SUCCESS").write_text("")  # a marker file is not data
    env = base_env(MLOPS_HOME=str(home), MLOPS_TRAIN_SNAPSHOTS_URI=str(snapshots))
    client = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db", registry_uri=f"sqlite:///{home}/mlflow.db")

    def train(*overrides: str) -> str:
        args = ["train", "--config", str(WINE_CONFIG), *(a for o in overrides for a in ("--set", o))]
        result = run_mlops(*args, cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout + result.stderr

    out = train()
    assert f"newest snapshot under {snapshots}/{MODEL}/" in out
    v1 = client.get_model_version(MODEL, "1")
    assert v1.tags["dataset.source"] == str(newest)
    run = client.get_run(v1.run_id)
    assert run.inputs.dataset_inputs[0].dataset.digest == v1.tags["dataset.digest"]
    assert run.data.params["dataset.source"] == str(newest)

    # The same data and the same config again: nothing registered, and it says which version.
    out = train()
    assert f"{MODEL}: nothing registered: v1 was trained on the same data ({newest}, digest " in out
    assert v1.tags["dataset.digest"] in out
    assert [str(v.version) for v in client.search_model_versions(f"name = '{MODEL}'")] == ["1"]

    # Another config on the same data is a new version; so is a newer snapshot.
    train("estimator.params.n_estimators=150")
    assert client.get_model_version(MODEL, "2").tags["dataset.digest"] == v1.tags["dataset.digest"]
    wine.sample(frac=0.9, random_state=2).to_csv(folder / "2026-12-02.csv", index=False)
    train()
    v3 = client.get_model_version(MODEL, "3")
    assert v3.tags["dataset.source"] == str(folder / "2026-12-02.csv")
    assert v3.tags["dataset.digest"] != v1.tags["dataset.digest"]


def test_without_a_snapshot_the_config_dataset_is_used(tmp_path: Path) -> None:
    env = base_env(MLOPS_HOME=str(tmp_path / ".mlops"), MLOPS_TRAIN_SNAPSHOTS_URI=str(tmp_path / "none"))
    result = run_mlops("train", "--config", str(WINE_CONFIG), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "wine-classifier v1  gate PASSED" in result.stdout
