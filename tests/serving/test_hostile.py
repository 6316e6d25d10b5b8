"""Hostile request bodies against a real `python -m mlops_serving` process (one uvicorn worker, the
deployment's shape): every answer is a 4xx naming the problem, never a 5xx, and the server logs
no traceback. The limits are the deployment's order of magnitude (a 4 MiB body, 10,000 rows), so
the big cases are inside them and must be refused by validation, not by the byte limit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from support.serving import CANCER, WINE, WINE_ROWS, Keys, Server, start_server, wine_features

ROW = WINE_ROWS[0]
FEATURES = wine_features()
V2 = f"/v2/models/{WINE}/infer"
J = "application/json"
BIG = "9" * 400  # beyond float64: int-to-float overflow
HUGE = "9" * 5000  # beyond Python's int-to-string limit (4,300 digits)
BODY_LIMIT = 4 * 1024 * 1024
VOLUME = "more values or rows than 10000 rows of 13 features need"

HOSTILE_SETTINGS = {
    "MLOPS_SERVING_MODELS": f"{WINE}:1,{CANCER}@candidate",
    "MLOPS_SERVING_AUTH": "api-key",
    "MLOPS_SERVING_MAX_BODY_BYTES": str(BODY_LIMIT),
    "MLOPS_SERVING_PREDLOG_SAMPLE_RATE": "0",
}


@pytest.fixture(scope="module")
def hostile_server(trained_store: Any, keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("hostile")
    env = trained_store.env(**HOSTILE_SETTINGS, MLOPS_SERVING_API_KEYS_FILE=str(keys.file))
    started = start_server(workdir, env, key=keys.full)
    yield started
    started.stop()


def _row(value: str, at: int = 0) -> str:
    """A wine row as JSON text with ``value`` (raw JSON text) at position ``at``."""
    cells = [json.dumps(v) for v in ROW]
    cells[at] = value
    return "[" + ",".join(cells) + "]"


def _record(value: str, at: int = 0) -> str:
    cells = [f"{json.dumps(n)}:{json.dumps(v)}" for n, v in zip(FEATURES, ROW, strict=True)]
    cells[at] = f"{json.dumps(FEATURES[at])}:{value}"
    return "{" + ",".join(cells) + "}"


def _columns(value: str) -> str:
    cells = [f"{json.dumps(n)}:[{json.dumps(v)}]" for n, v in zip(FEATURES, ROW, strict=True)]
    cells[0] = f"{json.dumps(FEATURES[0])}:[{value}]"
    return "{" + ",".join(cells) + "}"


def _v2(data: str, shape: Any = (1, 13), datatype: Any = "FP64", name: str = "input-0") -> str:
    return (f'{{"inputs":[{{"name":{json.dumps(name)},"shape":{json.dumps(list(shape))},'
            f'"datatype":{json.dumps(datatype)},"data":{data}}}]}}')


def _v2_row(value: str, datatype: str = "FP64") -> str:
    if datatype.startswith("INT"):  # integral cells around the hostile one
        cells = [str(round(v)) for v in ROW]
        cells[0] = value
        return _v2("[" + ",".join(cells) + "]", datatype=datatype)
    return _v2(_row(value), datatype=datatype)


def _number_shapes(value: str, label: str, status: int, text: str) -> list[tuple[Any, ...]]:
    """``value`` (raw JSON) in every place a number goes, in every protocol."""
    return [
        (f"{label}-features", "/predict", J, f'{{"features":[{_row(value)}]}}', status, text),
        (f"{label}-instances", "/predict", J, f'{{"instances":[{_record(value)}]}}', status, text),
        (f"{label}-mlflow-records", "/invocations", J, f'{{"dataframe_records":[{_record(value)}]}}', status, text),
        (f"{label}-mlflow-split", "/invocations", J,
         f'{{"dataframe_split":{{"columns":{json.dumps(FEATURES)},"data":[{_row(value)}]}}}}', status, text),
        (f"{label}-mlflow-instances", "/invocations", J, f'{{"instances":[{_row(value)}]}}', status, text),
        (f"{label}-mlflow-inputs-rows", "/invocations", J, f'{{"inputs":[{_row(value)}]}}', status, text),
        (f"{label}-mlflow-inputs-columns", "/invocations", J, f'{{"inputs":{_columns(value)}}}', status, text),
        (f"{label}-v2-fp64", V2, J, _v2_row(value), status, text),
        (f"{label}-v2-int64", V2, J, _v2_row(value, "INT64"), status, text),
        (f"{label}-v2-fp32", V2, J, _v2_row(value, "FP32"), status, text),
    ]


def _wide_csv(columns: int) -> str:
    names = [f"c{k}" for k in range(columns)]
    return ",".join(names) + "\n" + ",".join("1" for _ in names) + "\n"


HOSTILE: list[tuple[Any, ...]] = [
    # (id, path, content type, body, status, text that must be in the message)
    *_number_shapes(BIG, "int-400-digits", 422, "out of range"),
    *_number_shapes(HUGE, "int-5000-digits", 400, "too many digits"),
    *_number_shapes("1e400", "float-1e400", 422, "Infinity is not allowed"),
    *_number_shapes("NaN", "nan", 422, "NaN is not allowed"),
    *_number_shapes("Infinity", "infinity", 422, "Infinity is not allowed"),
    *_number_shapes("-Infinity", "minus-infinity", 422, "-Infinity is not allowed"),
    ("v2-bytes-400-digits", V2, J, _v2(json.dumps([BIG] * 13), datatype="BYTES"), 422, "Infinity is not allowed"),
    ("v2-bytes-5000-digits", V2, J, _v2(json.dumps([HUGE] * 13), datatype="BYTES"), 422, "Infinity is not allowed"),
    ("v2-int64-shape-digits", V2, J, _v2(_row("1"), shape=[int(BIG), 13]), 422, "shape"),
    # v2 datatype and shape
    ("v2-datatype-object", V2, J, _v2(_row("1"), datatype={"a": 1}), 422, "datatype"),
    ("v2-datatype-list", V2, J, _v2(_row("1"), datatype=["FP64"]), 422, "datatype"),
    ("v2-datatype-null", V2, J, _v2(_row("1"), datatype=None), 422, "datatype"),
    ("v2-shape-1e20-empty", V2, J, _v2("[]", shape=[0, 10**20]), 422, "shape"),
    ("v2-shape-2e62-empty", V2, J, _v2("[]", shape=[0, 2**62, 2**62]), 422, "shape"),
    ("v2-shape-2e31-empty", V2, J, _v2("[]", shape=[0, 2**31]), 422, "shape"),
    ("v2-shape-huge-product", V2, J, _v2(_row("1"), shape=[2**62, 2**62]), 422, "shape"),
    ("v2-shape-negative", V2, J, _v2(_row("1"), shape=[-1, 13]), 422, "shape"),
    ("v2-shape-float", V2, J, _v2(_row("1"), shape=[1.0, 13]), 422, "shape"),
    ("v2-shape-string", V2, J, _v2(_row("1"), shape="1,13"), 422, "shape"),
    ("v2-shape-empty", V2, J, _v2("[1]", shape=[]), 422, "shape"),
    ("v2-shape-64-dims", V2, J, _v2("[1]", shape=[1] * 64), 422, "shape"),
    ("v2-shape-zero-rows", V2, J, _v2("[]", shape=[0, 13]), 422, "empty batch"),
    ("v2-binary-size-huge", V2, J,
     '{"inputs":[{"name":"x","shape":[1,13],"datatype":"FP64","parameters":{"binary_data_size":' + BIG + "}}]}",
     400, "binary_data_size"),
    # wrong JSON types at every level
    ("top-string", "/predict", J, '"features"', 400, "must be a JSON object"),
    ("top-number", "/predict", J, "1", 400, "must be a JSON object"),
    ("top-null", "/predict", J, "null", 400, "must be a JSON object"),
    ("features-object", "/predict", J, '{"features":{"a":1}}', 422, "expected a list of rows"),
    ("features-string", "/predict", J, '{"features":"1,2"}', 422, "expected a list of rows"),
    ("features-row-object", "/predict", J, '{"features":[{"a":1}]}', 422, "features[0]: expected a list"),
    ("features-cell-list", "/predict", J, f'{{"features":[{_row("[1]")}]}}', 422, "expected a number, got a list"),
    ("features-cell-object", "/predict", J, f'{{"features":[{_row("{}")}]}}', 422, "expected a number, got an object"),
    ("features-3d", "/predict", J, f'{{"features":[[{_row("1")}]]}}', 422, "features[0]"),
    ("instances-string", "/predict", J, '{"instances":"x"}', 422, "expected a list of objects"),
    ("instances-of-lists", "/predict", J, f'{{"instances":[{_row("1")}]}}', 422, "expected an object"),
    ("instances-cell-list", "/predict", J, f'{{"instances":[{_record("[1]")}]}}', 422, "expected a number"),
    ("probabilities-string", "/predict", J, f'{{"features":[{_row("1")}],"probabilities":"yes"}}', 422,
     "probabilities"),
    ("mlflow-top-list", "/invocations", J, "[]", 400, "must be a JSON object"),
    ("mlflow-split-string", "/invocations", J, '{"dataframe_split":"x"}', 422, "dataframe_split"),
    ("mlflow-split-columns-object", "/invocations", J, '{"dataframe_split":{"columns":{},"data":[]}}', 422,
     "columns"),
    ("mlflow-split-columns-nested", "/invocations", J,
     '{"dataframe_split":{"columns":[[1],{"a":2}],"data":[[1,2]]}}', 422, "columns"),
    ("mlflow-split-data-object", "/invocations", J,
     f'{{"dataframe_split":{{"columns":{json.dumps(FEATURES)},"data":{{}}}}}}', 422, "data"),
    ("mlflow-records-object", "/invocations", J, '{"dataframe_records":{"a":1}}', 422, "dataframe_records"),
    ("mlflow-inputs-string", "/invocations", J, '{"inputs":"x"}', 422, "inputs"),
    ("mlflow-inputs-number", "/invocations", J, '{"inputs":5}', 422, "inputs"),
    ("mlflow-inputs-column-object", "/invocations", J, f'{{"inputs":{_columns("{}")}}}', 422, "expected a number"),
    ("mlflow-params-list", "/invocations", J, f'{{"inputs":[{_row("1")}],"params":[1]}}', 422, "params"),
    ("v2-inputs-object", V2, J, '{"inputs":{"a":1}}', 400, "inputs"),
    ("v2-input-string", V2, J, '{"inputs":["x"]}', 422, "tensor object"),
    ("v2-name-number", V2, J, '{"inputs":[{"name":1,"shape":[1,13],"datatype":"FP64","data":[]}]}', 422, "name"),
    ("v2-data-object", V2, J, _v2('{"a":1}'), 422, "data"),
    ("v2-data-string-cells", V2, J, _v2(json.dumps(["1"] * 13)), 422, "expected a number"),
    ("v2-data-null-cells", V2, J, _v2(json.dumps([None] * 13)), 422, "expected a number"),
    ("v2-id-object", V2, J, _v2(_row("1"))[:-1] + ',"id":{}}', 422, "id"),
    ("v2-parameters-list", V2, J, _v2(_row("1"))[:-1] + ',"parameters":[1]}', 422, "parameters"),
    ("v2-outputs-object", V2, J, _v2(_row("1"))[:-1] + ',"outputs":{}}', 422, "outputs"),
    ("v2-outputs-name-object", V2, J, _v2(_row("1"))[:-1] + ',"outputs":[{"name":{}}]}', 422, "outputs[0].name"),
    ("v2-header-length-huge", V2, J, _v2(_row("1")), 400, "Inference-Header-Content-Length"),
    # deep nesting
    ("nested-100000", "/predict", J, '{"features":' + "[" * 100_000 + "]" * 100_000 + "}", 413, VOLUME),
    ("nested-objects-100000", "/invocations", J, '{"inputs":' + '{"a":' * 100_000 + "1" + "}" * 100_000 + "}", 413,
     VOLUME),
    ("nested-5000", "/predict", J, '{"features":' + "[" * 5_000 + "]" * 5_000 + "}" + " " * 65536, 400,
     "nested too deeply"),
    ("nested-objects-5000", "/invocations", J, '{"inputs":' + '{"a":' * 5_000 + "1" + "}" * 5_000 + "}", 400,
     "nested too deeply"),
    ("nested-objects-2000", "/invocations", J, '{"inputs":' + '{"a":' * 2_000 + "1" + "}" * 2_000 + "}", 400,
     "nested too deeply"),
    ("nested-500-features", "/predict", J, '{"features":' + "[" * 500 + "1" + "]" * 500 + "}", 422, "features[0]"),
    ("nested-500-v2", V2, J, _v2("[" * 500 + "1" + "]" * 500, shape=[1, 1]), 422, "columns"),
    # 10^5 - 10^6 elements inside the body limit: refused by a linear count before any parsing when they
    # hold more values than 10,000 rows (MLOPS_SERVING_MAX_ROWS) can need, else parsed off the event loop
    ("features-1e6-cells-one-row", "/predict", J, '{"features":[[' + ",".join(["0"] * 1_000_000) + "]]}", 413,
     VOLUME),
    ("features-1e6-empty-rows", "/predict", J, '{"features":[' + ",".join(["[]"] * 1_000_000) + "]}", 413, VOLUME),
    ("strings-1e6", "/predict", J, '{"features":[[' + ",".join(['"a"'] * 1_000_000) + "]]}", 413, VOLUME),
    ("v2-1e6-values", V2, J, _v2("[" + ",".join(["0"] * 1_000_000) + "]", shape=[1_000_000]), 413, VOLUME),
    ("v2-5e4-tensors", V2, J, '{"inputs":[' + ",".join(
        f'{{"name":"t{k}","shape":[1],"datatype":"FP64","data":[1]}}' for k in range(50_000)) + "]}", 413, VOLUME),
    ("mlflow-inputs-1e5-columns", "/invocations", J,
     '{"inputs":{' + ",".join(f'"c{k}":[1]' for k in range(100_000)) + "}}", 413, VOLUME),
    ("features-20000-rows", "/predict", J, '{"features":[' + ",".join([_row("1")] * 20_000) + "]}", 413,
     "20000 rows in one request"),
    ("features-10000-rows-nan-last", "/predict", J,
     '{"features":[' + ",".join([_row("1")] * 9_999 + [_row("NaN")]) + "]}", 422, "features[9999][0]"),
    ("v2-130000-values-13-cols", V2, J, _v2("[" + ",".join(["0"] * 129_987 + ["1e39"] * 13) + "]", shape=[10_000, 13]),
     422, "row 9999 column 0 (alcohol): 1e+39 is out of range"),
    ("instances-1e5-keys", "/predict", J, '{"instances":[{' + ",".join(f'"c{k}":1' for k in range(100_000)) + "}]}",
     422, "unknown feature(s)"),
    ("split-1e5-columns", "/invocations", J,
     '{"dataframe_split":{"columns":[' + ",".join(f'"c{k}"' for k in range(100_000)) + '],"data":[[1]]}}', 422,
     "unknown feature(s)"),
    # wide CSVs
    ("csv-16000-columns", "/invocations", "text/csv", _wide_csv(16_000), 422, "csv header: 16000 columns"),
    ("csv-40-columns", "/invocations", "text/csv", _wide_csv(40), 422, "unknown feature(s): c0, c1"),
    ("csv-16000-columns-repeated", "/invocations", "text/csv", ",".join(["alcohol"] * 16_000) + "\n1\n", 422,
     "csv header: 16000 columns"),
    ("csv-repeated-column", "/invocations", "text/csv", ",".join(["alcohol"] * 13) + "\n1\n", 422,
     "repeated feature(s): alcohol"),
    ("csv-100000-columns", "/invocations", "text/csv", _wide_csv(100_000), 422, "csv header: 100000 columns"),
    ("csv-huge-number", "/invocations", "text/csv", ",".join(FEATURES) + "\n" + ",".join([HUGE] * 13) + "\n", 422,
     "csv row 1 column alcohol: Infinity is not allowed"),
    ("csv-nan-text", "/invocations", "text/csv", ",".join(FEATURES) + "\n" + ",".join(["nan"] * 13) + "\n", 422,
     "NaN is not allowed"),
    ("csv-header-only", "/invocations", "text/csv", ",".join(FEATURES) + "\n", 422, "empty batch"),
    ("csv-ragged", "/invocations", "text/csv", ",".join(FEATURES) + "\n" + ",".join(["1"] * 20) + "\n", 400,
     "malformed CSV"),
    ("csv-unclosed-quote", "/invocations", "text/csv", ",".join(FEATURES) + '\n"1,2\n', 400, "malformed CSV"),
    ("csv-nul", "/invocations", "text/csv", ",".join(FEATURES) + "\n" + ",".join(["\x00"] * 13) + "\n", 422,
     "expected numbers"),
    # invalid UTF-8
    ("utf8-invalid-json", "/predict", J, b'{"features":[[1,2,\xff]]}', 400, "not UTF-8"),
    ("utf8-invalid-key", "/invocations", J, b'{"\xc3\x28":1}', 400, "not UTF-8"),
    ("utf8-overlong", V2, J, b'{"inputs":[{"name":"\xc0\xaf"}]}', 400, "not UTF-8"),
    ("utf8-invalid-csv", "/invocations", "text/csv", b"alcohol\xff,x\n1,2\n", 400, "not UTF-8"),
    ("utf8-surrogate-escape", "/predict", J, '{"features":[[1]],"\\ud800":1}', 400, "unknown field"),
    ("utf16-bom", "/predict", J, '{"features":[[1]]}'.encode("utf-16"), 400, "UTF-8"),
    # wrong content types
    ("ct-missing", "/predict", None, f'{{"features":[{_row("1")}]}}', 415, "missing Content-Type"),
    ("ct-form", "/predict", "application/x-www-form-urlencoded", "features=1", 415, "unsupported Content-Type"),
    ("ct-multipart", "/invocations", "multipart/form-data; boundary=x", "--x--", 415, "unsupported Content-Type"),
    ("ct-garbage", "/predict", ";;;===", "{}", 415, "unsupported Content-Type"),
    ("ct-csv-on-predict", "/predict", "text/csv", "a\n1\n", 415, "unsupported Content-Type"),
    ("ct-octet-without-header", V2, "application/octet-stream", "\x00" * 8, 415, "unsupported Content-Type"),
    ("ct-charset-utf16", "/invocations", "text/csv; charset=utf-16", "a\n1\n", 415, "unsupported charset"),
    ("ct-very-long", "/predict", "application/json" + "; a=b" * 1000, f'{{"features":[{_row("1")}]}}', 200, ""),
    # truncated bodies (complete HTTP requests whose content is cut short)
    ("truncated-json", "/predict", J, f'{{"features":[{_row("1")}'[:-5], 400, "malformed JSON"),
    ("truncated-v2", V2, J, _v2_row("1")[:40], 400, "malformed JSON"),
    ("truncated-csv-quote", "/invocations", "text/csv", ",".join(FEATURES) + '\n"', 400, "malformed CSV"),
    ("empty-body", "/predict", J, "", 400, "empty request body"),
    ("empty-csv", "/invocations", "text/csv", "", 422, "CSV body is empty"),
    ("whitespace-json", V2, J, "   ", 400, "malformed JSON"),
]


def _message(path: str, payload: dict[str, Any]) -> str:
    if path == "/invocations":
        return str(payload["message"])
    if path.startswith("/v2"):
        return str(payload["error"])
    return str(payload["error"]["message"])


@pytest.mark.parametrize(("path", "content_type", "body", "status", "text"),
                         [pytest.param(*case[1:], id=case[0]) for case in HOSTILE])
def test_hostile_body_gets_a_4xx_naming_the_problem(hostile_server: Server, path: str, content_type: str | None,
                                                    body: str | bytes, status: int, text: str) -> None:
    data = body if isinstance(body, bytes) else body.encode()
    assert len(data) <= BODY_LIMIT, "a hostile case must be inside the body limit"
    headers = {"content-type": content_type} if content_type else {}
    if "header-length-huge" in path or text == "Inference-Header-Content-Length":
        headers["inference-header-content-length"] = BIG
    response = hostile_server.post(path, data=data, headers=headers)
    assert response.status_code == status, response.text[:2000]
    if status >= 400:
        message = _message(path, response.json())
        assert text in message, message
        assert len(message) < 1000 and "\n" not in message, message


def test_hostile_bodies_leave_no_traceback(hostile_server: Server) -> None:
    """Runs after the table (same module): no traceback, no unhandled error in the server's log."""
    hostile_server.post("/predict", data=b'{"features":[[' + HUGE.encode() + b"]]}", headers={"content-type": J})
    text = hostile_server.log.read_text(errors="replace")
    assert "Traceback" not in text, text[-5000:]
    assert "unhandled error" not in text, text[-5000:]
    assert hostile_server.get("/readyz", key=False).status_code == 200


