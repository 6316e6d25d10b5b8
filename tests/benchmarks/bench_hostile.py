"""Benchmark: how long each hostile request stalls the model server's event loop, before and after.

Not a test (no assertions on timing). It starts `python -m mlops_serving` (one process, the
deployment's shape) on an embedded store holding wine-classifier and breast-cancer-classifier
(trained here unless ``--home`` names a store that has them), once with the packages of this
checkout and, with ``--baseline``, once with those of another (a folder, or a git ref exported
from this repository, e.g. ``main``). It sends every hand-made hostile body of
``tests/serving/test_hostile.py`` one at a time to each server while a second client sends
1-row predictions back to back on its own keep-alive connection. Per case and server it prints the
status and the worst latency of the second client's predictions during the hostile request (the
loop stall as a client sees it; the median over ``--repeat`` runs), then the worst stall and the
status counts per server, and the idle 1-row p50 of each.

    python tests/benchmarks/bench_hostile.py [--home DIR] [--baseline REF|DIR] [--repeat N]
                                             [--only SUBSTRING]... [--skip SUBSTRING]...
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

from serving.test_hostile import BODY_LIMIT, HOSTILE, ROW  # noqa: E402
from support.procs import free_port, wait_for_http  # noqa: E402
from support.project import CANCER_CONFIG, WINE_CONFIG, EmbeddedStore, run_mlops  # noqa: E402

STALL_TARGET_MS = 50
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


def _source(spec: str) -> Path:
    """A checkout folder, or a git ref of this repository exported to a temporary folder."""
    if Path(spec).is_dir():
        return Path(spec).resolve()
    target = Path(tempfile.mkdtemp(prefix="bench-hostile-src-"))
    archive = subprocess.run(["git", "archive", spec, "infra", "drift", "workflows", "serving"], cwd=REPO,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


class Served:
    """One `python -m mlops_serving` process serving the packages of ``source``."""

    def __init__(self, store: EmbeddedStore, source: Path) -> None:
        self.source = source
        self.port = free_port()
        env = store.env(
            MLOPS_SERVING_MODELS="wine-classifier:1,breast-cancer-classifier@candidate", MLOPS_SERVING_AUTH="off",
            MLOPS_SERVING_MAX_BODY_BYTES=str(BODY_LIMIT), MLOPS_SERVING_PREDLOG_SAMPLE_RATE="0",
            MLOPS_SERVING_PORT=str(self.port), MLOPS_SERVING_LOG_LEVEL="WARNING",
            PYTHONPATH=os.pathsep.join(str(source / p) for p in ("infra", "drift", "workflows", "serving")),
        )
        self.log = store.workdir / f"bench-hostile-{self.port}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "mlops_serving"], cwd=store.workdir, env=env,
                                         stdout=out, stderr=subprocess.STDOUT)
        wait_for_http(f"http://127.0.0.1:{self.port}/readyz", 120, proc=self.proc, log=self.log)
        time.sleep(3)  # let a parsing pool, if any, finish warming up
        idle = Prober(self.port)
        for _ in range(200):
            started = time.perf_counter()
            _post(idle.conn, "/predict", PROBE, "application/json")
            idle.latencies.append(time.perf_counter() - started)
        self.idle_p50 = statistics.median(idle.latencies)

    def run(self, case: tuple[Any, ...], timeout: float) -> tuple[str, float, float]:
        """(status, hostile request ms, worst 1-row latency ms during it)."""
        _, path, content_type, body, _, text = case
        data = body if isinstance(body, bytes) else body.encode()
        extra = {"inference-header-content-length": "9" * 400} if text == "Inference-Header-Content-Length" else {}
        prober = Prober(self.port)
        prober.start()
        while not prober.latencies:
            time.sleep(0.001)
        hostile = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        started = time.perf_counter()
        try:
            status = str(_post(hostile, path, data, content_type, extra))
        except TimeoutError:
            status = "timeout"
        ended = time.perf_counter()
        time.sleep(0.05)
        prober.stop.set()
        prober.join(timeout)
        hostile.close()
        stall = max([e - s for s, e in prober.spans if e >= started and s <= ended] or [0.0])
        return status, (ended - started) * 1000, stall * 1000

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", help="an embedded-store work dir holding both example models (else trained)")
    parser.add_argument("--source", default=str(REPO), help="checkout whose packages the server runs")
    parser.add_argument("--baseline", help="a checkout folder or git ref to compare with (e.g. main)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each case; the median stall is shown")
    parser.add_argument("--only", action="append", default=[],
                        help="only the cases whose id contains this (repeat it)")
    parser.add_argument("--skip", action="append", default=[], help="skip the cases whose id contains this")
    parser.add_argument("--timeout", type=float, default=60, help="seconds one hostile request may take")
    args = parser.parse_args()

    store = _store(args.home)
    sources = {"after": _source(args.source)}
    if args.baseline:
        sources = {"before": _source(args.baseline), **sources}
    servers: dict[str, Served] = {}
    try:
        for label, source in sources.items():
            servers[label] = Served(store, source)
            print(f"{label}: packages from {source}; idle 1-row prediction p50 {servers[label].idle_p50 * 1000:.2f} ms")
        labels = list(servers)
        head = " | ".join(f"{label} status | {label} stall (ms)" for label in labels)
        print(f"\n| {'case':<36} | {head} |")
        print("|" + "-" * 38 + "|" + "|".join("-" * (len(label) + 9) + "|" + "-" * (len(label) + 13)
                                            for label in labels) + "|")
        worst = dict.fromkeys(labels, (0.0, ""))
        over: dict[str, int] = dict.fromkeys(labels, 0)
        statuses: dict[str, dict[str, int]] = {label: {} for label in labels}
        for case in HOSTILE:
            name = case[0]
            if (args.only and not any(only in name for only in args.only)) or any(skip in name for skip in args.skip):
                continue
            cells = []
            for label, served in servers.items():
                runs = [served.run(case, args.timeout) for _ in range(args.repeat)]
                status = runs[0][0]
                stall = statistics.median(run[2] for run in runs)
                statuses[label][status] = statuses[label].get(status, 0) + 1
                over[label] += stall > STALL_TARGET_MS
                if stall > worst[label][0]:
                    worst[label] = (stall, name)
                cells.append(f"{status:>{len(label) + 7}} | {stall:>{len(label) + 11}.1f}")
            print(f"| {name:<36} | " + " | ".join(cells) + " |", flush=True)
        print()
        for label in labels:
            counts = ", ".join(f"{k}: {v}" for k, v in sorted(statuses[label].items()))
            print(f"{label}: worst stall {worst[label][0]:.1f} ms ({worst[label][1]}); {over[label]} cases over "
                  f"{STALL_TARGET_MS} ms; statuses: {counts}")
    finally:
        for served in servers.values():
            served.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
