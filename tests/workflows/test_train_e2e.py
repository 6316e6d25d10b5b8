"""`mlops train` end to end: the embedded SQLite store and a real MLflow server (PostgreSQL + S3).

The same lifecycle runs against both backends: a version that passes its gate and gets
`candidate`; a later run compared with the version holding `production` on the same holdout,
failing on regression and passing within tolerance.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from support.project import WINE_CONFIG, EmbeddedStore, base_env, run_mlops

from mlops_drift.baseline import BASELINE_ARTIFACT, BaselineStatistics


@dataclass(frozen=True)
class Backend:
    name: str
    workdir: Path
    env: dict[str, str]
    tracking_uri: str

    def client(self):  # type: ignore[no-untyped-def]
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)


@pytest.fixture(scope="module")
def server_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from support.mlflow_server import mlflow_server
    from support.procs import require_binary

    require_binary("mlflow")
    pg, s3 = request.getfixturevalue("postgres"), request.getfixturevalue("s3")
    root = tmp_path_factory.mktemp("stack")
    with mlflow_server(root / "mlflow", pg.new_database("mlflow"), s3, bucket=s3.new_bucket("mlflow")) as server:
        yield pg, s3, server


def _backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "embedded":
        env = base_env(MLOPS_HOME=str(tmp_path / ".mlops"))
        return Backend("embedded", tmp_path, env, f"sqlite:///{tmp_path}/.mlops/mlflow.db")
    _, s3, server = request.getfixturevalue("server_stack")
    env = base_env(MLFLOW_TRACKING_URI=server.tracking_uri, **s3.env())
    return Backend("server", tmp_path, env, server.tracking_uri)


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return _backend(request, tmp_path)


def _train(backend: Backend, *overrides: str, config: Path = WINE_CONFIG) -> tuple[int, str, str]:
    args = ["train", "--config", str(config)]
    for item in overrides:
        args += ["--set", item]
    result = run_mlops(*args, cwd=backend.workdir, env=backend.env)
    return result.returncode, result.stdout, result.stderr


def _holdout_accuracy_of(backend: Backend, model_name: str, version: str) -> float:
    """Independent check: the version's accuracy on the wine holdout of seed 42, test_size 0.25."""
    import mlflow.sklearn
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    mlflow.set_tracking_uri(backend.tracking_uri)
    mlflow.set_registry_uri(backend.tracking_uri)
    x, y = load_wine(return_X_y=True)
    _, x_test, _, y_test = train_test_split(x, y, test_size=0.25, random_state=42, stratify=y)
    model = mlflow.sklearn.load_model(f"models:/{model_name}/{version}")
    return float(np.mean(model.predict(x_test) == y_test))


WEAK = ("estimator.params.n_estimators=2", "estimator.params.max_depth=1", "gate.min={}", "gate.max={}")


