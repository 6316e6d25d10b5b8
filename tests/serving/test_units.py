"""Pure parts of the model server: settings, input parsing, batching, API keys, records, prediction log."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlops_platform.errors import ConfigError
from mlops_serving import auth
from mlops_serving.batching import MicroBatcher, Predictor
from mlops_serving.errors import (
    BadRequestError,
    ModelInputError,
    ParserUnavailableError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from mlops_serving.parsing import BodyParser
from mlops_serving.protocols import mlflow_scoring as mlflow_protocol
from mlops_serving.protocols import native, tabular, v2
from mlops_serving.runtime import LoadedModel, Prediction
from mlops_serving.settings import ModelRef, ServingSettings

NAMES = ["a", "b", "c"]


class Stub:
    """A three-feature classifier: class "hi" when a + b + c > 0, probabilities from a sigmoid."""

    classes_ = np.array(["lo", "hi"])
    n_features_in_ = 3

    def predict_proba(self, x: Any) -> Any:
        p = 1 / (1 + np.exp(-x.sum(axis=1)))
        return np.column_stack([1 - p, p])

    def predict(self, x: Any) -> Any:
        return self.classes_[(x.sum(axis=1) > 0).astype(int)]


def stub_model() -> LoadedModel:
    model = LoadedModel(name="stub", version="4", run_id="r" * 32, ref=ModelRef("stub", 4), estimator=Stub(),
                        feature_names=list(NAMES), baseline=None)
    model.check_proba_argmax()
    return model


# -- settings -------------------------------------------------------------------------------------------

def test_model_refs() -> None:
    assert ModelRef.parse("wine-classifier:3") == ModelRef("wine-classifier", 3, None)
    assert ModelRef.parse(" wine@staging ") == ModelRef("wine", None, "staging")
    assert str(ModelRef.parse("m@production")) == "m@production"
    for bad in ("wine", "wine:", "wine:x", "wine@", ":3", "a b:1"):
        with pytest.raises(ValueError, match="expected NAME:VERSION"):
            ModelRef.parse(bad)


def test_serving_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_platform.settings import load_settings

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.setenv("MLOPS_SERVING_MODELS", "wine:3, cancer@staging")
    settings = load_settings(ServingSettings)
    assert settings.models == (ModelRef("wine", 3), ModelRef("cancer", None, "staging"))
    assert settings.default_model == "wine"
    assert settings.effective_auth == "off"  # the embedded default may run without keys
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    with pytest.raises(ConfigError, match="MLOPS_SERVING_API_KEYS_FILE is not set"):
        load_settings(ServingSettings)  # a tracking server means a real deployment: keys required
    monkeypatch.setenv("MLOPS_SERVING_AUTH", "off")
    assert load_settings(ServingSettings).effective_auth == "off"
    monkeypatch.setenv("MLOPS_SERVING_MODELS", "wine:3,wine:4")
    with pytest.raises(ConfigError, match="repeated: wine"):
        load_settings(ServingSettings)
    monkeypatch.delenv("MLOPS_SERVING_MODELS")
    with pytest.raises(ConfigError, match="no model to serve"):
        load_settings(ServingSettings)
    monkeypatch.setenv("MLOPS_SERVING_MODELS", "wine")
    with pytest.raises(ConfigError, match="MLOPS_SERVING_MODELS"):
        load_settings(ServingSettings)


# -- protocols -------------------------------------------------------------------------------------------

def test_native_parse() -> None:
    model = stub_model()
    parsed = native.parse(b'{"features": [[1, 2, 3], [4, 5.5, 6]], "probabilities": true}', "application/json", model)
    assert parsed.probabilities and parsed.features.tolist() == [[1, 2, 3], [4, 5.5, 6]]
    assert parsed.features.dtype == np.float64
    records = native.parse(b'{"instances": [{"c": 3, "a": 1, "b": 2}]}', "application/json; charset=utf-8", model)
    assert records.features.tolist() == [[1, 2, 3]]
    with pytest.raises(ModelInputError, match=r"features\[0\]\[2\] \(c\): expected a number, got a boolean"):
        native.parse(b'{"features": [[1, 2, true]]}', "application/json", model)
    with pytest.raises(UnsupportedMediaTypeError):
        native.parse(b"{}", "text/csv", model)
    with pytest.raises(BadRequestError, match="malformed JSON"):
        native.parse(b"{", "application/json", model)


def test_native_render() -> None:
    model = stub_model()
    prediction = model.predict(np.array([[1.0, 1, 1], [-1, -1, -1]]))
    body = json.loads(native.render(model, prediction, "rid", probabilities=True))
    assert body["predictions"] == ["hi", "lo"] and body["classes"] == ["lo", "hi"]
    assert body["request_id"] == "rid" and body["version"] == "4"
    assert "probabilities" not in json.loads(native.render(model, prediction, "rid", probabilities=False))


def test_mlflow_shapes_agree() -> None:
    model = stub_model()
    rows = [[1, 2, 3], [4, 5, 6]]
    payloads = [
        {"dataframe_split": {"columns": ["c", "a", "b"], "data": [[3, 1, 2], [6, 4, 5]]}},
        {"dataframe_records": [{"a": 1, "b": 2, "c": 3}, {"a": 4, "b": 5, "c": 6}]},
        {"instances": rows},
        {"inputs": {"a": [1, 4], "b": [2, 5], "c": [3, 6]}},
    ]
    for payload in payloads:
        matrix = mlflow_protocol.parse(json.dumps(payload).encode(), "application/json", model)
        assert matrix.tolist() == rows, payload
    csv = mlflow_protocol.parse(b"b,a,c\n2,1,3\n5,4,6\n", "text/csv", model)
    assert csv.tolist() == rows
    single = mlflow_protocol.parse(b'{"inputs": {"a": 1, "b": 2, "c": 3}}', "application/json", model)
    assert single.tolist() == [[1, 2, 3]]
    with pytest.raises(ModelInputError, match="columns have different lengths"):
        mlflow_protocol.parse(b'{"inputs": {"a": [1, 2], "b": [2], "c": [3]}}', "application/json", model)


def test_v2_parse_nested_and_render_bytes_labels() -> None:
    model = stub_model()
    tensor = {"name": "x", "shape": [2, 3], "datatype": "INT32", "data": [[1, 2, 3], [-4, -5, -6]]}
    body = json.dumps({"inputs": [tensor]})
    request = v2.parse_infer(body.encode(), "application/json", None, model)
    assert request.features.tolist() == [[1, 2, 3], [-4, -5, -6]]
    assert request.outputs == ["predict", "predict_proba"]
    content, headers = v2.render_infer(model, model.predict(request.features), request, "rid")
    assert headers == {}
    out = json.loads(content)
    assert out["id"] == "rid"
    assert out["outputs"][0] == {"name": "predict", "datatype": "BYTES", "shape": [2], "data": ["hi", "lo"]}
    assert v2.model_metadata(model)["outputs"][0]["datatype"] == "BYTES"


def test_v2_binary_bytes_output_round_trip() -> None:
    model = stub_model()
    body = json.dumps({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 1, 1]}],
                       "parameters": {"binary_data_output": True}}).encode()
    request = v2.parse_infer(body, "application/json", None, model)
    content, headers = v2.render_infer(model, model.predict(request.features), request, "rid")
    length = int(headers["Inference-Header-Content-Length"])
    meta = json.loads(content[:length])
    assert [o["parameters"]["binary_data_size"] for o in meta["outputs"]] == [4 + 2, 16]
    assert content[length:length + 6] == b"\x02\x00\x00\x00hi"


def test_tabular_messages_name_the_field() -> None:
    with pytest.raises(ModelInputError) as info:
        tabular.rows_to_matrix([[1, 2, float("inf")]], NAMES, "features")
    assert info.value.field == "features[0][2] (c)" and "Infinity" in info.value.message
    with pytest.raises(ModelInputError, match=r"missing feature.*: b; unknown feature.*: z"):
        tabular.records_to_matrix([{"a": 1, "c": 2, "z": 3}], NAMES, "instances")
    with pytest.raises(ModelInputError, match="repeated feature"):
        tabular.check_names(["a", "b", "c", "a"], NAMES, "columns")


# -- batching ------------------------------------------------------------------------------------------------

class Recorder:
    """predict: label = first column; probabilities = the rows; fails on a row holding 42."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, x: Any) -> Prediction:
        self.calls.append(len(x))
        if (x == 42).any():
            raise RuntimeError("model fault on 42")
        return Prediction(x[:, 0].copy(), x.copy())


