"""The model server as a real uvicorn process serving models that `mlops train` registered."""

from __future__ import annotations

import json
import random
import struct
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from support.serving import (
    CANCER,
    WINE,
    WINE_ROWS,
    Keys,
    Server,
    cancer_rows,
    make_key,
    wait_until,
    wine_dataset,
    wine_features,
)

from mlops_platform import metric_names as mn

JSON = {"content-type": "application/json"}


def records(rows: list[list[float]]) -> list[dict[str, float]]:
    return [dict(zip(wine_features(), row, strict=True)) for row in rows]


def expected(model: Any, rows: list[list[float]]) -> tuple[list[int], list[list[float]]]:
    x = np.asarray(rows, dtype=np.float64)
    return model.predict(x).tolist(), model.predict_proba(x).tolist()


# -- the platform's own protocol ------------------------------------------------------------------

def test_predict_features_and_instances(server: Server, wine_model: Any) -> None:
    labels, proba = expected(wine_model, WINE_ROWS)
    response = server.post("/predict", json={"features": WINE_ROWS, "probabilities": True},
                           headers={"X-Request-ID": "req-features-1"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predictions"] == labels == [0, 1, 2]
    assert np.allclose(body["probabilities"], proba)
    assert body["classes"] == [0, 1, 2]
    assert (body["model"], body["version"], body["request_id"]) == (WINE, "1", "req-features-1")
    assert response.headers["x-request-id"] == "req-features-1"

    by_name = server.post(f"/models/{WINE}/predict", json={"instances": records(WINE_ROWS)})
    assert by_name.status_code == 200, by_name.text
    assert by_name.json()["predictions"] == labels
    assert "probabilities" not in by_name.json()
    assert len(by_name.headers["x-request-id"]) == 32  # generated when the client sends none


def test_two_models_side_by_side(server: Server) -> None:
    rows = cancer_rows(4)
    cancer = server.post(f"/models/{CANCER}/predict", json={"features": rows, "probabilities": True})
    assert cancer.status_code == 200, cancer.text
    assert cancer.json()["model"] == CANCER and cancer.json()["version"] == "1"
    assert cancer.json()["predictions"] == [0, 0, 0, 0]  # the first rows of the dataset are malignant
    assert np.allclose(np.sum(cancer.json()["probabilities"], axis=1), 1.0)
    wine = server.post(f"/models/{WINE}/predict", json={"features": WINE_ROWS[:1]})
    assert wine.json()["model"] == WINE
    # each model checks its own signature
    wrong = server.post(f"/models/{CANCER}/predict", json={"features": WINE_ROWS[:1]})
    assert wrong.status_code == 422 and "expected 30 features" in wrong.json()["error"]["message"]
    ready = server.get("/readyz", key=False).json()
    assert ready == {"status": "ready", "models": {WINE: "ready", CANCER: "ready"}}


# -- MLflow scoring protocol ----------------------------------------------------------------------

@pytest.mark.parametrize("payload", [
    pytest.param({"dataframe_split": {"columns": wine_features(), "data": WINE_ROWS}}, id="dataframe_split"),
    pytest.param({"dataframe_split": {"columns": wine_features()[::-1], "data": [r[::-1] for r in WINE_ROWS],
                                      "index": [7, 8, 9]}}, id="dataframe_split-reordered"),
    pytest.param({"dataframe_records": records(WINE_ROWS)}, id="dataframe_records"),
    pytest.param({"instances": records(WINE_ROWS)}, id="instances-records"),
    pytest.param({"instances": WINE_ROWS}, id="instances-rows"),
    pytest.param({"inputs": {name: [row[i] for row in WINE_ROWS] for i, name in enumerate(wine_features())}},
                 id="inputs-columns"),
    pytest.param({"inputs": WINE_ROWS, "params": {}}, id="inputs-rows"),
    pytest.param({"inputs": records(WINE_ROWS)}, id="inputs-records"),
])
def test_invocations_json_shapes(server: Server, payload: dict[str, Any]) -> None:
    response = server.post("/invocations", data=json.dumps(payload), headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [0, 1, 2]}


def test_invocations_csv(server: Server) -> None:
    header = ",".join(wine_features())
    lines = [header, *(",".join(str(v) for v in row) for row in WINE_ROWS)]
    response = server.post("/invocations", data="\n".join(lines), headers={"content-type": "text/csv; charset=utf-8"})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [0, 1, 2]}


def test_invocations_mlflow_error_shape(server: Server) -> None:
    response = server.post("/invocations", data=json.dumps({"instances": [WINE_ROWS[0][:5]]}), headers=JSON)
    assert response.status_code == 422
    body = response.json()
    assert body["error_code"] == "INVALID_INPUT" and "expected 13 features" in body["message"]


# -- Open Inference Protocol v2 ---------------------------------------------------------------------

def test_v2_metadata_and_health(server: Server) -> None:
    assert server.get("/v2", key=False).json()["extensions"] == ["binary_tensor_data"]
    assert server.get("/v2/health/live", key=False).json() == {"live": True}
    assert server.get("/v2/health/ready", key=False).json() == {"ready": True}
    assert server.get(f"/v2/models/{WINE}/ready", key=False).json() == {"name": WINE, "ready": True}
    assert server.get(f"/v2/models/{WINE}/versions/1/ready", key=False).status_code == 200
    meta = server.get(f"/v2/models/{WINE}").json()
    assert meta["name"] == WINE and meta["versions"] == ["1"] and meta["platform"] == "sklearn"
    assert [i["name"] for i in meta["inputs"]] == wine_features()
    assert {i["datatype"] for i in meta["inputs"]} == {"FP64"}
    assert meta["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
    ]
    versioned = server.get(f"/v2/models/{WINE}/versions/1").json()
    for answer in (meta, versioned):  # a server started from the cache may switch it in between (see Cold start)
        assert answer["parameters"].pop("predict_path").startswith("compiled forest")
    assert versioned == meta
    assert server.get(f"/v2/models/{WINE}/versions/2").status_code == 404


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_v2_infer_one_2d_tensor(server: Server, wine_model: Any, datatype: str) -> None:
    flat = [v for row in WINE_ROWS for v in row]
    tensor = {"name": "input-0", "shape": [3, 13], "datatype": datatype, "data": flat}
    request = {"id": "my-infer-1", "inputs": [tensor]}
    response = server.post(f"/v2/models/{WINE}/infer", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"], body["id"]) == (WINE, "1", "my-infer-1")
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predict"] == {"name": "predict", "datatype": "INT64", "shape": [3], "data": [0, 1, 2]}
    proba = outputs["predict_proba"]
    assert proba["datatype"] == "FP64" and proba["shape"] == [3, 3]
    rows = np.asarray(WINE_ROWS, dtype=np.float32 if datatype == "FP32" else np.float64).astype(np.float64)
    assert np.allclose(np.reshape(proba["data"], (3, 3)), wine_model.predict_proba(rows))


def test_v2_infer_one_tensor_per_feature_int64_and_bytes(server: Server) -> None:
    inputs = []
    for i, name in enumerate(wine_features()):
        column = [row[i] for row in WINE_ROWS]
        if name == "magnesium" or name == "proline":  # integral values, typed INT64, shape [N, 1]
            inputs.append({"name": name, "shape": [3, 1], "datatype": "INT64", "data": [[int(v)] for v in column]})
        elif name == "hue":  # numbers as text
            inputs.append({"name": name, "shape": [3], "datatype": "BYTES", "data": [str(v) for v in column]})
        else:
            inputs.append({"name": name, "shape": [3], "datatype": "FP64", "data": column})
    random.Random(1).shuffle(inputs)  # order does not matter: tensors are matched by name
    response = server.post(f"/v2/models/{WINE}/versions/1/infer",
                           json={"inputs": inputs, "outputs": [{"name": "predict"}]})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [3], "data": [0, 1, 2]}]