def test_lifecycle_gate_pass_fail_and_regression(backend: Backend) -> None:
    client = backend.client()

    # v1 passes its gate and gets `candidate`.
    code, out, err = _train(backend)
    assert code == 0, out + err
    assert "wine-classifier v1  gate PASSED  aliases: candidate" in out
    assert "[1/7]" in err and "registering a new version" in err  # progress
    v1 = client.get_model_version("wine-classifier", "1")
    assert v1.tags["gate"] == "passed"
    assert str(client.get_model_version_by_alias("wine-classifier", "candidate").version) == "1"

    # Lineage and baseline statistics are stored with the version.
    run = client.get_run(v1.run_id)
    assert run.data.params["estimator.n_estimators"] == "100"
    assert {"accuracy", "f1_macro", "roc_auc_ovr", "log_loss", "precision.0", "recall.2"} <= set(
        run.data.metrics
    )
    assert run.info.status == "FINISHED"
    # git tags: the config's working tree, read once (also the logged model's), and MLflow's run context
    repo = WINE_CONFIG.parent
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    branch = subprocess.run(["git", "symbolic-ref", "--short", "-q", "HEAD"], cwd=repo, capture_output=True,
                            text=True).stdout.strip()
    assert run.data.tags["mlflow.source.git.commit"] == head
    assert run.data.tags.get("mlflow.source.git.branch") == (branch or None)
    assert run.data.tags["git.dirty"] in ("true", "false")
    assert run.data.tags["mlflow.runName"] == "train-wine-classifier"
    assert {"mlflow.user", "mlflow.source.name", "mlflow.source.type"} <= set(run.data.tags)
    logged_model = client.get_logged_model(v1.source.removeprefix("models:/"))
    assert logged_model.source_run_id == v1.run_id and logged_model.name == "model"
    assert {k: v for k, v in logged_model.tags.items() if k.startswith("mlflow.source.git.")} == {
        k: v for k, v in run.data.tags.items() if k.startswith("mlflow.source.git.")
    }
    assert logged_model.params == run.data.params
    assert {m.key for m in logged_model.metrics or []} == set(run.data.metrics)
    dataset_input = run.inputs.dataset_inputs[0].dataset
    assert dataset_input.digest == v1.tags["dataset.digest"]
    assert dataset_input.source  # where the data came from
    local = client.download_artifacts(v1.run_id, BASELINE_ARTIFACT, str(backend.workdir))
    baseline = BaselineStatistics.model_validate_json(Path(local).read_text())
    assert len(baseline.features) == 13 and baseline.predictions.classes == ["0", "1", "2"]
    assert sum(baseline.feature("alcohol").proportions) == pytest.approx(1.0)
    assert v1.tags["baseline"] == f"runs:/{v1.run_id}/{BASELINE_ARTIFACT}"
    artifacts = {a.path for a in client.list_artifacts(v1.run_id, "config")}
    assert "config/wine-classifier.yaml" in artifacts

    # The model records what it needs to be served elsewhere, pinned to the versions that trained it
    # (passed explicitly: nothing this process happened to import, such as pytest).
    from importlib.metadata import version as installed

    import mlflow

    mlflow.set_tracking_uri(backend.tracking_uri)
    mlflow.set_registry_uri(backend.tracking_uri)
    model_dir = mlflow.artifacts.download_artifacts("models:/wine-classifier/1", dst_path=str(backend.workdir / "v1"))
    requirements = (Path(model_dir) / "requirements.txt").read_text().split()
    assert {"MLmodel", "model.skops", "input_example.json", "serving_input_example.json", "python_env.yaml",
            "conda.yaml"} <= {p.name for p in Path(model_dir).iterdir()}
    assert requirements == [
        f"mlflow=={mlflow.__version__}",
        *(f"{name}=={installed(name)}" for name in ("numpy", "pandas", "scikit-learn", "scipy", "skops")),
    ]

    # v1 goes to production (what the promotion bot's --finalize does).
    client.set_registered_model_alias("wine-classifier", "production", "1")

    # v2 is much weaker: absolute thresholds removed, but it regresses against production.
    code, out, err = _train(backend, *WEAK)
    assert code == 3, out + err
    assert "regresses from production v1" in err and "more than the tolerance 0.02" in err
    v2 = client.get_model_version("wine-classifier", "2")
    assert v2.tags["gate"] == "failed"
    assert any("regresses from production v1" in r for r in json.loads(v2.tags["gate.reasons"]))
    assert str(client.get_model_version_by_alias("wine-classifier", "candidate").version) == "1"
    # compared on the same holdout: the production figure logged in v2's run is v1's holdout accuracy
    logged = client.get_run(v2.run_id).data.metrics["production.accuracy"]
    assert logged == pytest.approx(_holdout_accuracy_of(backend, "wine-classifier", "1"))

    # v3, as good as production, passes and moves `candidate`; `production` stays on v1.
    code, out, err = _train(backend, "estimator.params.n_estimators=150")
    assert code == 0, out + err
    assert "within 0.02" in out and "vs production v1" in out
    assert str(client.get_model_version_by_alias("wine-classifier", "candidate").version) == "3"
    assert str(client.get_model_version_by_alias("wine-classifier", "production").version) == "1"


def test_absolute_threshold_failure_says_which_and_by_how_much(backend: Backend) -> None:
    # its own model name: the server's registry is shared by the tests of this module
    code, _, err = _train(
        backend,
        "model_name=wine-gate-fail",
        "gate.min.accuracy=0.999",
        "estimator.params.n_estimators=2",
        "estimator.params.max_depth=1",
    )
    assert code == 3
    assert "error: wine-gate-fail v1 failed its gate: accuracy" in err
    assert "is below the minimum 0.999 by" in err
    version = backend.client().get_model_version("wine-gate-fail", "1")
    assert version.tags["gate"] == "failed"
    assert not backend.client().get_registered_model("wine-gate-fail").aliases


