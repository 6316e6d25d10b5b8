"""Benchmark: cold start, from process start to the first successful prediction, in one run.

Not a test (no assertions on timing). It starts an ``mlflow server`` (SQLite store, artifacts
proxied over HTTP, so every download really goes over the network stack), trains wine-classifier
into it, and then starts each server cold ``--rounds`` times, the servers taking turns within
each round so that a change of the machine's load hits all of them alike:

- ``bare FastAPI``: a one-route FastAPI app under uvicorn (the floor of any Python server);
- ``mlops (cached)``: ``python -m mlops_serving`` with the version already in its model cache;
- ``mlops (download)``: the same with an empty cache (registry, download, load), as a new pod;
- ``mlflow models serve``: ``--env-manager local``, same version (it downloads every time);
- with ``--before DIR``: ``python -m mlops_serving`` from the packages of another checkout (e.g.
  the main branch), empty cache, for a before/after in the same run.

Before the first start, ``python -m mlops_serving.skopstypes`` stores skops' trusted-type names
in the package, as the image build does. Each start is timed until ``POST /invocations`` answers
200 (readiness polled every 20 ms first). Prints min/median/max wall time per server as a
Markdown table, and the median CPU time the
server's processes used until then (on a shared machine the wall time grows with the others'
load; the CPU time hardly does).

    python tests/benchmarks/bench_coldstart.py [--rounds 5] [--before /path/to/checkout]

Needs the dev virtualenv (full mlflow for the tracking server and the peer).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WINE_CONFIG = REPO / "workflows" / "models" / "wine-classifier.yaml"
MODEL = "wine-classifier"
PACKAGES = ("infra", "drift", "workflows", "serving")
FEATURES = [
    "alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols", "flavanoids",
    "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue", "od280_od315_of_diluted_wines", "proline",
]
BODY = json.dumps({"dataframe_split": {"columns": FEATURES, "data": [
    [14.23, 1.71, 2.43, 15.6, 127.0, 2.8, 3.06, 0.28, 2.29, 5.64, 1.04, 3.92, 1065.0]]}}).encode()

BARE_APP = '''
import sys
import uvicorn
from fastapi import FastAPI, Request

app = FastAPI()


@app.post("/invocations")
async def invocations(request: Request) -> dict[str, list[int]]:
    await request.body()
    return {"predictions": [0]}


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str, body: bytes | None = None) -> bool:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


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
    """utime + stime of ``pid``'s process tree: unlike wall time, hardly inflated by other load."""
    total = 0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def time_to_first_prediction(argv: list[str], env: dict[str, str], port: int, ready_path: str | None,
                             log: Path, timeout: float = 300) -> tuple[float, float]:
    """Seconds from spawning ``argv`` to the first 200 of ``POST /invocations``, and the CPU
    seconds the server used until then; stops the server."""
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while time.monotonic() - started < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[:4]} exited with {proc.returncode}; see {log}")
            if (ready_path is None or answers(base + ready_path)) and answers(base + "/invocations", BODY):
                return time.monotonic() - started, cpu_seconds(proc.pid)
            time.sleep(0.02)
        raise RuntimeError(f"{argv[:4]} did not answer within {timeout}s; see {log}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class Contender:
    name: str
    start: Callable[[int], tuple[float, float]]
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="cold starts per server (default 5)")
    parser.add_argument("--before", help="another checkout whose mlops_serving is measured too (e.g. main)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    workdir = Path(tempfile.mkdtemp(prefix="bench-coldstart-"))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_", "AWS_"))}
    base_env.update(MLFLOW_DISABLE_TELEMETRY="true", PYTHONUNBUFFERED="1", PATH=f"{bin_dir}:{base_env.get('PATH', '')}")
    tracking_port = free_port()
    tracking_uri = f"http://127.0.0.1:{tracking_port}"
    tracking = subprocess.Popen(
        [str(bin_dir / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
         "--serve-artifacts", "--artifacts-destination", str(workdir / "mlartifacts"), "--host", "127.0.0.1",
         "--port", str(tracking_port), "--workers", "1"],
        cwd=workdir, env={**base_env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=(workdir / "mlflow-server.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not answers(tracking_uri + "/health"):
            if tracking.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start; see {workdir / 'mlflow-server.log'}")
            time.sleep(0.2)
        env = {**base_env, "MLFLOW_TRACKING_URI": tracking_uri, "MLOPS_HOME": str(workdir / ".mlops")}
        print(f"training {MODEL} into {tracking_uri} ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "mlops_workflows.cli", "train", "--config", str(WINE_CONFIG)],
                       cwd=workdir, env=env, check=True, capture_output=True)

        # What the image build does (serving/Dockerfile): store skops' trusted-type names once.
        subprocess.run([sys.executable, "-m", "mlops_serving.skopstypes"], env=base_env, check=True,
                       capture_output=True)
        serving_env = {**env, "MLOPS_SERVING_MODELS": f"{MODEL}:1", "MLOPS_SERVING_AUTH": "off",
                       "MLOPS_SERVING_LOG_LEVEL": "WARNING", "MLOPS_SERVING_PREDLOG_SAMPLE_RATE": "0"}
        warm_cache = workdir / "cache-warm"
        counter = iter(range(1_000_000))

        def mlops(cache: Callable[[], Path], source: Path = REPO) -> Callable[[int], tuple[float, float]]:
            def start(port: int) -> tuple[float, float]:
                pythonpath = os.pathsep.join(str(source / p) for p in PACKAGES)
                run_env = {**serving_env, "MLOPS_SERVING_PORT": str(port), "PYTHONPATH": pythonpath,
                           "MLOPS_SERVING_MODEL_CACHE_DIR": str(cache())}
                return time_to_first_prediction([sys.executable, "-m", "mlops_serving"], run_env, port,
                                                "/readyz", workdir / "mlops.log")
            return start

        def bare(port: int) -> tuple[float, float]:
            script = workdir / "bare_app.py"
            script.write_text(BARE_APP)
            return time_to_first_prediction([sys.executable, str(script), str(port)], base_env, port, None,
                                            workdir / "bare.log")

        def peer(port: int) -> tuple[float, float]:
            argv = [str(bin_dir / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}/1", "--env-manager", "local",
                    "--workers", "1", "-h", "127.0.0.1", "-p", str(port)]
            return time_to_first_prediction(argv, env, port, "/ping", workdir / "mlflow-serve.log")

        contenders = [
            Contender("bare FastAPI", bare),
            Contender("mlops (cached)", mlops(lambda: warm_cache)),
            Contender("mlops (download)", mlops(lambda: workdir / f"cache-{next(counter)}")),
            Contender("mlflow models serve", peer),
        ]
        if args.before:
            contenders.append(Contender(f"mlops before ({args.before})",
                                        mlops(lambda: workdir / f"cache-{next(counter)}", Path(args.before))))
        print("warming the cache and the OS page cache (one start each, not counted) ...", file=sys.stderr, flush=True)
        for contender in contenders:
            contender.start(free_port())
        for round_ in range(1, args.rounds + 1):
            for contender in contenders:
                seconds, cpu = contender.start(free_port())
                contender.times.append(seconds)
                contender.cpu.append(cpu)
                print(f"  round {round_}: {contender.name:<28} {seconds:6.2f} s  (CPU {cpu:5.2f} s)", file=sys.stderr,
                      flush=True)
        print(f"\ncold start to the first successful prediction, {args.rounds} rounds, load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")
        print("| server | min s | median s | max s | median CPU s |")
        print("|---|---:|---:|---:|---:|")
        for c in contenders:
            print(f"| {c.name} | {min(c.times):.2f} | {statistics.median(c.times):.2f} | {max(c.times):.2f} | "
                  f"{statistics.median(c.cpu):.2f} |")
        bare_median = statistics.median(contenders[0].times)
        print()
        for c in contenders[1:]:
            print(f"{c.name}: median {statistics.median(c.times) / bare_median:.1f}x bare FastAPI")
        return 0
    finally:
        if tracking.poll() is None:
            os.killpg(tracking.pid, signal.SIGTERM)
            try:
                tracking.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(tracking.pid, signal.SIGKILL)
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
