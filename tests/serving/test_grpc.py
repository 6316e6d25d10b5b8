"""The Open Inference Protocol over gRPC, against a real `python -m mlops_serving` process, with
the real Triton client (`tritonclient.grpc`) and, for requests that client will not build, raw
messages of the same package (its own generated `service_pb2`) over a plain grpc channel.

The server's generated code is never imported here: both it and tritonclient register the
`inference.*` messages in protobuf's default pool, which allows only one definition per process.
"""

from __future__ import annotations

import filecmp
import functools
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.procs import free_port
from support.project import REPO
from support.serving import (
    CANCER,
    SERVER_SETTINGS,
    WINE,
    WINE_ROWS,
    Keys,
    Server,
    cancer_rows,
    start_server,
    wait_until,
)

from mlops_platform import metric_names as mn

grpc = pytest.importorskip("grpc")
tritongrpc = pytest.importorskip("tritonclient.grpc")
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def grpc_server(trained_store: Any, keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("grpc-server")
    port = free_port()
    env = trained_store.env(**SERVER_SETTINGS, MLOPS_SERVING_API_KEYS_FILE=str(keys.file),
                            MLOPS_SERVING_GRPC_PORT=str(port), MLOPS_SERVING_MODEL_CACHE_DIR=str(workdir / "cache"))
    started = start_server(workdir, env, key=keys.full)
    started.env["grpc"] = f"127.0.0.1:{port}"
    yield started
    started.stop()
    assert started.stopped_cleanly(), started.log.read_text()


@pytest.fixture(scope="module")
def client(grpc_server: Server) -> Iterator[Any]:
    with tritongrpc.InferenceServerClient(grpc_server.env["grpc"]) as triton:
        yield triton


def auth(keys: Keys, key: str | None = None) -> dict[str, str]:
    return {"x-api-key": key or keys.full}


def wine_input(rows: list[list[float]], dtype: str = "FP64") -> Any:
    x = np.asarray(rows, dtype=np.float64 if dtype == "FP64" else np.float32)
    tensor = tritongrpc.InferInput("input-0", list(x.shape), dtype)
    tensor.set_data_from_numpy(x)
    return tensor


def status_of(call: Any) -> Any:
    with pytest.raises(InferenceServerException) as caught:
        call()
    return caught.value


def test_health_and_metadata_through_the_triton_client(client: Any, grpc_server: Server, keys: Keys) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(WINE) and client.is_model_ready(CANCER)
    assert client.is_model_ready(WINE, "1")
    assert status_of(lambda: client.is_model_ready(WINE, "7")).status() == "StatusCode.NOT_FOUND"
    assert status_of(lambda: client.is_model_ready("no-such-model")).status() == "StatusCode.NOT_FOUND"
    assert client.get_server_metadata(as_json=True)["name"] == "mlops-serving"

    meta = client.get_model_metadata(WINE, headers=auth(keys), as_json=True)
    rest = grpc_server.get(f"/v2/models/{WINE}").json()
    assert meta["name"] == rest["name"] == WINE and meta["versions"] == rest["versions"] == ["1"]
    assert [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in meta["inputs"]] == [
        (t["name"], t["datatype"], t["shape"]) for t in rest["inputs"]]
    assert [(t["name"], t["datatype"]) for t in meta["outputs"]] == [("predict", "INT64"), ("predict_proba", "FP64")]


def test_infer_with_the_triton_client_matches_the_model(client: Any, keys: Keys, wine_model: Any) -> None:
    x = np.asarray(WINE_ROWS, dtype=np.float64)
    result = client.infer(WINE, [wine_input(WINE_ROWS)], headers=auth(keys), request_id="grpc-req-1")
    assert result.as_numpy("predict").tolist() == wine_model.predict(x).tolist() == [0, 1, 2]
    assert np.allclose(result.as_numpy("predict_proba"), wine_model.predict_proba(x))
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == (WINE, "1", "grpc-req-1")

    # one [N] FP32 tensor per feature, only the labels asked for, Bearer auth, a version named
    meta = client.get_model_metadata(WINE, headers=auth(keys))
    columns = []
    for j, tensor in enumerate(meta.inputs):
        column = tritongrpc.InferInput(tensor.name, [len(WINE_ROWS)], "FP32")
        column.set_data_from_numpy(x[:, j].astype(np.float32))
        columns.append(column)
    only = [tritongrpc.InferRequestedOutput("predict")]
    result = client.infer(WINE, columns, model_version="1", outputs=only,
                          headers={"authorization": f"Bearer {keys.full}"})
    assert result.as_numpy("predict").tolist() == [0, 1, 2]
    assert result.as_numpy("predict_proba") is None


def test_api_keys_are_required_and_scoped(client: Any, keys: Keys) -> None:
    no_key = status_of(lambda: client.infer(WINE, [wine_input(WINE_ROWS[:1])]))
    assert no_key.status() == "StatusCode.UNAUTHENTICATED" and "missing API key" in no_key.message()
    wrong = status_of(lambda: client.infer(WINE, [wine_input(WINE_ROWS[:1])], headers={"x-api-key": "mlops_nope"}))
    assert wrong.status() == "StatusCode.UNAUTHENTICATED"
    scoped = status_of(lambda: client.infer(WINE, [wine_input(WINE_ROWS[:1])], headers=auth(keys, keys.cancer_only)))
    assert scoped.status() == "StatusCode.PERMISSION_DENIED"
    assert status_of(lambda: client.get_model_metadata(WINE)).status() == "StatusCode.UNAUTHENTICATED"


def _raw_request(**fields: Any) -> Any:
    request = service_pb2.ModelInferRequest(model_name=fields.pop("model_name", WINE))
    for tensor in fields.pop("inputs", []):
        request.inputs.add(**tensor)
    request.raw_input_contents.extend(fields.pop("raw", []))
    for name in fields.pop("outputs", []):
        request.outputs.add(name=name)
    for key, value in fields.items():
        setattr(request, key, value)
    return request


ROW = np.asarray(WINE_ROWS[:1], dtype=np.float64)
BAD_REQUESTS = {
    "12 columns": (_raw_request(inputs=[{"name": "x", "datatype": "FP64", "shape": [1, 12]}],
                                raw=[ROW[:, :12].tobytes()]), "INVALID_ARGUMENT", "has 12 columns"),
    "NaN": (_raw_request(inputs=[{"name": "x", "datatype": "FP64", "shape": [1, 13]}],
                         raw=[np.where(np.arange(13) == 4, np.nan, ROW).tobytes()]), "INVALID_ARGUMENT", "NaN"),
    "bytes short of the shape": (_raw_request(inputs=[{"name": "x", "datatype": "FP64", "shape": [2, 13]}],
                                              raw=[ROW.tobytes()]), "INVALID_ARGUMENT", "bytes"),
    "3 dimensions": (_raw_request(inputs=[{"name": "x", "datatype": "FP64", "shape": [1, 13, 1]}],
                                  raw=[ROW.tobytes()]), "INVALID_ARGUMENT", "shape"),
    "unknown datatype": (_raw_request(inputs=[{"name": "x", "datatype": "COMPLEX", "shape": [1, 13]}],
                                      raw=[ROW.tobytes()]), "INVALID_ARGUMENT", "not supported"),
    "raw for some inputs only": (_raw_request(inputs=[{"name": "x", "datatype": "FP64", "shape": [1, 13]},
                                                      {"name": "y", "datatype": "FP64", "shape": [1, 13]}],
                                              raw=[ROW.tobytes()]), "INVALID_ARGUMENT", "raw_input_contents"),
    "FP16 in contents": (_raw_request(inputs=[{"name": "x", "datatype": "FP16", "shape": [1, 13]}]),
                         "INVALID_ARGUMENT", "raw_input_contents"),
    "contents of another type": (
        _raw_request(inputs=[{"name": "x", "datatype": "FP64", "shape": [1, 13],
                              "contents": service_pb2.InferTensorContents(int64_contents=[1] * 13)}]),
        "INVALID_ARGUMENT", "needs 13 values, got 0"),
    "no inputs": (_raw_request(), "INVALID_ARGUMENT", "inputs"),
    "unknown output": (_raw_request(inputs=[{"name": "x", "datatype": "FP64", "shape": [1, 13]}],
                                    raw=[ROW.tobytes()], outputs=["logits"]), "INVALID_ARGUMENT", "logits"),
    "over MAX_ROWS": (_raw_request(inputs=[{"name": "x", "datatype": "FP64", "shape": [101, 13]}],
                                  raw=[np.repeat(ROW, 101, axis=0).tobytes()]), "RESOURCE_EXHAUSTED", "101 rows"),
    "over MAX_BODY_BYTES": (_raw_request(inputs=[{"name": "x", "datatype": "FP64", "shape": [1, 13]}],
                                         raw=[b"\0" * 70_000]), "RESOURCE_EXHAUSTED", ""),
    "unknown model": (_raw_request(model_name="no-such-model", inputs=[{"name": "x", "datatype": "FP64",
                                                                        "shape": [1, 13]}], raw=[ROW.tobytes()]),
                      "NOT_FOUND", "not served here"),
    "unknown version": (_raw_request(model_version="9", inputs=[{"name": "x", "datatype": "FP64", "shape": [1, 13]}],
                                     raw=[ROW.tobytes()]), "NOT_FOUND", "version 9"),
}


@pytest.fixture(scope="module")
def stub(grpc_server: Server) -> Iterator[Any]:
    with grpc.insecure_channel(grpc_server.env["grpc"]) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_gets_a_client_status_never_internal(case: str, stub: Any, keys: Keys) -> None:
    request, code, words = BAD_REQUESTS[case]
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request, metadata=(("x-api-key", keys.full),), timeout=30)
    error = caught.value
    assert error.code() == getattr(grpc.StatusCode, code), (error.code(), error.details())
    assert words in (error.details() or "")