async def _gather_requests(batcher: Predictor, requests: list[Any]) -> list[Any]:
    async def one(features: Any) -> Any:
        with batcher.arrival() as arrival:
            await asyncio.sleep(0)  # "parsing": let the other requests announce themselves
            return await arrival.submit(features)

    return await asyncio.gather(*(one(f) for f in requests), return_exceptions=True)


def _executor() -> Any:
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(2)


def test_batcher_gives_each_caller_its_own_rows() -> None:
    predict = Recorder()
    rng = np.random.default_rng(0)
    requests = [rng.normal(size=(int(rng.integers(1, 5)), 3)) for _ in range(60)]

    async def scenario() -> list[Any]:
        batcher = MicroBatcher(predict, _executor(), window_s=5.0, max_rows=1000)
        try:
            return await _gather_requests(batcher, requests)
        finally:
            await batcher.stop()

    results = asyncio.run(scenario())
    for features, result in zip(requests, results, strict=True):
        assert isinstance(result, Prediction)
        assert np.array_equal(result.probabilities, features)
        assert np.array_equal(result.labels, features[:, 0])
    assert sum(predict.calls) == sum(len(r) for r in requests)
    assert len(predict.calls) < len(requests)


def test_batcher_lone_request_does_not_wait_for_the_window() -> None:
    predict = Recorder()

    async def scenario() -> Prediction:
        batcher = MicroBatcher(predict, _executor(), window_s=3600.0, max_rows=10)
        try:
            with batcher.arrival() as arrival:
                return await asyncio.wait_for(arrival.submit(np.ones((1, 3))), 60)
        finally:
            await batcher.stop()

    assert asyncio.run(scenario()).labels.tolist() == [1.0]