def test_v2_infer_binary_tensor_extension(server: Server) -> None:
    """The binary data extension, as tritonclient sends it by default."""
    data = np.asarray(WINE_ROWS, dtype=np.float32).tobytes()
    header = json.dumps({
        "inputs": [{"name": "input-0", "shape": [3, 13], "datatype": "FP32",
                    "parameters": {"binary_data_size": len(data)}}],
        "outputs": [{"name": "predict", "parameters": {"binary_data": True}}, {"name": "predict_proba"}],
    }).encode()
    response = server.post(f"/v2/models/{WINE}/infer", data=header + data,
                           headers={"Inference-Header-Content-Length": str(len(header)),
                                    "content-type": "application/octet-stream"})
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    meta = json.loads(response.content[:length])
    predict, proba = meta["outputs"]
    assert predict["parameters"]["binary_data_size"] == 24 and "data" not in predict
    assert np.frombuffer(response.content[length:length + 24], dtype="<i8").tolist() == [0, 1, 2]
    assert proba["shape"] == [3, 3] and len(proba["data"]) == 9


def test_v2_binary_bytes_input(server: Server) -> None:
    values = [str(v).encode() for row in WINE_ROWS[:1] for v in row]
    blob = b"".join(struct.pack("<I", len(v)) + v for v in values)
    header = json.dumps({"inputs": [{"name": "x", "shape": [1, 13], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": len(blob)}}]}).encode()
    response = server.post(f"/v2/models/{WINE}/infer", data=header + blob,
                           headers={"Inference-Header-Content-Length": str(len(header))})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [0]


# -- bad input -------------------------------------------------------------------------------------

ROW = WINE_ROWS[0]
FEATURES = wine_features()
V2 = f"/v2/models/{WINE}/infer"


def _v2(data: Any, shape: list[int], datatype: str = "FP64", **extra: Any) -> str:
    return json.dumps({"inputs": [{"name": "input-0", "shape": shape, "datatype": datatype, "data": data}], **extra})


BAD_INPUTS = [
    # (id, path, content type, body, status, text that must be in the message)
    ("malformed-json", "/predict", "application/json", '{"features": [[1, 2', 400, "malformed JSON"),
    ("not-utf8", "/predict", "application/json", b'{"features": "\xff"}', 400, "not UTF-8"),
    ("json-list", "/predict", "application/json", "[1, 2]", 400, "must be a JSON object"),
    ("no-features", "/predict", "application/json", '{"rows": []}', 400, "unknown field(s) 'rows'"),
    ("both-keys", "/predict", "application/json", json.dumps({"features": [ROW], "instances": []}), 400,
     "exactly one of"),
    ("too-few-features", "/predict", "application/json", json.dumps({"features": [ROW[:12]]}), 422,
     "features[0]: expected 13 features"),
    ("string-value", "/predict", "application/json", json.dumps({"features": [[ROW[0], "1.7", *ROW[2:]]]}), 422,
     "features[0][1] (malic_acid): expected a number, got a string"),
    ("bool-value", "/predict", "application/json", json.dumps({"features": [[*ROW[:12], True]]}), 422,
     "features[0][12] (proline): expected a number, got a boolean"),
    ("null-value", "/predict", "application/json", json.dumps({"features": [[None, *ROW[1:]]]}), 422,
     "features[0][0] (alcohol): expected a number, got null"),
    ("nan", "/predict", "application/json", '{"features": [[NaN' + ", 1" * 12 + "]]}", 422,
     "features[0][0] (alcohol): NaN is not allowed"),
    ("infinity", "/predict", "application/json", '{"features": [[1' + ", 1" * 11 + ", -Infinity]]}", 422,
     "(proline): -Infinity is not allowed"),
    ("float32-overflow", "/predict", "application/json", json.dumps({"features": [[1e39, *ROW[1:]]]}), 422,
     "(alcohol): 1e+39 is out of range"),
    ("empty-batch", "/predict", "application/json", '{"features": []}', 422, "empty batch"),
    ("not-a-row", "/predict", "application/json", '{"features": [5]}', 422, "features[0]: expected a list"),
    ("probabilities-not-bool", "/predict", "application/json", json.dumps({"features": [ROW], "probabilities": 1}),
     422, "probabilities: expected true or false"),
    ("missing-feature", "/predict", "application/json",
     json.dumps({"instances": [dict(zip(FEATURES[:12], ROW, strict=False))]}), 422,
     "missing feature(s): proline"),
    ("unknown-feature", "/predict", "application/json",
     json.dumps({"instances": [{**dict(zip(FEATURES, ROW, strict=True)), "colour": 1}]}), 422,
     "unknown feature(s): colour"),
    ("too-many-rows", "/predict", "application/json", json.dumps({"features": [ROW] * 101}), 413,
     "101 rows in one request; at most 100"),
    ("body-too-large", "/predict", "application/json", json.dumps({"features": [ROW] * 1000}), 413,
     "at most 65536"),
    ("text-plain", "/predict", "text/plain", json.dumps({"features": [ROW]}), 415, "unsupported Content-Type"),
    ("latin1", "/predict", "application/json; charset=latin-1", json.dumps({"features": [ROW]}), 415,
     "unsupported charset"),
    ("unknown-model", "/models/nope/predict", "application/json", json.dumps({"features": [ROW]}), 404,
     "model 'nope' is not served here"),
    ("mlflow-two-formats", "/invocations", "application/json", json.dumps({"instances": [ROW], "inputs": [ROW]}),
     400, "exactly one of"),
    ("mlflow-split-columns", "/invocations", "application/json",
     json.dumps({"dataframe_split": {"columns": [*FEATURES[:12], "x"], "data": [ROW]}}), 422,
     "dataframe_split.columns: missing feature(s): proline; unknown feature(s): x"),
    ("mlflow-records-string", "/invocations", "application/json",
     json.dumps({"dataframe_records": [{**dict(zip(FEATURES, ROW, strict=True)), "ash": "high"}]}), 422,
     "dataframe_records[0].ash: expected a number, got a string"),
    ("mlflow-params", "/invocations", "application/json", json.dumps({"inputs": [ROW], "params": {"k": 1}}), 422,
     "params"),
    ("mlflow-xml", "/invocations", "application/xml", "<x/>", 415, "unsupported Content-Type"),
    ("mlflow-no-content-type", "/invocations", None, json.dumps({"inputs": [ROW]}), 415, "missing Content-Type"),
    ("csv-text-value", "/invocations", "text/csv", ",".join(FEATURES) + "\n" + ",".join(["x"] * 13), 422,
     "csv column alcohol: expected numbers"),
    ("csv-missing-column", "/invocations", "text/csv",
     ",".join(FEATURES[1:]) + "\n" + ",".join(str(v) for v in ROW[1:]), 422, "missing feature(s): alcohol"),
    ("csv-empty-cell", "/invocations", "text/csv", ",".join(FEATURES) + "\n" + ",".join(str(v) for v in ROW[:12]) + ",",
     422, "csv row 1 column proline: NaN is not allowed"),
    ("v2-count", V2, "application/json", _v2(ROW * 2 + [1.0], [2, 13]), 422, "the shape needs 26 values, got 27"),
    ("v2-columns", V2, "application/json", _v2(ROW[:12], [1, 12]), 422, "has 12 columns"),
    ("v2-datatype", V2, "application/json", _v2(ROW, [1, 13], "BOOL"), 422, "'BOOL' is not supported"),
    ("v2-bytes-text", V2, "application/json", _v2(["abc"] * 13, [1, 13], "BYTES"), 422,
     "BYTES value 'abc' is not a number"),
    ("v2-int64-fraction", V2, "application/json", _v2(ROW, [1, 13], "INT64"), 422, "is not an integer (INT64)"),
    ("v2-output", V2, "application/json", _v2(ROW, [1, 13], outputs=[{"name": "scores"}]), 422,
     "outputs[0].name: 'scores' is not an output"),
    ("v2-no-inputs", V2, "application/json", "{}", 400, "inputs: expected a non-empty list"),
    ("v2-missing-feature-tensor", V2, "application/json",
     json.dumps({"inputs": [{"name": n, "shape": [1], "datatype": "FP64", "data": [v]}
                            for n, v in zip(FEATURES[:-1], ROW, strict=False)]}), 422, "missing feature(s): proline"),
    ("v2-version", f"/v2/models/{WINE}/versions/9/infer", "application/json", _v2(ROW, [1, 13]), 404,
     "version 9 is not served here"),
]


@pytest.mark.parametrize(("path", "content_type", "body", "status", "text"),
                         [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUTS])
def test_bad_input(server: Server, path: str, content_type: str | None, body: str | bytes, status: int,
                   text: str) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = server.post(path, data=body if isinstance(body, bytes) else body.encode(), headers=headers)
    assert response.status_code == status, response.text
    payload = response.json()
    if path == "/invocations":
        message = payload["message"]
    elif path.startswith("/v2"):
        message = payload["error"]
    else:
        message = payload["error"]["message"]
        assert payload["error"]["field"]
    assert text in message
    assert payload["request_id"] == response.headers["x-request-id"]


# -- authentication ----------------------------------------------------------------------------------

def test_auth(server: Server, keys: Keys) -> None:
    body = {"features": [ROW]}
    for path in ("/predict", f"/models/{CANCER}/predict", "/invocations", V2):
        missing = server.post(path, json=body, key=False)
        assert missing.status_code == 401, (path, missing.text)
        assert missing.headers["www-authenticate"].startswith("Bearer")
    assert server.get(f"/v2/models/{WINE}", key=False).status_code == 401
    assert "missing API key" in server.post("/predict", json=body, key=False).json()["error"]["message"]

    assert server.post("/predict", json=body, key=keys.full).status_code == 200
    bearer = server.post("/predict", json=body, key=False, headers={"Authorization": f"Bearer {keys.full}"})
    assert bearer.status_code == 200
    wrong_secret = keys.full[:-4] + ("aaaa" if not keys.full.endswith("aaaa") else "bbbb")
    for bad in (wrong_secret, "mlk_00000000_" + "a" * 43, "not-a-key"):
        response = server.post("/predict", json=body, key=bad)
        assert response.status_code == 401 and response.json()["error"]["message"] == "invalid API key"
    assert server.post("/predict", json=body, key=False,
                       headers={"Authorization": f"Basic {keys.full}"}).status_code == 401

    limited = server.post(f"/models/{CANCER}/predict", json={"features": cancer_rows(1)}, key=keys.cancer_only)
    assert limited.status_code == 200
    forbidden = server.post(f"/models/{WINE}/predict", json=body, key=keys.cancer_only)
    assert forbidden.status_code == 403 and "may not use model 'wine-classifier'" in forbidden.text
    assert server.post("/predict", json=body, key=keys.cancer_only).status_code == 403  # default model is wine
    assert server.get(f"/v2/models/{WINE}", key=keys.cancer_only).status_code == 403

    for path in ("/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready", "/openapi.json"):
        assert server.get(path, key=False).status_code == 200, path


def test_keys_file_is_reread_when_it_changes(server: Server, tmp_path: Any) -> None:
    keys_file = server.env["MLOPS_SERVING_API_KEYS_FILE"]
    from pathlib import Path

    path = Path(keys_file)
    before = path.read_text()
    new_key = make_key(tmp_path, path)  # `mlops keys create --append` on the live file
    try:
        wait_until(lambda: server.post("/predict", json={"features": [ROW]}, key=new_key).status_code == 200,
                   20, "the new key to be accepted")
        path.write_text(before)
        wait_until(lambda: server.post("/predict", json={"features": [ROW]}, key=new_key).status_code == 401,
                   20, "the removed key to be refused")
    finally:
        path.write_text(before)
    assert any("API keys file" in entry["message"] and "changed" in entry["message"] for entry in server.logs())


# -- batching: each caller gets exactly its own rows --------------------------------------------------

def test_concurrent_distinct_requests_get_their_own_rows(server: Server, wine_model: Any) -> None:
    x, _ = wine_dataset()
    rng = np.random.default_rng(7)
    requests_rows = []
    for _ in range(240):
        rows = x[rng.choice(len(x), size=int(rng.integers(1, 6)), replace=False)]
        rows = rows * rng.uniform(0.9, 1.1, size=rows.shape)  # distinct rows, distinct probabilities
        requests_rows.append(rows.round(6).tolist())
    before = _batches(server)
    barrier = threading.Barrier(32)
    local = threading.local()

    def call(index: int) -> tuple[int, dict[str, Any]]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        if index < 32:
            barrier.wait()  # the first 32 requests start together
        response = local.session.post(
            server.url + "/predict", json={"features": requests_rows[index], "probabilities": True},
            headers={"X-Request-ID": f"concurrent-{index}", "x-api-key": server.key or ""}, timeout=30,
        )
        assert response.status_code == 200, response.text
        return index, response.json()

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(call, range(len(requests_rows))))
    for index, body in results:
        rows = np.asarray(requests_rows[index])
        assert body["request_id"] == f"concurrent-{index}"
        assert body["predictions"] == wine_model.predict(rows).tolist()
        assert np.allclose(body["probabilities"], wine_model.predict_proba(rows))
    batches, batch_rows = (a - b for a, b in zip(_batches(server), before, strict=True))
    assert batch_rows == sum(len(r) for r in requests_rows)
    assert batches < len(requests_rows), "concurrent requests should have shared predict calls"


def _batches(server: Server) -> tuple[float, float]:
    samples = _samples(server)
    labels = (("model", WINE), ("version", "1"))
    return (samples.get((mn.SERVING_BATCH_ROWS.name + "_count", labels), 0.0),
            samples.get((mn.SERVING_BATCH_ROWS.name + "_sum", labels), 0.0))


# -- metrics ----------------------------------------------------------------------------------------------

def _samples(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = server.get("/metrics", key=False).text
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_after_traffic(server: Server) -> None:
    def requests_of(samples: dict[Any, float], endpoint: str, code: str) -> float:
        labels = tuple(sorted({"model": CANCER, "version": "1", "endpoint": endpoint, "code": code}.items()))
        return samples.get((mn.SERVING_REQUESTS.name, labels), 0.0)

    def predicted(samples: dict[Any, float]) -> float:
        return sum(v for (name, labels), v in samples.items()
                   if name == mn.SERVING_PREDICTIONS.name and ("model", CANCER) in labels)

    before = _samples(server)
    rows = cancer_rows(3)
    for _ in range(4):
        assert server.post(f"/models/{CANCER}/predict", json={"features": rows}).status_code == 200
    assert server.post(f"/models/{CANCER}/predict", json={"features": [[1.0]]}).status_code == 422
    v2 = {"inputs": [{"name": "x", "shape": [3, 30], "datatype": "FP64", "data": rows}]}
    assert server.post(f"/v2/models/{CANCER}/infer", json=v2).status_code == 200
    after = _samples(server)

    assert requests_of(after, "predict", "200") - requests_of(before, "predict", "200") == 4
    assert requests_of(after, "predict", "422") - requests_of(before, "predict", "422") == 1
    assert requests_of(after, "v2_infer", "200") - requests_of(before, "v2_infer", "200") == 1
    assert predicted(after) - predicted(before) == 15
    text = server.get("/metrics", key=False).text
    for spec in mn.SERVING_METRICS:
        assert f"# TYPE {spec.name} {spec.kind}" in text, spec.name
    duration = mn.SERVING_REQUEST_DURATION.name
    assert f'{duration}_bucket{{endpoint="predict",le="0.001",model="{CANCER}",version="1"}}' in text
    assert f'{duration}_bucket{{endpoint="predict",le="10.0",model="{CANCER}",version="1"}}' in text
    info = [labels for (name, labels), v in after.items() if name == mn.SERVING_MODEL_INFO.name and v == 1]
    assert {dict(labels)["model"] for labels in info} == {WINE, CANCER}
    assert all(len(dict(labels)["run_id"]) == 32 for labels in info)
    assert after[(mn.SERVING_MODEL_READY.name, (("model", WINE),))] == 1
    assert after[(mn.SERVING_MODEL_LOAD_FAILURES.name, (("model", WINE),))] == 0
    assert after[(mn.SERVING_IN_FLIGHT.name, ())] == 0


# -- prediction log --------------------------------------------------------------------------------------

def test_prediction_log_local(server: Server, trained_store: Any) -> None:
    import pyarrow.parquet as pq

    from mlops_platform.prediction_log import feature_column, read_records, record_files, record_schema
    from mlops_platform.settings import PlatformSettings

    marker = uuid.uuid4().hex[:8]
    sent = {}
    for index, row in enumerate(WINE_ROWS):
        rid = f"log-{marker}-{index}"
        response = server.post("/predict", json={"features": [row, row]}, headers={"X-Request-ID": rid})
        sent[rid] = (row, response.json()["predictions"])
    settings = PlatformSettings(home=trained_store.home)
    since = datetime.now(UTC) - timedelta(hours=1)
    until = datetime.now(UTC) + timedelta(hours=1)

    def logged() -> Any:
        frame = read_records(settings.effective_store_uri, settings, WINE, "1", since, until)
        mine = frame[frame["request_id"].isin(list(sent))]
        return mine if len(mine) == 2 * len(sent) else None

    frame = wait_until(logged, 30, "the prediction log to hold the requests")
    for rid, (row, predictions) in sent.items():
        rows = frame[frame["request_id"] == rid].sort_values("row")
        assert rows["row"].tolist() == [0, 1]
        assert rows["prediction"].tolist() == [str(p) for p in predictions]
        assert rows[feature_column("alcohol")].tolist() == [row[0], row[0]]
        assert rows[[feature_column(n) for n in wine_features()]].to_numpy().tolist() == [row, row]
        assert all(abs(sum(p) - 1) < 1e-9 and len(p) == 3 for p in rows["probabilities"])
        assert set(rows["model"]) == {WINE} and set(rows["version"]) == {"1"}
    assert str(frame["timestamp"].dtype) == "datetime64[us, UTC]"
    files = record_files(settings.effective_store_uri, settings, WINE, "1", since, until)
    assert files and all("/predictions/model=wine-classifier/version=1/date=" in f for f in files)
    schema = pq.read_schema(files[-1])
    shared = record_schema(wine_features(), ["0", "1", "2"])
    assert schema.equals(shared)
    assert {k: v for k, v in schema.metadata.items() if k.startswith(b"mlops.")} == shared.metadata
