"""A model that fails inside predict: 500 with the request id, logged with its traceback, and the
other requests of the same batch still answered. Served in-process (a hand-made model through the
app factory's loader) by a real uvicorn server on a loopback port."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from support.procs import free_port, wait_for_http

from mlops_serving.runtime import LoadedModel
from mlops_serving.settings import ModelRef, ServingSettings


class Faulty:
    classes_ = np.array(["no", "yes"])

    def predict_proba(self, x: Any) -> Any:
        if (x == 42).any():
            raise RuntimeError("the model cannot handle 42")
        p = 1 / (1 + np.exp(-x[:, 0]))
        return np.column_stack([1 - p, p])

    def predict(self, x: Any) -> Any:
        return self.classes_[(self.predict_proba(x)[:, 1] > 0.5).astype(int)]


def _load(registry: Any, ref: ModelRef) -> LoadedModel:
    model = LoadedModel(name=ref.name, version=str(ref.version), run_id="f" * 32, ref=ref, estimator=Faulty(),
                        feature_names=["x", "y"], baseline=None)
    model.check_proba_argmax()
    return model


@pytest.fixture(scope="module")
def faulty_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import uvicorn

    from mlops_serving.app import create_app

    home: Path = tmp_path_factory.mktemp("faulty") / ".mlops"
    settings = ServingSettings(models=["faulty:7"], home=home, auth="off", predlog_sample_rate=0,
                               batch_window_ms=20)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, loader=_load), host="127.0.0.1", port=port,
                                           log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url + "/healthz", 60)
    deadline = time.monotonic() + 60
    while requests.get(url + "/readyz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "the faulty model never became ready"
        time.sleep(0.05)
    yield url
    server.should_exit = True
    thread.join(30)


def test_model_fault_is_500_with_request_id_and_logged(faulty_server: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="mlops_serving")
    response = requests.post(faulty_server + "/predict", json={"features": [[42, 1]]},
                             headers={"X-Request-ID": "fault-42"}, timeout=30)
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["code"] == "MODEL_ERROR" and "request id fault-42" in body["error"]["message"]
    assert "cannot handle 42" not in response.text  # the model's internals stay in the log
    logged = [r for r in caplog.records if "fault-42" in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert "the model cannot handle 42" in str(logged[0].exc_info[1])
    mlflow_shape = requests.post(faulty_server + "/invocations", json={"inputs": [[42, 1]]}, timeout=30)
    assert mlflow_shape.status_code == 500 and mlflow_shape.json()["error_code"] == "MODEL_ERROR"


def test_a_fault_in_a_batch_does_not_fail_the_other_requests(faulty_server: str) -> None:
    rows = [[float(i), 1.0] for i in range(-8, 8)]
    rows[5] = [42.0, 1.0]
    barrier = threading.Barrier(len(rows))

    def call(row: list[float]) -> tuple[int, Any]:
        barrier.wait()
        response = requests.post(faulty_server + "/predict", json={"features": [row]}, timeout=30)
        return response.status_code, response.json()

    with ThreadPoolExecutor(len(rows)) as pool:
        results = list(pool.map(call, rows))
    for row, (status, body) in zip(rows, results, strict=True):
        if row[0] == 42:
            assert status == 500
        else:
            assert status == 200 and body["predictions"] == ["yes" if row[0] > 0 else "no"]
    metrics = requests.get(faulty_server + "/metrics", timeout=5).text
    assert 'mlops_serving_requests_total{code="500",endpoint="predict",model="faulty",version="7"}' in metrics
