"""Helpers of the model-server tests: start real `python -m mlops_serving` processes, wait, poke."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from support.procs import free_port, wait_for_http

WINE = "wine-classifier"
CANCER = "breast-cancer-classifier"

# Wine rows (from sklearn's wine dataset), one per cultivar, in signature order.
WINE_ROWS = [
    [14.23, 1.71, 2.43, 15.6, 127.0, 2.8, 3.06, 0.28, 2.29, 5.64, 1.04, 3.92, 1065.0],
    [12.37, 0.94, 1.36, 10.6, 88.0, 1.98, 0.57, 0.28, 0.42, 1.95, 1.05, 1.82, 520.0],
    [12.86, 1.35, 2.32, 18.0, 122.0, 1.51, 1.25, 0.21, 0.94, 4.1, 0.76, 1.29, 630.0],
]


def wine_features() -> list[str]:
    return [
        "alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols", "flavanoids",
        "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue", "od280_od315_of_diluted_wines",
        "proline",
    ]


def wine_dataset() -> tuple[Any, Any]:
    from sklearn.datasets import load_wine

    data = load_wine()
    return data.data, data.target


def cancer_rows(count: int = 5) -> list[list[float]]:
    from sklearn.datasets import load_breast_cancer

    return [[float(v) for v in row] for row in load_breast_cancer().data[:count]]


@dataclass
class Server:
    """A running server process and a requests session that sends ``key`` unless told otherwise."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    env: dict[str, str]
    key: str | None = None
    session: requests.Session = field(default_factory=requests.Session)

    def request(self, method: str, path: str, *, key: str | bool | None = True, headers: dict[str, str] | None = None,
                **kwargs: Any) -> requests.Response:
        sent = dict(headers or {})
        chosen = self.key if key is True else (None if key is False else key)
        if chosen is not None:
            sent.setdefault("x-api-key", chosen)
        return self.session.request(method, self.url + path, headers=sent, timeout=30, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def logs(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return lines

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, wait; the exit status (uvicorn re-raises SIGTERM after a clean shutdown: -15)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def stopped_cleanly(self) -> bool:
        messages = [entry.get("message", "") for entry in self.logs()]
        return self.proc.returncode in (0, -signal.SIGTERM) and "Application shutdown complete." in messages


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def start_server(workdir: Path, env: dict[str, str], *, ready: bool = True, key: str | None = None,
                 timeout: float = 60) -> Server:
    """Start `python -m mlops_serving` in ``workdir``; wait for /readyz 200 (``ready``) or /healthz."""
    port = free_port()
    env = {
        **env,
        "MLOPS_SERVING_HOST": "127.0.0.1",
        "MLOPS_SERVING_PORT": str(port),
        "MLOPS_SERVING_LOG_LEVEL": env.get("MLOPS_SERVING_LOG_LEVEL", "INFO"),
        "PYTHONUNBUFFERED": "1",
    }
    log = workdir / f"server-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mlops_serving"], cwd=workdir, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(proc, f"http://127.0.0.1:{port}", log, env, key)
    try:
        wait_for_http(server.url + "/healthz", timeout, proc=proc, log=log)
        if ready:
            wait_until(lambda: proc.poll() is not None or server.get("/readyz", key=False).status_code == 200,
                       timeout, f"{server.url}/readyz\n{log.read_text(errors='replace')[-3000:]}")
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
    except BaseException:
        server.stop()
        raise
    return server


@dataclass(frozen=True)
class Keys:
    file: Path
    full: str  # every model
    cancer_only: str  # limited to breast-cancer-classifier


def make_key(workdir: Path, keys_file: Path, *models: str) -> str:
    """A key created with `mlops keys create --append` (the real CLI); returns the printed key."""
    args = [sys.executable, "-m", "mlops_workflows.cli", "keys", "create", "--append", str(keys_file)]
    if models:
        args += ["--models", ",".join(models)]
    result = subprocess.run(args, cwd=workdir, capture_output=True, text=True, timeout=60, check=True)
    line = next(line for line in result.stdout.splitlines() if line.startswith("API key"))
    return line.rsplit(" ", 1)[1]



SERVER_SETTINGS = {
    "MLOPS_SERVING_MODELS": f"{WINE}:1,{CANCER}@candidate",
    "MLOPS_SERVING_AUTH": "api-key",
    "MLOPS_SERVING_API_KEYS_RELOAD_S": "0.1",
    "MLOPS_SERVING_MAX_ROWS": "100",
    "MLOPS_SERVING_MAX_BODY_BYTES": "65536",
    "MLOPS_SERVING_PREDLOG_FLUSH_INTERVAL_S": "0.3",
    "MLOPS_SERVING_BATCH_WINDOW_MS": "5",
    "MLOPS_SERVING_LOAD_RETRY_INITIAL_S": "0.2",
    "MLOPS_SERVING_LOAD_RETRY_MAX_S": "1",
}