def test_models_list_and_show(trained_store: EmbeddedStore) -> None:
    listed = run_mlops("models", "list", cwd=trained_store.workdir, env=trained_store.env())
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:2] == ["MODEL", "VERSIONS"]
    assert any(line.startswith("breast-cancer-classifier") and "candidate=v1" in line for line in lines)
    assert any(line.startswith("wine-classifier") and "passed" in line for line in lines)

    shown = run_mlops("models", "show", "wine-classifier", cwd=trained_store.workdir, env=trained_store.env())
    assert shown.returncode == 0 and "v1" in shown.stdout and "candidate" in shown.stdout

    detail = run_mlops(
        "models",
        "show",
        "breast-cancer-classifier",
        "--version",
        "1",
        cwd=trained_store.workdir,
        env=trained_store.env(),
    )
    assert detail.returncode == 0, detail.stderr
    for expected in (
        "gate:           passed",
        "roc_auc_ovr",
        "dataset:        sklearn.datasets.load_breast_cancer",
        "git commit:",
        "baseline:       runs:/",
    ):
        assert expected in detail.stdout

    missing = run_mlops("models", "show", "nope", cwd=trained_store.workdir, env=trained_store.env())
    assert missing.returncode == 2 and "no registered model named 'nope'" in missing.stderr
    missing_version = run_mlops(
        "models",
        "show",
        "wine-classifier",
        "--version",
        "99",
        cwd=trained_store.workdir,
        env=trained_store.env(),
    )
    assert missing_version.returncode == 2 and "has no version 99" in missing_version.stderr


def test_second_model_trains_side_by_side(trained_store: EmbeddedStore) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{trained_store.home}/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias("breast-cancer-classifier", "candidate")
    assert version.tags["gate"] == "passed"
    assert client.get_run(version.run_id).data.params["features"] == "30"


@pytest.mark.integration
def test_server_mode_keeps_artifacts_in_s3_and_metadata_in_postgres(server_stack: object, tmp_path: Path) -> None:
    """Cluster layout: a dataset read from s3://, artifacts proxied into S3, the registry in PostgreSQL."""
    import io

    import psycopg2
    from sklearn.datasets import load_wine

    _, s3, server = server_stack  # type: ignore[misc]
    s3.make_bucket("datasets")
    frame = load_wine(as_frame=True).frame
    frame.columns = [c.replace("/", "_") for c in frame.columns]
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    s3.client().put_object(Bucket="datasets", Key="wine/v1.parquet", Body=buffer.getvalue())
    config = tmp_path / "wine-s3.yaml"
    config.write_text(
        WINE_CONFIG.read_text()
        .replace("model_name: wine-classifier", "model_name: wine-from-s3")
        .replace("  sklearn: wine", "  uri: s3://datasets/wine/v1.parquet\n  target: target")
    )
    env = base_env(MLFLOW_TRACKING_URI=server.tracking_uri, **s3.env())
    result = run_mlops("train", "--config", str(config), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr

    version = Backend("server", tmp_path, env, server.tracking_uri).client().get_model_version("wine-from-s3", "1")
    assert version.tags["dataset.source"] == "s3://datasets/wine/v1.parquet"
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=server.artifact_bucket).get("Contents", [])]
    assert any(k.endswith(f"{version.run_id}/artifacts/baseline/baseline.json") for k in keys), keys
    assert any(k.endswith("model.skops") for k in keys), keys
    with psycopg2.connect(server.backend_uri) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT version FROM model_versions WHERE name = %s", ("wine-from-s3",))
        assert cursor.fetchall() == [(1,)]

    # A missing object is bad input, not a crash.
    missing = config.read_text().replace("wine/v1.parquet", "wine/absent.parquet")
    config.write_text(missing)
    result = run_mlops("train", "--config", str(config), cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "s3://datasets/wine/absent.parquet: no such object" in result.stderr