def test_batcher_respects_max_rows_and_isolates_faults() -> None:
    predict = Recorder()
    requests = [np.full((2, 3), float(i)) for i in range(10)]
    requests[3] = np.full((2, 3), 42.0)
    batches: list[int] = []

    async def scenario() -> list[Any]:
        batcher = MicroBatcher(predict, _executor(), window_s=5.0, max_rows=5, on_batch=batches.append)
        try:
            return await _gather_requests(batcher, requests)
        finally:
            await batcher.stop()

    results = asyncio.run(scenario())
    assert isinstance(results[3], RuntimeError)
    for i, result in enumerate(results):
        if i != 3:
            assert isinstance(result, Prediction) and result.labels.tolist() == [float(i)] * 2
    assert max(batches) <= 5


def test_unbatched_predictor() -> None:
    predict = Recorder()

    async def scenario() -> list[Any]:
        return await _gather_requests(Predictor(predict, _executor()), [np.ones((1, 3)), np.zeros((2, 3))])

    results = asyncio.run(scenario())
    assert [r.labels.tolist() for r in results] == [[1.0], [0.0, 0.0]]
    assert sorted(predict.calls) == [1, 2]


class ThreadRecorder(Recorder):
    """A Recorder that also notes whether each call ran on the event loop's thread."""

    def __init__(self) -> None:
        super().__init__()
        self.on_loop: list[bool] = []
        self.loop_thread = threading.get_ident()

    def __call__(self, x: Any) -> Prediction:
        self.on_loop.append(threading.get_ident() == self.loop_thread)
        return super().__call__(x)


@pytest.mark.parametrize("batching", [True, False])
def test_lone_small_requests_are_predicted_on_the_loop_and_bursts_still_batch(batching: bool) -> None:
    predict = ThreadRecorder()
    burst = [np.full((1, 3), float(i)) for i in range(20)]

    def make() -> Predictor:
        if batching:
            return MicroBatcher(predict, _executor(), window_s=5.0, max_rows=1000, inline_rows=4)
        return Predictor(predict, _executor(), inline_rows=4)

    async def one(batcher: Predictor, features: Any) -> Prediction:
        with batcher.arrival() as arrival:  # no await before submit: as a body read without waiting
            return await arrival.submit(features)

    async def scenario() -> tuple[list[Any], list[Any]]:
        batcher = make()
        try:
            lone = [await one(batcher, np.full((rows, 3), 7.0)) for rows in (1, 4, 5)]
            together = await asyncio.gather(*(one(batcher, f) for f in burst))
            return lone, list(together)
        finally:
            await batcher.stop()

    lone, together = asyncio.run(scenario())
    assert [r.labels.tolist() for r in lone] == [[7.0], [7.0] * 4, [7.0] * 5]
    assert predict.on_loop[:3] == [True, True, False]  # up to inline_rows rows; more go to the thread
    assert [r.labels.tolist() for r in together] == [[float(i)] for i in range(20)]
    assert not any(predict.on_loop[3:])  # a burst never runs on the loop
    if batching:
        assert len(predict.calls) - 3 < len(burst)  # and is still batched


