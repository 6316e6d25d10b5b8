"""Readiness while the model is missing, and SIGTERM under load."""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from support.project import WINE_CONFIG, base_env, run_mlops
from support.serving import WINE, WINE_ROWS, start_server, wait_until

from mlops_platform import metric_names as mn


def test_missing_model_is_503_until_registered_then_ready(tmp_path: Path) -> None:
    home = tmp_path / ".mlops"
    env = base_env(
        MLOPS_HOME=str(home), MLOPS_SERVING_MODELS=f"{WINE}:1", MLOPS_SERVING_AUTH="off",
        MLOPS_SERVING_LOAD_RETRY_INITIAL_S="0.2", MLOPS_SERVING_LOAD_RETRY_MAX_S="1",
    )
    server = start_server(tmp_path, env, ready=False)
    try:
        def failed_once() -> dict[str, Any] | None:
            response = server.get("/readyz")
            assert response.status_code == 503  # never ready, never crashed
            body: dict[str, Any] = response.json()
            return body if body["models"][WINE] != "loading" else None

        body = wait_until(failed_once, 60, "the first failed load attempt")
        assert body["status"] == "not ready"
        assert "has no version 1" in body["models"][WINE] or "no registered model" in body["models"][WINE]
        assert server.get("/healthz").status_code == 200
        assert server.get("/v2/health/ready").status_code == 503
        assert server.get(f"/v2/models/{WINE}/ready").json() == {"name": WINE, "ready": False}
        refused = server.post("/predict", json={"features": WINE_ROWS})
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert "is not ready" in refused.json()["error"]["message"]

        trained = run_mlops("train", "--config", str(WINE_CONFIG), cwd=tmp_path, env=base_env(MLOPS_HOME=str(home)))
        assert trained.returncode == 0, trained.stderr
        assert server.proc.poll() is None

        wait_until(lambda: server.get("/readyz").status_code == 200, 60, "the server to load the new version")
        response = server.post("/predict", json={"features": WINE_ROWS})
        assert response.status_code == 200 and response.json()["predictions"] == [0, 1, 2]
        metrics = server.get("/metrics").text
        failures = next(line for line in metrics.splitlines()
                        if line.startswith(f'{mn.SERVING_MODEL_LOAD_FAILURES.name}{{model="{WINE}"}}'))
        assert float(failures.rsplit(" ", 1)[1]) >= 1
        warnings = [e for e in server.logs() if e.get("logger") == "mlops_serving.runtime" and e["level"] == "WARNING"]
        assert warnings and "retrying in" in warnings[0]["message"]
    finally:
        server.stop()
    assert server.stopped_cleanly()


def test_sigterm_under_load_loses_no_accepted_request(trained_store: Any, tmp_path: Path) -> None:
    from mlops_platform.prediction_log import read_records
    from mlops_platform.settings import PlatformSettings

    store = tmp_path / "store"
    env = trained_store.env(
        MLOPS_SERVING_MODELS=f"{WINE}:1", MLOPS_SERVING_AUTH="off", MLOPS_STORE_URI=str(store),
        MLOPS_SERVING_PREDLOG_FLUSH_INTERVAL_S="3600",  # only the shutdown flush writes
        MLOPS_SERVING_PREDLOG_FLUSH_ROWS="1000000",
    )
    server = start_server(tmp_path, env)
    outcomes: list[tuple[str, int | None]] = []
    lock = threading.Lock()
    enough = threading.Event()

    def client(worker: int) -> None:
        session = requests.Session()
        for n in range(5000):
            rid = f"term-{worker}-{n}"
            try:
                response = session.post(server.url + "/predict", json={"features": [WINE_ROWS[n % 3]]},
                                        headers={"X-Request-ID": rid}, timeout=30)
            except requests.ConnectionError:
                with lock:
                    outcomes.append((rid, None))
                return
            with lock:
                outcomes.append((rid, response.status_code))
                if len(outcomes) >= 200:
                    enough.set()
            if response.status_code != 200:
                return

    threads = [threading.Thread(target=client, args=(w,)) for w in range(12)]
    for thread in threads:
        thread.start()
    assert enough.wait(120), "the clients never got going"
    server.proc.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(120)
    server.proc.wait(60)
    assert server.stopped_cleanly(), server.log.read_text()[-3000:]

    statuses = {status for _, status in outcomes}
    assert statuses <= {200, None}, f"a request was answered with an error during shutdown: {statuses}"
    answered = {rid for rid, status in outcomes if status == 200}
    settings = PlatformSettings(home=trained_store.home, store_uri=str(store))
    now = datetime.now(UTC)
    logged = read_records(str(store), settings, WINE, "1", now - timedelta(hours=1), now + timedelta(hours=1))
    # Every request the server accepted was answered, and every answered one was logged (flush on shutdown).
    assert set(logged["request_id"]) == answered
    assert len(answered) >= 200
