"""Benchmark: how long each hostile request stalls the model server's event loop.

Not a test (no assertions on timing). It starts `python -m mlops_serving` (one process, the
deployment's shape) on an embedded store holding wine-classifier and breast-cancer-classifier
(trained here unless ``--home`` names a store that has them), then sends every hand-made hostile
body of ``tests/serving/test_serving_hostile.py`` one at a time while a second client sends 1-row
predictions back to back on its own keep-alive connection. Per case it prints the status, how
long the hostile request took, and the worst latency of the second client's predictions during
it (the loop stall as a client sees it), then the worst stall over all cases and the idle p50.

    python tests/benchmarks/bench_hostile.py [--home DIR] [--source DIR] [--only SUBSTRING] [--skip SUBSTRING]

``--source`` serves the packages of another checkout (e.g. the main branch, for before/after).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from serving.test_serving_hostile import BODY_LIMIT, HOSTILE, ROW  # noqa: E402
from support.project import CANCER_CONFIG, WINE_CONFIG, EmbeddedStore, run_mlops  # noqa: E402
from support.services import free_port, wait_for_http  # noqa: E402

PROBE = json.dumps({"features": [ROW]}).encode()


def _store(home: str | None) -> EmbeddedStore:
    if home is not None:
        return EmbeddedStore(Path(home))
    store = EmbeddedStore(Path(tempfile.mkdtemp(prefix="bench-hostile-")))
    for config in (WINE_CONFIG, CANCER_CONFIG):
        result = run_mlops("train", "--config", str(config), cwd=store.workdir, env=store.env())
        if result.returncode != 0:
            sys.exit(f"training failed:\n{result.stderr}")
    return store


def _post(conn: http.client.HTTPConnection, path: str, body: bytes, content_type: str | None,
          extra: dict[str, str] | None = None) -> int:
    headers = {"content-type": content_type} if content_type else {}
    headers.update(extra or {})
    conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


class Prober(threading.Thread):
    """1-row predictions back to back; the latencies of those that overlap the hostile request."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.latencies: list[float] = []
        self.spans: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self.errors = 0

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            if _post(self.conn, "/predict", PROBE, "application/json") != 200:
                self.errors += 1
            ended = time.perf_counter()
            self.latencies.append(ended - started)
            self.spans.append((started, ended))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", help="an embedded-store work dir holding both example models (else trained)")
    parser.add_argument("--source", default=str(REPO), help="checkout whose packages the server runs")
    parser.add_argument("--only", help="only the cases whose id contains this")
    parser.add_argument("--skip", action="append", default=[], help="skip the cases whose id contains this")
    parser.add_argument("--timeout", type=float, default=60, help="seconds one hostile request may take")
    args = parser.parse_args()

    store = _store(args.home)
    source = Path(args.source)
    port = free_port()
    env = store.env(
        MLOPS_SERVING_MODELS="wine-classifier:1,breast-cancer-classifier@candidate", MLOPS_SERVING_AUTH="off",
        MLOPS_SERVING_MAX_BODY_BYTES=str(BODY_LIMIT), MLOPS_SERVING_PREDLOG_SAMPLE_RATE="0",
        MLOPS_SERVING_PORT=str(port), MLOPS_SERVING_LOG_LEVEL="WARNING",
        PYTHONPATH=os.pathsep.join(str(source / p) for p in ("infra", "drift", "workflows", "serving")),
    )
    log = store.workdir / f"bench-hostile-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mlops_serving"], cwd=store.workdir, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url + "/readyz", 120, proc=proc, log=log)
        idle = Prober(port)
        for _ in range(200):
            started = time.perf_counter()
            _post(idle.conn, "/predict", PROBE, "application/json")
            idle.latencies.append(time.perf_counter() - started)
        idle_p50 = statistics.median(idle.latencies)

        print(f"server packages from {source}; idle 1-row prediction p50 {idle_p50 * 1000:.2f} ms")
        print(f"| {'case':<36} | status | hostile (ms) | worst 1-row latency during it (ms) |")
        print(f"|{'-' * 38}|--------|--------------|------------------------------------|")
        worst: tuple[float, str] = (0.0, "")
        statuses: dict[str, int] = {}
        for case in HOSTILE:
            name, path, content_type, body, _, text = case
            if (args.only and args.only not in name) or any(skip in name for skip in args.skip):
                continue
            data = body if isinstance(body, bytes) else body.encode()
            extra = {"inference-header-content-length": "9" * 400} if text == "Inference-Header-Content-Length" else {}
            prober = Prober(port)
            prober.start()
            while not prober.latencies:
                time.sleep(0.001)
            hostile = http.client.HTTPConnection("127.0.0.1", port, timeout=args.timeout)
            started = time.perf_counter()
            try:
                status: Any = _post(hostile, path, data, content_type, extra)
            except TimeoutError:
                status = "timeout"
            took = time.perf_counter() - started
            ended = started + took
            time.sleep(0.05)
            prober.stop.set()
            prober.join(args.timeout)
            stall = max([e - s for s, e in prober.spans if e >= started and s <= ended] or [0.0])
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if stall > worst[0]:
                worst = (stall, name)
            print(f"| {name:<36} | {status!s:>6} | {took * 1000:>12.1f} | {stall * 1000:>34.1f} |", flush=True)
        print(f"\nworst stall: {worst[0] * 1000:.1f} ms ({worst[1]}); statuses: "
              + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
    finally:
        proc.terminate()
        proc.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