@pytest.mark.parametrize("batching", [True, False])
def test_the_servers_requests_in_flight_tell_a_lone_request_without_a_turn_of_the_loop(batching: bool) -> None:
    """With the server's requests in flight (the HTTP server's set of request tasks), a request is
    lone when it is the only one: predicted on the loop; with another one started, in the thread."""
    predict = ThreadRecorder()

    async def scenario() -> list[Prediction]:
        batcher: Predictor = (MicroBatcher(predict, _executor(), window_s=0.0, max_rows=1000, inline_rows=4)
                              if batching else Predictor(predict, _executor(), inline_rows=4))
        try:
            answers = []
            for started in ({"this"}, {"this", "another"}):
                with batcher.arrival(started) as arrival:
                    answers.append(await arrival.submit(np.full((1, 3), 7.0)))
            return answers
        finally:
            await batcher.stop()

    answers = asyncio.run(scenario())
    assert [a.labels.tolist() for a in answers] == [[7.0], [7.0]]
    assert predict.on_loop == [True, False]


# -- API keys ---------------------------------------------------------------------------------------------------

def test_keys_round_trip() -> None:
    key, line = auth.generate_key()
    limited_key, limited_line = auth.generate_key(["m1", "m2"])
    assert key not in line and key.split("_", 2)[2] not in line  # only the hash is stored (the secret may hold "_")
    entries = auth.parse_keys(f"# comment\n{line}\n\n{limited_line}  # trailing comment\n")
    entry = auth.verify(entries, key)
    assert entry is not None and entry.models is None
    limited = auth.verify(entries, limited_key)
    assert limited is not None and limited.models == frozenset({"m1", "m2"})
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert auth.verify(entries, tampered) is None
    assert auth.verify(entries, "mlk_00000000_" + "x" * 43) is None
    assert auth.verify(entries, "") is None
    assert auth.key_from_headers(None, f"bearer {key}") == key
    assert auth.key_from_headers(key, "Bearer other") == key
    assert auth.key_from_headers(None, f"Basic {key}") is None


@pytest.mark.parametrize(("text", "message"), [
    ("zz sha256$abc$def", "line 1: expected '<8-hex-digit id>"),
    ("0123abcd md5$abc$def", "line 1: expected a hash"),
    ("0123abcd sha256$AAAAAAAAAAA$AAAA", "wrong salt or digest length"),
    ("0123abcd sha256$x$y m 1", "expected '<8-hex-digit id>"),
])
def test_bad_keys_file_names_the_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        auth.parse_keys(text)


def test_key_store_reloads_and_keeps_old_keys_on_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    first, first_line = auth.generate_key()
    second, second_line = auth.generate_key()
    path.write_text(first_line + "\n")
    store = auth.KeyStore(path, reload_s=0)
    authenticator = auth.Authenticator(store)
    assert authenticator.authenticate(first, None).key_id == first.split("_")[1]
    path.write_text(second_line + "\n")
    os.utime(path, ns=(1, 1))  # a different mtime even within the clock's resolution
    assert authenticator.authenticate(None, f"Bearer {second}").key_id == second.split("_")[1]
    with pytest.raises(auth.UnauthorizedError):
        authenticator.authenticate(first, None)
    path.write_text("garbage\n")
    os.utime(path, ns=(2, 2))
    assert authenticator.authenticate(second, None)  # the previous keys stay
    with pytest.raises(auth.ForbiddenError):
        auth.Principal("k", frozenset({"m1"})).authorize("m2")
    with pytest.raises(ConfigError, match="cannot read"):
        auth.KeyStore(tmp_path / "missing", 1)


# -- prediction-log records -------------------------------------------------------------------------------------

def _table(model: LoadedModel, when: datetime, request_id: str, rows: int) -> Any:
    from mlops_platform import prediction_log as records

    features = np.arange(rows * 3, dtype=np.float64).reshape(rows, 3)
    prediction = model.predict(features)
    return records.build_table(
        model=model.name, version=model.version, feature_names=model.feature_names, classes=model.class_names,
        timestamps_us=np.full(rows, int(when.timestamp() * 1_000_000), dtype=np.int64),
        request_ids=[request_id] * rows, rows=np.arange(rows, dtype=np.int32), features=features,
        predictions=prediction.labels.astype(str).tolist(), probabilities=prediction.probabilities,
    )


