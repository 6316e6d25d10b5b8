"""Benchmark: our model server against `mlflow models serve`, same model version, in one run.

A third column, ``bare``, is a no-op FastAPI app (JSON body in, constant JSON out, no model).

Not a test (no assertions on timing). It trains wine-classifier (RandomForest, 100 trees) in a
temporary embedded store, starts both servers pinned to one core (``taskset``), and loads each
with ``wrk`` pinned to another core: concurrency 1, 8 and 64, 1-row and 64-row payloads, the same
MLflow ``dataframe_split`` body to ``POST /invocations`` on both. It prints requests/s, p50/p99
latency, server CPU time per request (utime+stime of the server's process tree from /proc) and
resident memory.

    python tests/benchmarks/bench_serving.py [--duration 10] [--server-core 0] [--client-core 1]
        [--before /path/to/checkout] [--cached] [--no-mlflow] [--concurrency 1,8,64] [--rows 1,64]

With ``--before DIR`` a fourth server, ``before``, runs the mlops_serving of another checkout (e.g.
the main branch) on the same model. With ``--cached`` one more, ``cached``, starts from a model cache a
first (stopped) server filled: a restarted pod, whereas ``mlops`` downloaded the version itself.
The servers take turns at each payload and concurrency (warm-up,
then measurement, one server after the other), so a change of the machine's load between
measurements hits them alike; compare the ratios of one run.

Needs wrk (``apt-get install wrk``), taskset, full mlflow (the embedded store) and the serving extra.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WINE_CONFIG = REPO / "workflows" / "models" / "wine-classifier.yaml"
MODEL = "wine-classifier"
FEATURES = [
    "alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols", "flavanoids",
    "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue", "od280_od315_of_diluted_wines", "proline",
]
WINE_ROWS = [  # one row per cultivar, from sklearn's wine dataset
    [14.23, 1.71, 2.43, 15.6, 127.0, 2.8, 3.06, 0.28, 2.29, 5.64, 1.04, 3.92, 1065.0],
    [12.37, 0.94, 1.36, 10.6, 88.0, 1.98, 0.57, 0.28, 0.42, 1.95, 1.05, 1.82, 520.0],
    [12.86, 1.35, 2.32, 18.0, 122.0, 1.51, 1.25, 0.21, 0.94, 4.1, 0.76, 1.29, 630.0],
]
CONCURRENCY: tuple[int, ...] = (1, 8, 64)
PACKAGES = ("infra", "drift", "workflows", "serving")
ROWS: tuple[int, ...] = (1, 64)

WRK_SCRIPT = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
local bad = 0
response = function(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.stderr:write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
"""


