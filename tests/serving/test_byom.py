"""Bring-your-own models and real clients: versions a notebook registered in a real MLflow server
(PostgreSQL + SeaweedFS S3), served by a real `python -m mlops_serving`, called by the real
`tritonclient[http]` and MLflow's own scoring client; then a baseline attached with
`mlops baseline create` and the drift job run on what the server logged.

The models (see ``support/notebook_models.py``): column signature, tensor signatures (float64, float32,
int64), no signature (with a known and an unknown width), scikit-learn saved with skops and with
cloudpickle, and custom pyfunc ``PythonModel``\\ s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from support.postgres import Postgres
from support.project import base_env, run_mlops
from support.seaweedfs import S3
from support.serving import Server, start_server, wait_until

pytestmark = pytest.mark.integration

NOTEBOOK = Path(__file__).resolve().parents[1] / "support" / "notebook_models.py"
SKLEARN_MODELS = ("nb-columns", "nb-tensor", "nb-nosig", "nb-cloudpickle")
ALL_MODELS = (*SKLEARN_MODELS, "nb-pyfunc", "nb-pyfunc-int", "nb-pyfunc-nosig")


@dataclass(frozen=True)
class Registry:
    """A real MLflow server holding the notebook's versions, and what the notebook wrote."""

    tracking_uri: str
    workdir: Path
    wine: np.ndarray  # the 178 wine rows, named columns in wine.csv
    columns: list[str]
    expected: dict[str, list[Any]]
    store: Path  # prediction log of the servers

    def env(self, **extra: str) -> dict[str, str]:
        return base_env(MLFLOW_TRACKING_URI=self.tracking_uri, MLOPS_STORE_URI=str(self.store),
                        MLOPS_HOME=str(self.workdir / ".mlops"), **extra)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, postgres: Postgres, s3: S3) -> Iterator[Registry]:
    from support.mlflow_server import mlflow_server
    from support.procs import require_binary

    require_binary("mlflow")
    root = tmp_path_factory.mktemp("byom")
    with mlflow_server(root / "mlflow", postgres.new_database("mlflow"), s3, bucket=s3.new_bucket("mlflow")) as server:
        notebook = root / "notebook"
        notebook.mkdir()
        result = subprocess.run([sys.executable, str(NOTEBOOK), str(notebook)], cwd=notebook,
                                env=base_env(MLFLOW_TRACKING_URI=server.tracking_uri), capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        header = (notebook / "wine.csv").read_text().splitlines()[0].split(",")
        wine = np.loadtxt(notebook / "wine.csv", delimiter=",", skiprows=1)
        expected = json.loads((notebook / "expected.json").read_text())
        yield Registry(server.tracking_uri, notebook, wine, header, expected, root / "store")


@dataclass(frozen=True)
class Served:
    server: Server
    key: str


@pytest.fixture(scope="module")
def served(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Every notebook model in one server, API-key auth; the default model is nb-columns."""
    from mlops_serving.auth import generate_key

    workdir = tmp_path_factory.mktemp("byom-server")
    key, line = generate_key()
    (workdir / "api-keys").write_text(line + "\n")
    env = registry.env(
        MLOPS_SERVING_MODELS=",".join(f"{name}:1" for name in ALL_MODELS),
        MLOPS_SERVING_AUTH="api-key", MLOPS_SERVING_API_KEYS_FILE=str(workdir / "api-keys"),
        MLOPS_SERVING_PREDLOG_FLUSH_INTERVAL_S="0.3", MLOPS_SERVING_LOAD_RETRY_INITIAL_S="0.5",
    )
    server = start_server(workdir, env, key=key, timeout=180)
    yield Served(server, key)
    server.stop()
    assert server.stopped_cleanly(), server.log.read_text()[-3000:]


def _tensor(name: str, data: Any, datatype: str = "FP64") -> dict[str, Any]:
    array = np.asarray(data)
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": array.reshape(-1).tolist()}


HTTP_DOWNLOAD = """
import json, sys
from pathlib import Path
from mlops_platform.errors import NotFoundError
from mlops_platform.settings import load_settings
from mlops_platform import registry_http
from mlops_serving.modelcache import ModelCache
from mlops_serving.runtime import load_model
from mlops_serving.settings import ModelRef, ServingSettings

def no_mlflow():
    raise AssertionError("MLflow's client was asked")

settings = load_settings(ServingSettings)
source = registry_http.HttpRegistry(settings, no_mlflow)
cache = ModelCache(Path(sys.argv[1]), settings.effective_tracking_uri)
models = {}
for name in sys.argv[2:]:
    model = load_model(source, ModelRef(name, 1), cache)
    models[name] = {"run_id": model.run_id, "features": model.feature_names,
                    "labels": model.predict(model.probe_rows()).labels.tolist()}
try:
    source.get_version(sys.argv[2], version=99)
    missing = ""
except NotFoundError as exc:
    missing = str(exc)
print(json.dumps({"usable": registry_http.usable(settings), "mlflow": "mlflow" in sys.modules,
                  "models": models, "missing": missing}))
"""


def test_a_download_asks_the_tracking_server_over_http_without_importing_mlflow(registry: Registry,
                                                                              tmp_path: Path) -> None:
    """A new pod's download (registry, files, baseline) goes over MLflow's REST API and the artifact
    proxy: the same files as MLflow's client downloads, and no ``import mlflow``."""
    names = ("nb-columns", "nb-tensor")
    env = registry.env(MLOPS_SERVING_MODELS="nb-columns:1", MLOPS_SERVING_AUTH="off")
    result = subprocess.run([sys.executable, "-c", HTTP_DOWNLOAD, str(tmp_path / "cache"), *names],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["usable"] is True and out["mlflow"] is False
    assert out["missing"] == "model 'nb-columns' has no version 99"
    for name in names:
        version = requests.get(f"{registry.tracking_uri}/api/2.0/mlflow/model-versions/get",
                               params={"name": name, "version": "1"}, timeout=30).json()["model_version"]
        assert out["models"][name]["run_id"] == version["run_id"]
        entry = next((tmp_path / "cache").glob(f"*/{name}/1"))
        assert (entry / "baseline.missing").is_file()  # the run lists no baseline: recorded as missing
        mlflows = subprocess.run(  # MLflow's own client, in a clean environment
            [sys.executable, "-c", "import sys; from mlflow.artifacts import download_artifacts; "
             "print(download_artifacts(artifact_uri=sys.argv[1], dst_path=sys.argv[2]))", f"models:/{name}/1",
             str(tmp_path / name)], capture_output=True, text=True, timeout=300, env=env)
        assert mlflows.returncode == 0, mlflows.stderr
        theirs = Path(mlflows.stdout.strip().splitlines()[-1])
        ours = {p.relative_to(entry / "model"): p.read_bytes() for p in (entry / "model").rglob("*") if p.is_file()}
        expected = {p.relative_to(theirs): p.read_bytes() for p in theirs.rglob("*") if p.is_file()}
        assert set(ours) == set(expected), name
        for path, data in expected.items():
            if path.name != "registered_model_meta":  # same YAML, quoted differently
                assert ours[path] == data, (name, path)
    assert out["models"]["nb-columns"]["features"] == registry.columns


# -- readiness, metadata and the start-up log --------------------------------------------------------


def test_notebook_models_are_served_and_say_what_they_validate(served: Served) -> None:
    server = served.server
    ready = server.get("/readyz", key=False)
    assert ready.status_code == 200, ready.text
    meta = {name: server.get(f"/v2/models/{name}").json() for name in ALL_MODELS}

    columns = meta["nb-columns"]
    assert columns["platform"] == "sklearn" and columns["parameters"]["signature"] == "columns"
    by_name = {i["name"]: i for i in columns["inputs"]}
    assert len(by_name) == 13 and by_name["magnesium"]["datatype"] == "INT64"
    assert by_name["alcohol"]["datatype"] == "FP64"

    tensor = meta["nb-tensor"]
    assert tensor["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 13]}]
    assert tensor["parameters"]["signature"] == "tensor"
    assert tensor["parameters"]["validation"] == "tensor signature float64 (-1, 13)"
    assert meta["nb-cloudpickle"]["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 13]}]
    assert meta["nb-pyfunc-int"]["inputs"] == [{"name": "input-0", "datatype": "INT64", "shape": [-1, 3]}]
    assert meta["nb-pyfunc-int"]["outputs"][0]["datatype"] == "INT64"
    assert meta["nb-pyfunc"]["platform"] == "mlflow_pyfunc"
    assert meta["nb-pyfunc"]["outputs"] == [{"name": "predict", "datatype": "BYTES", "shape": [-1]}]
    assert "python_function" in meta["nb-pyfunc"]["parameters"]["flavor"]

    for name in ("nb-nosig", "nb-pyfunc-nosig"):
        assert meta[name]["parameters"]["signature"] == "none"
        assert "not validated" in meta[name]["parameters"]["validation"]
    assert meta["nb-nosig"]["inputs"][0]["shape"] == [-1, 13]  # the estimator's n_features_in_
    assert meta["nb-pyfunc-nosig"]["inputs"][0]["shape"] == [-1, -1]  # nobody knows
    for name in ALL_MODELS:
        assert meta[name]["parameters"]["drift_monitoring"].startswith("off: no baseline"), name
        assert f"mlops baseline create {name} --version 1" in meta[name]["parameters"]["drift_monitoring"]

    messages = [entry.get("message", "") for entry in server.logs()]
    loaded = {name: next(m for m in messages if m.startswith(f"serving {name} v1 ")) for name in ALL_MODELS}
    assert "tensor signature float64 (-1, 13)" in loaded["nb-tensor"]
    assert "no baseline: no drift monitoring" in loaded["nb-tensor"]
    assert "no signature (13 features from the estimator): inputs are not validated" in loaded["nb-nosig"]
    assert "no signature (width unknown)" in loaded["nb-pyfunc-nosig"]
    assert any(m.startswith("nb-tensor v1 has no baseline statistics: no drift monitoring until one is attached")
               for m in messages)


# -- predictions on every protocol ---------------------------------------------------------------------


def test_each_kind_predicts_what_the_notebook_model_predicts(served: Served, registry: Registry) -> None:
    server = served.server
    rows = registry.wine[:5]
    for name in SKLEARN_MODELS:
        expected = registry.expected[name]
        own = server.post(f"/models/{name}/predict", json={"features": rows.tolist()})
        assert own.status_code == 200, (name, own.text)
        assert own.json()["predictions"] == expected, name
        # v2 JSON, sent without Content-Type as Triton's client does
        body = json.dumps({"inputs": [_tensor("input-0", rows)]}).encode()
        v2 = server.post(f"/v2/models/{name}/infer", data=body)
        assert v2.status_code == 200, (name, v2.text)
        assert v2.json()["outputs"][0]["data"] == expected, name
    # named records on the column signature, with magnesium as the integer it is typed
    records = [dict(zip(registry.columns, row.tolist(), strict=True)) for row in rows]
    for record in records:
        record["magnesium"] = int(record["magnesium"])
    named = server.post("/models/nb-columns/predict", json={"instances": records, "probabilities": True})
    assert named.status_code == 200, named.text
    assert named.json()["predictions"] == registry.expected["nb-columns"]
    assert len(named.json()["probabilities"][0]) == 3
    # the tensor model's columns are positions: "0".."12"
    positional = [{str(j): v for j, v in enumerate(row.tolist())} for row in rows]
    answer = server.post("/models/nb-tensor/predict", json={"instances": positional})
    assert answer.json()["predictions"] == registry.expected["nb-tensor"], answer.text

    # pyfunc models: their own outputs, typed
    rule = server.post("/v2/models/nb-pyfunc/infer", json={"inputs": [
        _tensor("x", [1.0, 0.0]), _tensor("y", [2.0, 0.5]), _tensor("n", [2, 3], "INT64"),
    ]})
    assert rule.status_code == 200, rule.text
    assert rule.json()["outputs"][0] == {"name": "predict", "datatype": "BYTES", "shape": [2], "data": ["hi", "lo"]}
    counts = server.post("/v2/models/nb-pyfunc-int/infer", json={"inputs": [_tensor("c", [[1, 2, 3], [4, 5, 6]],
                                                                                        "INT64")]})
    assert counts.status_code == 200, counts.text
    assert counts.json()["outputs"][0] == {"name": "predict", "datatype": "INT64", "shape": [2], "data": [6, 15]}
    sums = server.post("/models/nb-pyfunc-nosig/predict", json={"features": [[1, 2, 3, 4], [0.5, 0.5, 0, 0]]})
    assert sums.status_code == 200, sums.text
    assert sums.json()["predictions"] == [10.0, 1.0]


# -- hostile and wrong input: a 4xx naming the problem on every protocol ------------------------------------


BAD: list[tuple[str, str, Any, int, str]] = [
    # (path, how, body, status, text the message must contain)
    ("/models/nb-tensor/predict", "json", {"features": [[1.0] * 12]}, 422, "expected 13 features"),
    ("/v2/models/nb-tensor/infer", "json", {"inputs": [_tensor("input-0", [[1.0] * 14])]}, 422,
     "has 14 columns; the model expects 13 features"),
    ("/models/nb-columns/predict", "json", {"features": [[14.2, 1.7, 2.4, 15.6, 127.5, 2.8, 3.1, 0.3, 2.3, 5.6, 1.0,
                                                          3.9, 1065.0]]}, 422,
     "row 0, feature magnesium: 127.5 is not an integer of type int64"),
    ("/v2/models/nb-pyfunc-int/infer", "json", {"inputs": [_tensor("c", [[1.5, 2.0, 3.0]], "FP64")]}, 422,
     "1.5 is not an integer of type int64"),
    ("/v2/models/nb-pyfunc-int/infer", "json", {"inputs": [_tensor("c", [[1, 2]], "INT64")]}, 422,
     "has 2 columns; the model expects 3 features"),
    ("/v2/models/nb-pyfunc/infer", "json", {"inputs": [_tensor("x", [1.0]), _tensor("y", [2.0])]}, 422,
     "missing feature(s): n"),
    ("/models/nb-nosig/predict", "json", {"features": [[1.0] * 5]}, 422, "expected 13 features"),
    ("/models/nb-pyfunc-nosig/predict", "json", {"features": [[1.0]]}, 422,
     "the model rejected the input (ValueError): RowSums needs rows of at least 2 values"),
    ("/v2/models/nb-pyfunc-nosig/infer", "json", {"inputs": [_tensor("input-0", [[1.0], [2.0]])]}, 422,
     "the model rejected the input"),
    ("/v2/models/nb-cloudpickle/infer", "json", {"inputs": [_tensor("input-0", [[1e39] * 13], "FP64")]}, 422,
     "out of range"),
    ("/invocations", "json", {"dataframe_split": {"columns": ["alcohol"], "data": [[1.0]]}}, 422,
     "missing feature(s): malic_acid"),
    ("/invocations", "json", {"inputs": [[1.0, "x"] + [1.0] * 11]}, 422,
     "inputs[0][1] (malic_acid): expected a number"),
    ("/v2/models/nb-tensor/infer", "text/plain", b'{"inputs": []}', 415, "unsupported Content-Type 'text/plain'"),
    ("/invocations", "none", b'{"inputs": [[1.0]]}', 415, "missing Content-Type"),
    ("/models/nb-tensor/predict", "none", b'{"features": [[1.0]]}', 415, "missing Content-Type"),
]


@pytest.mark.parametrize(("path", "how", "body", "status", "text"), BAD,
                         ids=[f"{p.rsplit('/', 2)[-2]}-{i}" for i, (p, *_rest) in enumerate(BAD)])
def test_bad_input_gets_a_4xx_naming_the_problem(served: Served, path: str, how: str, body: Any, status: int,
                                                  text: str) -> None:
    server = served.server
    if how == "json":
        response = server.post(path, json=body)
    else:
        headers = {} if how == "none" else {"Content-Type": how}
        response = server.post(path, data=body, headers=headers)
    assert response.status_code == status, response.text
    assert text in response.text, response.text


# -- the real Triton HTTP client -----------------------------------------------------------------------


def test_tritonclient_http(served: Served, registry: Registry) -> None:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    url = served.server.url.removeprefix("http://")
    client = httpclient.InferenceServerClient(url=url)
    auth = {"x-api-key": served.key}  # copied per call: tritonclient adds its own headers to the dict it gets
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("nb-tensor") and client.is_model_ready("nb-tensor", "1")
        assert not client.is_model_ready("nb-tensor", "2")
        metadata = client.get_model_metadata("nb-tensor", headers=dict(auth))
        assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 13]}]
        with pytest.raises(InferenceServerException) as refused:
            client.get_model_metadata("nb-tensor")
        assert refused.value.status() == "401"

        rows = registry.wine[:5]
        for binary in (False, True):  # JSON without Content-Type, and the binary tensor extension
            fp64 = httpclient.InferInput("input-0", list(rows.shape), "FP64")
            fp64.set_data_from_numpy(rows, binary_data=binary)
            out = [httpclient.InferRequestedOutput("predict", binary_data=binary)]
            result = client.infer("nb-tensor", [fp64], outputs=out, headers=dict(auth))
            assert result.as_numpy("predict").tolist() == registry.expected["nb-tensor"]

        fp32 = httpclient.InferInput("input-0", list(rows.shape), "FP32")
        fp32.set_data_from_numpy(rows.astype(np.float32), binary_data=False)
        result = client.infer("nb-cloudpickle", [fp32], headers=dict(auth))
        assert result.as_numpy("predict").tolist() == registry.expected["nb-cloudpickle"]
        assert result.as_numpy("predict_proba").shape == (5, 3)

        counts = httpclient.InferInput("counts", [2, 3], "INT64")
        counts.set_data_from_numpy(np.array([[1, 2, 3], [10, 20, 30]], dtype=np.int64), binary_data=False)
        result = client.infer("nb-pyfunc-int", [counts], headers=dict(auth))
        assert result.as_numpy("predict").dtype == np.int64
        assert result.as_numpy("predict").tolist() == [6, 60]

        with pytest.raises(InferenceServerException) as unauthorised:
            client.infer("nb-tensor", [fp64])
        assert unauthorised.value.status() == "401"
        wrong = httpclient.InferInput("input-0", [1, 12], "FP64")
        wrong.set_data_from_numpy(np.ones((1, 12)), binary_data=False)
        with pytest.raises(InferenceServerException) as invalid:
            client.infer("nb-tensor", [wrong], headers=dict(auth))
        assert invalid.value.status() == "422"
        assert "has 12 columns; the model expects 13 features" in invalid.value.message()
    finally:
        client.close()


# -- MLflow's own scoring client and payloads ---------------------------------------------------------


def test_mlflow_scoring_client_and_split_payloads(served: Served, registry: Registry,
                                                  tmp_path: Path) -> None:
    import pandas as pd
    from mlflow.pyfunc.scoring_server import client as scoring_client

    rows = registry.wine[:5]
    frame = pd.DataFrame(rows, columns=registry.columns)
    frame["magnesium"] = frame["magnesium"].astype("int64")
    # the payload MLflow's clients build: {"dataframe_split": DataFrame.to_dict(orient="split")}
    payload = scoring_client.dump_input_data(frame)
    assert json.loads(payload)["dataframe_split"]["index"] == [0, 1, 2, 3, 4]
    answer = served.server.post("/invocations", data=payload, headers={"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": registry.expected["nb-columns"]}

    # MLflow's ScoringServerClient sends no credentials: a server without auth whose default model
    # has a tensor signature (pandas names the columns of DataFrame(X) 0..12, ndarray -> "inputs")
    env = registry.env(MLOPS_SERVING_MODELS="nb-tensor:1,nb-pyfunc:1", MLOPS_SERVING_AUTH="off",
                       MLOPS_SERVING_PREDLOG_SAMPLE_RATE="0")
    server = start_server(tmp_path, env, timeout=180)
    try:
        host, port = server.url.removeprefix("http://").split(":")
        client = scoring_client.ScoringServerClient(host, int(port))
        client.wait_server_ready(timeout=30)
        for data in (pd.DataFrame(rows), rows):
            predictions = client.invoke(data).get_predictions(predictions_format="ndarray")
            assert np.asarray(predictions).reshape(-1).tolist() == registry.expected["nb-tensor"]
        with pytest.raises(Exception, match="error code 422"):
            client.invoke(pd.DataFrame(rows[:, :12]))
        # CSV with the file's own header: the columns are positions for a tensor signature
        csv_body = pd.DataFrame(rows, columns=registry.columns).to_csv(index=False)
        answer = requests.post(server.url + "/invocations", data=csv_body, headers={"Content-Type": "text/csv"},
                               timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"predictions": registry.expected["nb-tensor"]}
        narrow = pd.DataFrame(rows[:, :12], columns=registry.columns[:12]).to_csv(index=False)
        refused = requests.post(server.url + "/invocations", data=narrow, headers={"Content-Type": "text/csv"},
                                timeout=30)
        assert refused.status_code == 422 and "csv header: 12 columns; the model expects 13 features" in refused.text
    finally:
        server.stop()


# -- baseline attach and the drift job --------------------------------------------------------------------


def test_baseline_create_then_drift_runs_for_the_version(served: Served, registry: Registry, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    env = registry.env()
    wine_csv = registry.workdir / "wine.csv"
    # send the whole wine table to the tensor model through v2: the prediction log keeps it
    sent = served.server.post("/v2/models/nb-tensor/infer", json={"inputs": [_tensor("input-0", registry.wine)]})
    assert sent.status_code == 200, sent.text

    before = run_mlops("drift", "nb-tensor", "--version", "1", "--last", "1h", cwd=tmp_path, env=env)
    assert before.returncode == 2, before.stdout + before.stderr
    assert "nb-tensor v1 has no baseline statistics; attach them with `mlops baseline create" in before.stderr

    # bad input: exit 2, one line, nothing stored
    (tmp_path / "short.csv").write_text("a,b\n1,2\n")
    (tmp_path / "nan.csv").write_text(wine_csv.read_text().replace("\n14.23,", "\nnan,", 1))
    (tmp_path / "text.txt").write_text("hello\n")
    for args, message in [
        (("--data", str(tmp_path / "missing.csv")), "no such file"),
        (("--data", str(tmp_path / "text.txt")), "expected a .csv, .csv.gz, .parquet or .pq file"),
        (("--data", str(tmp_path / "short.csv")), "2 columns; nb-tensor v1 takes 13 unnamed features"),
        (("--data", str(tmp_path / "nan.csv")), "row 1, column alcohol: nan is not a finite number"),
        (("--data", str(wine_csv), "--bins", "1"), "--bins must be at least 2"),
    ]:
        result = run_mlops("baseline", "create", "nb-tensor", "--version", "1", *args, cwd=tmp_path, env=env)
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    missing_col = run_mlops("baseline", "create", "nb-columns", "--version", "1", "--data", str(tmp_path / "short.csv"),
                            cwd=tmp_path, env=env)
    assert missing_col.returncode == 2 and "missing feature column(s) alcohol, malic_acid" in missing_col.stderr
    client = MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)
    assert "baseline" not in client.get_model_version("nb-tensor", "1").tags

    created = run_mlops("baseline", "create", "nb-tensor", "--version", "1", "--data", str(wine_csv),
                        cwd=tmp_path, env=env)
    assert created.returncode == 0, created.stdout + created.stderr
    assert "nb-tensor v1: baseline statistics attached (178 rows, 13 features, classes 0, 1, 2)" in created.stdout
    version = client.get_model_version("nb-tensor", "1")
    assert version.tags["baseline"] == f"runs:/{version.run_id}/baseline/baseline.json"
    local = client.download_artifacts(version.run_id, "baseline/baseline.json", str(tmp_path))
    from mlops_drift.baseline import BaselineStatistics, compute_baseline

    stored = BaselineStatistics.model_validate_json(Path(local).read_text())
    # the feature statistics training computes, on the same rows (named by position: a tensor signature)
    reference = compute_baseline(registry.wine, [str(j) for j in range(13)], [], [])
    assert stored.feature_names == reference.feature_names
    assert stored.features == reference.features
    assert stored.predictions.classes == ["0", "1", "2"] and stored.predictions.rows == 178
    assert stored.predictions.proportions[0] > 0.2  # the model's own predictions on the rows
    again = run_mlops("baseline", "create", "nb-tensor", "--version", "1", "--data", str(wine_csv),
                      cwd=tmp_path, env=env)
    assert again.returncode == 2 and "already has baseline statistics (178 rows); pass --replace" in again.stderr

    # the drift job on the server's prediction log of this version: the same rows, no drift
    from mlops_platform.prediction_log import read_records
    from mlops_platform.settings import PlatformSettings

    now = datetime.now(UTC)

    def logged() -> int | None:
        count = len(read_records(str(registry.store), PlatformSettings(home=tmp_path / ".mlops"), "nb-tensor", "1",
                                 now - timedelta(hours=1), now + timedelta(hours=1)))
        return count if count >= 178 else None  # (plus the rows the other tests sent)

    rows = wait_until(logged, 60, "the prediction log of nb-tensor")
    drift = run_mlops("drift", "nb-tensor", "--version", "1", "--last", "1h", "--min-rows", "50", cwd=tmp_path,
                      env=env)
    assert drift.returncode == 0, drift.stdout + drift.stderr
    assert f"nb-tensor v1: OK  ({rows} rows" in drift.stdout, drift.stdout

    # a server started now says the version is monitored
    server = start_server(tmp_path, registry.env(MLOPS_SERVING_MODELS="nb-tensor:1", MLOPS_SERVING_AUTH="off",
                                                 MLOPS_SERVING_PREDLOG_SAMPLE_RATE="0"), timeout=180)
    try:
        meta = requests.get(server.url + "/v2/models/nb-tensor", timeout=10).json()
    finally:
        server.stop()
    assert meta["parameters"]["drift_monitoring"] == "baseline attached"