def test_records_layout_and_time_range(tmp_path: Path) -> None:
    from mlops_platform import prediction_log as records
    from mlops_platform.settings import PlatformSettings
    from mlops_platform.storage import write_bytes

    settings = PlatformSettings(home=tmp_path)
    store = str(tmp_path / "store")
    model = stub_model()
    base = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    for offset, rid in ((0, "r0"), (1, "r1"), (25, "r25")):  # 23:30, 00:30 next day, 00:30 a day later
        when = base + timedelta(hours=offset)
        write_bytes(records.record_file_uri(store, "stub", "4", when), records.table_to_parquet(
            _table(model, when, rid, 2)), settings)
    assert records.record_file_uri("s3://b/p", "my model", "4", base, "id") == (
        "s3://b/p/predictions/model=my%20model/version=4/date=2026-03-01/hour=23/id.parquet")
    frame = records.read_records(store, settings, "stub", 4, base, base + timedelta(hours=2))
    assert frame["request_id"].tolist() == ["r0", "r0", "r1", "r1"]
    assert list(frame.columns) == [*records.FIXED_COLUMNS, "feature.a", "feature.b", "feature.c",
                                   *records.OUTPUT_COLUMNS]
    assert frame["prediction"].tolist() == ["hi"] * 4
    assert frame["probabilities"].iloc[0].tolist() == pytest.approx(model.predict(np.array([[0.0, 1, 2]]))
                                                                   .probabilities[0].tolist())
    later = records.read_records(store, settings, "stub", "4", base + timedelta(hours=1, minutes=31),
                                 base + timedelta(days=3))
    assert later["request_id"].unique().tolist() == ["r25"]
    empty = records.read_records(store, settings, "other", "1", base, base + timedelta(hours=1))
    assert empty.empty and "request_id" in empty.columns


def test_prediction_logger_drops_and_counts(tmp_path: Path) -> None:
    from mlops_serving.metrics import ServingMetrics
    from mlops_serving.predlog import PredictionLogger

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    settings = ServingSettings(models=["stub:4"], home=tmp_path, auth="off", store_uri=str(blocker),
                               predlog_buffer_rows=5)
    metrics = ServingMetrics()
    logger = PredictionLogger(settings, metrics)
    model = stub_model()
    features = np.ones((3, 3))

    async def scenario() -> None:
        logger.offer(model, "a", 1.0, features, model.predict(features))
        logger.offer(model, "b", 1.0, features, model.predict(features))  # 6 > 5 rows: dropped
        await logger.close()  # the write fails: retried, then dropped

    asyncio.run(scenario())
    text = metrics.render().decode()
    dropped = "mlops_serving_prediction_log_records_dropped_total"
    assert dropped + '{model="stub",reason="buffer_full",version="4"} 3.0' in text
    assert dropped + '{model="stub",reason="write_error",version="4"} 3.0' in text


# -- the trained models: one predict_proba call gives the same labels as predict --------------------------------

def test_argmax_of_predict_proba_equals_predict_for_the_example_models(trained_store: Any) -> None:
    from sklearn.datasets import load_breast_cancer, load_wine

    from mlops_platform.registry import Registry
    from mlops_platform.settings import PlatformSettings
    from mlops_serving.runtime import load_model

    registry = Registry(PlatformSettings(home=trained_store.home))
    for name, data in (("wine-classifier", load_wine().data), ("breast-cancer-classifier", load_breast_cancer().data)):
        model = load_model(registry, ModelRef(name, 1))
        assert model.proba_argmax, name
        assert model.baseline is not None and model.baseline.feature_names == model.feature_names
        assert np.array_equal(model.predict(data).labels, model.estimator.predict(data)), name


# -- the body parser ------------------------------------------------------------------------------------

def _die(body: bytes) -> None:
    os._exit(1)  # a parsing process killed mid-parse (e.g. out of memory)


def test_body_parser_uses_its_process_for_large_bodies_and_replaces_a_dead_one() -> None:
    large = b'{"inputs": {"a": [1], "b": [2], "c": [3]}}'.ljust(tabular.LARGE_BODY)
    model = stub_model()

    async def run() -> None:
        parser = BodyParser(1)
        parser.start()
        try:
            parsed = await parser.parse(large, 10, 3, mlflow_protocol.parse, "application/json", model.inputs)
            assert parsed.tolist() == [[1, 2, 3]]
            with pytest.raises(ModelInputError, match="unknown feature"):  # the same 4xx as inline
                await parser.parse(large.replace(b'"c"', b'"d"'), 10, 3, mlflow_protocol.parse,
                                   "application/json", model.inputs)
            with pytest.raises(PayloadTooLargeError, match="MLOPS_SERVING_MAX_ROWS=10"):  # counted first
                await parser.parse(b",".ljust(tabular.LARGE_BODY, b","), 10, 3, _die)
            with pytest.raises(ParserUnavailableError):
                await parser.parse(large, 10, 3, _die)
            parsed = await parser.parse(large, 10, 3, mlflow_protocol.parse, "application/json", model.inputs)
            assert parsed.tolist() == [[1, 2, 3]]  # a new pool took over
        finally:
            await parser.stop()

    asyncio.run(run())