BARE_APP = """
import sys
from typing import Any

import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.post("/invocations")
async def invocations(payload: dict[str, Any]) -> dict[str, list[int]]:
    return {"predictions": [0]}


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""
"""A bare FastAPI app in the framework's usual style, doing no work: the JSON body parsed into a
dict, a constant answer serialized by FastAPI, no model. The issue's throughput targets are ratios
to it ("no-op ceiling")."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def wait_settled(url: str, timeout: float = 120) -> None:
    """Wait until the model's ``predict_path`` (``/v2/models/{name}`` parameters) no longer says it is
    loading (a server without that parameter is settled once ready)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=5) as response:
            path = str(json.load(response).get("parameters", {}).get("predict_path", ""))
        if "loading" not in path:
            return
        time.sleep(0.5)
    raise RuntimeError(f"{url}: predict_path still loading after {timeout}s")


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            children = []
        todo.extend(int(c) for c in children)
    return found


def cpu_seconds(pid: int) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / ticks


def rss_mib(pid: int) -> float:
    total = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


@dataclass
class Result:
    server: str
    rows: int
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float
    rss_mib: float
    errors: int


def run_wrk(url: str, body: Path, script: Path, concurrency: int, seconds: float, core: int) -> dict[str, int]:
    cmd = ["taskset", "-c", str(core), "wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--latency",
           "--timeout", "10s", "-s", str(script), url]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "BENCH_BODY": str(body)})
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stdout}{result.stderr}")
    line = next(line for line in result.stderr.splitlines() if line.startswith("{"))
    parsed: dict[str, int] = json.loads(line)
    return parsed


def measure(servers: list[tuple[str, str, int]], bodies: dict[int, Path], script: Path, seconds: float,
            client_core: int) -> list[Result]:
    """Each payload and concurrency, the servers (name, url, pid) one after the other."""
    results = []
    for rows in ROWS:
        for concurrency in CONCURRENCY:
            for name, url, pid in servers:
                run_wrk(url, bodies[rows], script, concurrency, min(2.0, seconds), client_core)  # warm up
                before = cpu_seconds(pid)
                stats = run_wrk(url, bodies[rows], script, concurrency, seconds, client_core)
                used = cpu_seconds(pid) - before
                requests = max(stats["requests"], 1)
                result = Result(
                    server=name, rows=rows, concurrency=concurrency,
                    rps=stats["requests"] / (stats["duration_us"] / 1e6),
                    p50_ms=stats["p50_us"] / 1000, p99_ms=stats["p99_us"] / 1000,
                    cpu_ms_per_request=used * 1000 / requests, rss_mib=rss_mib(pid),
                    errors=stats["non2xx"] + stats["socket_errors"],
                )
                print(f"  {name:<7} rows={rows:<3} c={concurrency:<3} {result.rps:9.1f} req/s  "
                      f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  "
                      f"cpu {result.cpu_ms_per_request:6.3f} ms/req  rss {result.rss_mib:6.0f} MiB"
                      + (f"  errors {result.errors}" if result.errors else ""), file=sys.stderr, flush=True)
                results.append(result)
    return results


def table(results: list[Result]) -> str:
    lines = [
        "| rows | conc | server | req/s | p50 ms | p99 ms | CPU ms/req | RSS MiB | errors |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for rows in ROWS:
        for concurrency in CONCURRENCY:
            for r in results:
                if r.rows == rows and r.concurrency == concurrency:
                    lines.append(f"| {rows} | {concurrency} | {r.server} | {r.rps:.0f} | {r.p50_ms:.2f} | "
                                 f"{r.p99_ms:.2f} | {r.cpu_ms_per_request:.3f} | {r.rss_mib:.0f} | {r.errors} |")
    return "\n".join(lines)


def verdict(results: list[Result]) -> str:
    def get(server: str, rows: int, c: int) -> Result | None:
        return next((r for r in results if (r.server, r.rows, r.concurrency) == (server, rows, c)), None)

    checks: list[tuple[str, bool]] = []
    ours1, ours64 = get("mlops", 1, 1), get("mlops", 1, 64)
    bare1, bare64 = get("bare", 1, 1), get("bare", 1, 64)
    theirs1, theirs64 = get("mlflow", 1, 1), get("mlflow", 1, 64)
    before1, before64 = get("before", 1, 1), get("before", 1, 64)
    if ours1 and bare1:
        checks.append((f"1-row c=1 throughput {ours1.rps / bare1.rps:.0%} of bare FastAPI's (target >= 70%)"
                       + (f"; before: {before1.rps / bare1.rps:.0%}" if before1 else ""),
                       ours1.rps >= 0.7 * bare1.rps))
    if ours64 and bare64:
        checks.append((f"1-row c=64 throughput {ours64.rps / bare64.rps:.0%} of bare FastAPI's (reference: 164%)"
                       + (f"; before: {before64.rps / bare64.rps:.0%}" if before64 else ""), True))
    if ours64 and before64:
        checks.append((f"1-row c=64 throughput {ours64.rps / before64.rps:.0%} of before's (target >= 95%)",
                       ours64.rps >= 0.95 * before64.rps))
    if ours64 and theirs64:
        checks += [
            (f"1-row c=64 throughput {ours64.rps / theirs64.rps:.1f}x mlflow (target >= 5x)",
             ours64.rps >= 5 * theirs64.rps),
            (f"1-row c=64 CPU/request {ours64.cpu_ms_per_request / theirs64.cpu_ms_per_request:.2f} of mlflow's "
             "(target <= 0.25)", ours64.cpu_ms_per_request <= 0.25 * theirs64.cpu_ms_per_request),
        ]
    if ours64:
        checks.append((f"1-row c=64 p99 {ours64.p99_ms:.1f} ms (target <= 50 ms)", ours64.p99_ms <= 50))
    if ours1 and theirs1:
        checks.append((f"1-row c=1 p50 {ours1.p50_ms:.2f} ms vs mlflow {theirs1.p50_ms:.2f} ms (target: no worse)",
                       ours1.p50_ms <= theirs1.p50_ms))
    for rows in ROWS:  # a restarted pod (warm cache) against the one that downloaded the version
        for c in CONCURRENCY:
            cached, downloaded = get("cached", rows, c), get("mlops", rows, c)
            if cached and downloaded:
                checks.append((f"{rows}-row c={c} throughput of the cached start {cached.rps / downloaded.rps:.0%} "
                               "of the downloading one's (target >= 95%)", cached.rps >= 0.95 * downloaded.rps))
    return "\n".join(f"[{'ok' if passed else 'MISS'}] {text}" for text, passed in checks)


def main() -> int:
    global CONCURRENCY, ROWS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement (default 10)")
    parser.add_argument("--server-core", type=int, default=0, help="CPU the servers are pinned to")
    parser.add_argument("--client-core", type=int, default=1, help="CPU wrk is pinned to")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--before", help="another checkout whose mlops_serving is measured too (e.g. main)")
    parser.add_argument("--cached", action="store_true", help="also a server started from a warm model cache")
    parser.add_argument("--no-mlflow", action="store_true", help="leave out `mlflow models serve`")
    parser.add_argument("--concurrency", default=",".join(map(str, CONCURRENCY)),
                        help="comma-separated connection counts (default %(default)s)")
    parser.add_argument("--rows", default=",".join(map(str, ROWS)), help="comma-separated rows per request "
                        "(default %(default)s)")
    args = parser.parse_args()
    CONCURRENCY = tuple(int(c) for c in args.concurrency.split(","))
    ROWS = tuple(int(r) for r in args.rows.split(","))
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            print(f"error: {tool} is not installed (apt-get install {tool})", file=sys.stderr)
            return 2
    bin_dir = Path(sys.executable).parent
    workdir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    home = workdir / ".mlops"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_", "AWS_"))}
    env.update(MLOPS_HOME=str(home), MLFLOW_DISABLE_TELEMETRY="true", PYTHONUNBUFFERED="1")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        print(f"training {MODEL} in {workdir} ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "mlops_workflows.cli", "train", "--config", str(WINE_CONFIG)],
                       cwd=workdir, env=env, check=True, capture_output=True)
        script = workdir / "post.lua"
        script.write_text(WRK_SCRIPT)
        bodies = {}
        for rows in ROWS:
            data = [WINE_ROWS[i % len(WINE_ROWS)] for i in range(rows)]
            bodies[rows] = workdir / f"body-{rows}.json"
            bodies[rows].write_text(json.dumps({"dataframe_split": {"columns": FEATURES, "data": data}}))

        core = str(args.server_core)
        servers: list[tuple[str, str, int]] = []  # name, prediction URL, pid
        waits: list[tuple[str, subprocess.Popen[bytes]]] = []

        def mlops(name: str, source: Path | None, cache: str | None = None) -> subprocess.Popen[bytes]:
            port = free_port()
            run_env = {**env, "MLOPS_SERVING_MODELS": f"{MODEL}:1", "MLOPS_SERVING_AUTH": "off",
                       "MLOPS_SERVING_PORT": str(port), "MLOPS_SERVING_LOG_LEVEL": "INFO",
                       "MLOPS_SERVING_MODEL_CACHE_DIR": str(workdir / f"cache-{cache or name}")}
            if source is not None:
                run_env["PYTHONPATH"] = os.pathsep.join(str(source / p) for p in PACKAGES)
            proc = subprocess.Popen(
                ["taskset", "-c", core, sys.executable, "-m", "mlops_serving"], cwd=workdir, env=run_env,
                stdout=(workdir / f"{name}.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
            )
            procs.append(proc)
            servers.append((name, f"http://127.0.0.1:{port}/invocations", proc.pid))
            waits.append((f"http://127.0.0.1:{port}/readyz", proc))
            return proc

        if args.cached:  # a first server fills the cache (and its compiled forest), then stops: a restart
            filler = mlops("filler", None, cache="cached")
            wait_ready(waits.pop()[0], filler)
            servers.pop()
            os.killpg(filler.pid, signal.SIGTERM)
            filler.wait(60)
            mlops("cached", None)
        mlops("mlops", None)
        if args.before:
            mlops("before", Path(args.before))
        if not args.no_mlflow:
            mlflow_port = free_port()
            theirs = subprocess.Popen(
                ["taskset", "-c", core, str(bin_dir / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}/1",
                 "--env-manager", "local", "--workers", "1", "-h", "127.0.0.1", "-p", str(mlflow_port)],
                cwd=workdir, env={**env, "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
                                  "PATH": f"{bin_dir}:{env.get('PATH', '')}"},
                stdout=(workdir / "mlflow.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
            )
            procs.append(theirs)
            servers.append(("mlflow", f"http://127.0.0.1:{mlflow_port}/invocations", theirs.pid))
            waits.append((f"http://127.0.0.1:{mlflow_port}/ping", theirs))
        bare_port = free_port()
        (workdir / "bare_app.py").write_text(BARE_APP)
        bare = subprocess.Popen(
            ["taskset", "-c", core, sys.executable, str(workdir / "bare_app.py"), str(bare_port)], cwd=workdir,
            env=env, stdout=(workdir / "bare.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        procs.append(bare)
        servers.append(("bare", f"http://127.0.0.1:{bare_port}/invocations", bare.pid))
        waits.append((f"http://127.0.0.1:{bare_port}/docs", bare))
        for url, proc in waits:
            wait_ready(url, proc)
        for name, url, _pid in servers:  # a cached start loads the estimator after ready: let it settle
            if name in ("mlops", "cached", "before"):
                wait_settled(url.replace("/invocations", f"/v2/models/{MODEL}"))
        print(f"{len(servers)} servers up (server core {core}, wrk core {args.client_core}); "
              f"{args.duration:g}s per measurement", file=sys.stderr, flush=True)
        results = measure(servers, bodies, script, args.duration, args.client_core)
        print(table(results))
        print()
        print(verdict(results))
        return 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