LARGE_ROWS = 4000  # 0.3-0.4 MB in each protocol: parsed in the parsing process (bodies from 64 KiB)


def _large_request(protocol: str, rows: list[list[float]]) -> tuple[str, str, bytes]:
    if protocol == "native":
        return "/predict", J, json.dumps({"features": rows}).encode()
    if protocol == "mlflow-split":
        return "/invocations", J, json.dumps({"dataframe_split": {"columns": FEATURES, "data": rows}}).encode()
    if protocol == "mlflow-csv":
        lines = [",".join(FEATURES)] + [",".join(map(str, row)) for row in rows]
        return "/invocations", "text/csv", ("\n".join(lines) + "\n").encode()
    tensor = {"name": "input-0", "shape": [len(rows), len(FEATURES)], "datatype": "FP64", "data": rows}
    return V2, J, json.dumps({"inputs": [tensor]}).encode()


@pytest.mark.parametrize("protocol", ["native", "mlflow-split", "mlflow-csv", "v2"])
def test_large_legitimate_body_is_answered_correctly(hostile_server: Server, protocol: str) -> None:
    """A body big enough for the parsing process, in each protocol: the same predictions as small requests."""
    small = hostile_server.post("/predict", json={"features": WINE_ROWS})
    assert small.status_code == 200, small.text
    expected = [small.json()["predictions"][k % len(WINE_ROWS)] for k in range(LARGE_ROWS)]
    path, content_type, body = _large_request(protocol, [WINE_ROWS[k % len(WINE_ROWS)] for k in range(LARGE_ROWS)])
    assert 64 * 1024 <= len(body) <= BODY_LIMIT
    response = hostile_server.post(path, data=body, headers={"content-type": content_type})
    assert response.status_code == 200, response.text[:2000]
    payload = response.json()
    predictions = payload["outputs"][0]["data"] if protocol == "v2" else payload["predictions"]
    assert predictions == expected