def test_a_good_raw_request_still_works_after_the_bad_ones(stub: Any, keys: Keys) -> None:
    request = _raw_request(inputs=[{"name": "x", "datatype": "FP64", "shape": [3, 13]}],
                           raw=[np.asarray(WINE_ROWS, dtype=np.float64).tobytes()])
    response, call = stub.ModelInfer.with_call(request, metadata=(("x-api-key", keys.full),
                                                                  ("x-request-id", "raw-1")), timeout=30)
    assert [o.name for o in response.outputs] == ["predict", "predict_proba"]
    assert np.frombuffer(response.raw_output_contents[0], dtype="<i8").tolist() == [0, 1, 2]
    assert ("x-request-id", "raw-1") in tuple(call.trailing_metadata())


def _series(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = server.get("/metrics", key=False).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _burst(client: Any, model: str, inputs: list[list[list[float]]], headers: Any) -> list[list[int]]:
    """Send every call at once on the client's one HTTP/2 connection (async_infer); the answers in order."""
    answered: dict[int, list[int]] = {}
    failures: list[Any] = []
    all_done = threading.Event()

    def callback(i: int, result: Any, error: Any) -> None:
        if error is not None:
            failures.append(error)
        else:
            answered[i] = [int(v) for v in result.as_numpy("predict").tolist()]
        if len(answered) + len(failures) == len(inputs):
            all_done.set()

    for i, rows in enumerate(inputs):
        client.async_infer(model, [wine_input(rows)], functools.partial(callback, i), headers=headers(i))
    assert all_done.wait(60) and not failures, failures
    return [answered[i] for i in range(len(inputs))]


def test_grpc_shares_batching_metrics_and_prediction_log_with_http(client: Any, grpc_server: Server, keys: Keys,
                                                                   trained_store: Any) -> None:
    from mlops_platform.prediction_log import read_records
    from mlops_platform.settings import PlatformSettings

    before = _series(grpc_server)
    marker = uuid.uuid4().hex[:8]

    answers = _burst(client, WINE, [[WINE_ROWS[i % 3]] for i in range(64)],
                     lambda i: {**auth(keys), "x-request-id": f"g-{marker}-{i}"})
    http = grpc_server.post("/invocations", json={"inputs": WINE_ROWS[:1]}, headers={"X-Request-ID": f"h-{marker}"})
    assert http.status_code == 200, http.text
    assert answers == [[i % 3] for i in range(64)]
    status_of(lambda: client.infer(WINE, [wine_input([WINE_ROWS[0][:12]])], headers=auth(keys)))

    after = _series(grpc_server)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    requests_total = mn.SERVING_REQUESTS.name
    assert delta(requests_total, model=WINE, version="1", endpoint=mn.SERVING_ENDPOINT_V2_GRPC, code="200") == 64
    assert delta(requests_total, model=WINE, version="1", endpoint=mn.SERVING_ENDPOINT_V2_GRPC, code="422") == 1
    assert delta(requests_total, model=WINE, version="1", endpoint="invocations", code="200") == 1
    batches = mn.SERVING_BATCH_ROWS.name
    rows = delta(batches + "_sum", model=WINE, version="1")
    count = delta(batches + "_count", model=WINE, version="1")
    # every row went through the model's one predictor (a lone request of a fast-path forest is predicted
    # on the event loop, batching.py, so whether these share predict calls depends on their timing)
    assert rows == 65 and 0 < count <= rows, (rows, count)
    # a model without the inline path: concurrent gRPC calls share predict calls
    cancer_before = _series(grpc_server)
    _burst(client, CANCER, [cancer_rows(1)] * 32, lambda i: auth(keys))
    cancer_after = _series(grpc_server)
    shared = [cancer_after.get((batches + suffix, (("model", CANCER), ("version", "1"))), 0.0)
              - cancer_before.get((batches + suffix, (("model", CANCER), ("version", "1"))), 0.0)
              for suffix in ("_sum", "_count")]
    assert shared[0] == 32 and shared[1] < 32, shared

    settings = PlatformSettings(home=trained_store.home)
    since, until = datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(hours=1)
    wanted = {f"g-{marker}-{i}" for i in range(64)} | {f"h-{marker}"}

    def logged() -> Any:
        frame = read_records(settings.effective_store_uri, settings, WINE, "1", since, until)
        mine = frame[frame["request_id"].isin(list(wanted))]
        return mine if len(mine) == len(wanted) else None

    frame = wait_until(logged, 30, "the prediction log to hold the gRPC and HTTP requests")
    by_id = dict(zip(frame["request_id"], frame["prediction"], strict=True))
    assert all(by_id[f"g-{marker}-{i}"] == str(i % 3) for i in range(64))


def test_generated_code_is_current(tmp_path: Path) -> None:
    """The committed protoc output equals what hack/gen-grpc.sh generates from the .proto now."""
    pytest.importorskip("grpc_tools")
    result = subprocess.run(["bash", str(REPO / "hack" / "gen-grpc.sh"), str(tmp_path)], cwd=REPO,
                            env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    committed = REPO / "serving" / "mlops_serving" / "oip_grpc"
    generated = tmp_path / "mlops_serving" / "oip_grpc"
    names = ["grpc_predict_v2_pb2.py", "grpc_predict_v2_pb2.pyi", "grpc_predict_v2_pb2_grpc.py"]
    _, mismatch, errors = filecmp.cmpfiles(committed, generated, names, shallow=False)
    assert not mismatch and not errors, f"run hack/gen-grpc.sh: {mismatch + errors} differ"


def test_grpc_is_off_unless_a_port_is_set() -> None:
    from mlops_serving.settings import ServingSettings

    assert ServingSettings(models=[f"{WINE}:1"], auth="off").grpc_port is None
    with pytest.raises(ValueError, match="must differ"):
        ServingSettings(models=[f"{WINE}:1"], auth="off", port=9000, grpc_port=9000)
