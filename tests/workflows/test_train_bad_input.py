"""Bad input to `mlops train`: a clear message, a non-zero exit, and nothing half-registered."""

from __future__ import annotations

import socket
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_wine
from support.project import WINE_CONFIG, base_env, run_mlops

from mlops_platform.errors import MlopsError
from mlops_platform.registry import Registry
from mlops_workflows.settings import TrainingSettings
from mlops_workflows.training.pipeline import Progress, train


def _wine_frame() -> pd.DataFrame:
    frame = load_wine(as_frame=True).frame
    frame.columns = [c.replace("/", "_") for c in frame.columns]
    return frame.rename(columns={"target": "label"})


def _config(tmp_path: Path, uri: str, extra: str = "") -> Path:
    path = tmp_path / "file-model.yaml"
    path.write_text(
        "model_name: file-model\n"
        f"dataset: {{uri: '{uri}', target: label}}\n"
        "estimator: {class: sklearn.ensemble.RandomForestClassifier, params: {n_estimators: 5}}\n" + extra
    )
    return path


def _registered_versions(workdir: Path) -> list[str]:
    """Every registered version in the workdir's embedded store (none if it was never created)."""
    from mlflow import MlflowClient

    db = workdir / ".mlops" / "mlflow.db"
    if not db.exists():
        return []
    client = MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}")
    return [f"{v.name}/{v.version}" for v in client.search_model_versions()]


def _dataset(tmp_path: Path, kind: str) -> str:
    frame = _wine_frame()
    path = tmp_path / "data.csv"
    if kind == "missing-target":
        frame.drop(columns=["label"]).to_csv(path, index=False)
    elif kind == "non-numeric":
        frame.assign(colour=["red", "white"] * (len(frame) // 2) + ["red"] * (len(frame) % 2)).to_csv(
            path, index=False
        )
    elif kind == "empty-rows":
        frame.head(0).to_csv(path, index=False)
    elif kind == "empty-file":
        path.write_text("")
    elif kind == "corrupt-parquet":
        path = tmp_path / "data.parquet"
        path.write_bytes(b"PAR1 this is not parquet")
    elif kind == "absent":
        path = tmp_path / "absent.csv"
    elif kind == "one-class":
        frame.assign(label=0).to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing-target", "target column 'label' not found; columns are: alcohol"),
        ("non-numeric", "non-numeric feature columns: colour ("),
        ("empty-rows", "the dataset has no rows"),
        ("empty-file", "the file is empty"),
        ("corrupt-parquet", "not a readable parquet file"),
        ("absent", "absent.csv: no such file"),
        ("one-class", "fewer than two classes"),
    ],
)
def test_bad_datasets(tmp_path: Path, kind: str, message: str) -> None:
    config = _config(tmp_path, _dataset(tmp_path, kind))
    result = run_mlops("train", "--config", str(config), cwd=tmp_path, env=base_env())
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert _registered_versions(tmp_path) == []


def test_a_good_csv_dataset_trains(tmp_path: Path) -> None:
    frame = _wine_frame()
    frame.to_csv(tmp_path / "wine.csv", index=False)
    config = _config(tmp_path, str(tmp_path / "wine.csv"), "gate: {min: {accuracy: 0.8}}\n")
    result = run_mlops("train", "--config", str(config), cwd=tmp_path, env=base_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert _registered_versions(tmp_path) == ["file-model/1"]


@pytest.mark.parametrize(
    ("overrides", "code", "message"),
    [
        (
            ["estimator.class=sklearn.ensemble.RandomForestClassifer"],
            2,
            "unknown estimator; did you mean sklearn.ensemble.RandomForestClassifier?",
        ),
        (["estimator.params.n_estimators=-3"], 2, "n_estimators"),
        (["gate.min.acuracy=0.9"], 2, "did you mean 'accuracy'"),
        (["oops"], 2, "--set expects key.path=value"),
    ],
)
def test_bad_configuration(tmp_path: Path, overrides: list[str], code: int, message: str) -> None:
    args = ["train", "--config", str(WINE_CONFIG)]
    for item in overrides:
        args += ["--set", item]
    result = run_mlops(*args, cwd=tmp_path, env=base_env())
    assert result.returncode == code, result.stdout + result.stderr
    assert message in result.stderr
    assert _registered_versions(tmp_path) == []


def test_untrusted_serialization_leaves_no_version(tmp_path: Path) -> None:
    """Logging the model fails (skops refuses an untrusted type): no version is registered."""
    result = run_mlops(
        "train",
        "--config",
        str(WINE_CONFIG),
        "--set",
        "estimator.trusted_types=[]",
        cwd=tmp_path,
        env=base_env(),
    )
    assert result.returncode == 2
    assert "sklearn.tree._tree.Tree" in result.stderr and "estimator.trusted_types" in result.stderr
    assert _registered_versions(tmp_path) == []


def test_unreachable_tracking_server(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    env = base_env(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}", MLOPS_TRACKING_TIMEOUT_S="2")
    result = run_mlops("train", "--config", str(WINE_CONFIG), cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 4
    assert f"MLflow tracking server unreachable at http://127.0.0.1:{port}" in result.stderr


def test_failure_after_registration_removes_the_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If moving the alias fails, the just-created version is deleted again."""

    class AliasDown(MlopsError):
        pass

    def broken_set_alias(self: Registry, name: str, alias: str, version: int | str) -> None:
        raise AliasDown("registry went away")

    monkeypatch.setattr(Registry, "set_alias", broken_set_alias)
    settings = TrainingSettings(home=tmp_path / ".mlops")
    with pytest.raises(AliasDown):
        train(WINE_CONFIG, settings, progress=Progress(7, stream=open("/dev/null", "w")))  # noqa: SIM115
    assert _registered_versions(tmp_path) == []
