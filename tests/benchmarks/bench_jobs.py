"""Benchmark (a script, not a test): the fixed costs of the `mlops` jobs, each a cold process.

    hack/bench-jobs.sh [--runs N] [--rows N] [--workdir DIR] [--baseline CHECKOUT]

For each command, min/median/max wall time over ``--runs`` cold processes (a new interpreter
each, as every Argo Workflows step is), on one warm embedded store:

- ``mlops train`` on the wine config, next to ``reference_train.py``: the same work written by
  hand the naive way (same artifacts, same tags, same alias; checked after the runs and printed).
  Targets: train <= 0.35x the reference and <= 4 s;
- ``mlops batch-predict`` and ``mlops drift`` on ``--rows`` rows, next to the same job run
  in-process a second time (its work without start-up: imports, store set-up). Target: the cold
  command <= 2 s beyond that work;
- ``mlops promote --to staging --dry-run`` on a local Git remote (all gates pass; target <= 2 s);
- ``mlops --help`` and an argument error (target <= 0.3 s), next to a bare interpreter.

``--baseline CHECKOUT`` (e.g. ``git worktree add`` or ``git archive main | tar -x -C DIR``) also
runs every command with that checkout's packages first on ``PYTHONPATH`` ("before"), on the same
store, interleaved run by run with this checkout's ("after"), so that both columns share the
machine's load. The reference script is this checkout's in both (it imports only the baseline
statistics from the project).

The per-phase lines `mlops train` prints (``[i/7] t s``) are shown for its last run. Bytecode is
cached as in an installed package (PYTHONDONTWRITEBYTECODE is dropped for the children). The
machine may be shared: compare ratios, figures in one run are measured side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Timed = tuple[float, "subprocess.CompletedProcess[str]"]

REPO = Path(__file__).resolve().parents[2]
WINE_CONFIG = REPO / "workflows" / "models" / "wine-classifier.yaml"
MODEL = "wine-classifier"


PACKAGE_DIRS = ("infra", "drift", "workflows", "serving")
"""Where a checkout keeps its import packages (pyproject's wheel packages)."""


class Runner:
    def __init__(self, workdir: Path, checkout: Path | None = None) -> None:
        self.workdir = workdir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLOPS_", "AWS_"))}
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env["MLOPS_HOME"] = str(workdir / ".mlops")
        self.env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        self.last_cpu = 0.0
        if checkout is not None:
            self.env["PYTHONPATH"] = os.pathsep.join(str(checkout / d) for d in PACKAGE_DIRS)

    def run(self, args: list[str], ok: tuple[int, ...] = (0,), **env: str) -> Timed:
        """Wall time of one child process; its CPU time (user + system) is left in ``last_cpu``."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(args, cwd=self.workdir, env={**self.env, **env}, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.last_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if done.returncode not in ok:
            raise SystemExit(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return elapsed, done

    def mlops(self, *args: str, ok: tuple[int, ...] = (0,), **env: str) -> Timed:
        return self.run([sys.executable, "-m", "mlops_workflows.cli", *args], ok=ok, **env)


def _stats(times: list[float]) -> dict[str, float]:
    return {"min": min(times), "median": statistics.median(times), "max": max(times)}


def _repeat(runs: int, call: Callable[[], tuple[float, Any]]) -> tuple[list[float], Any]:
    times, last = [], None
    for _ in range(runs):
        elapsed, last = call()
        times.append(elapsed)
    return times, last


def _input(path: Path, rows: int, with_id: bool) -> None:
    import numpy as np
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.drop(columns="target")
    frame.columns = [str(c).replace("/", "_") for c in frame.columns]
    sample = frame.sample(rows, replace=True, random_state=0).reset_index(drop=True)
    sample = sample * np.random.default_rng(0).normal(1.0, 0.02, size=sample.shape)
    if with_id:
        sample.insert(0, "id", np.arange(rows, dtype=np.int64))
    sample.to_parquet(path)


def _model_files(home: Path, version: Any, registry: Any) -> dict[str, Any]:
    """What the registry holds for a version: tag names, run artifacts, model files (aliases move: the last
    training run with a passed gate holds `candidate`)."""
    run = registry.get_run(version.run_id)
    artifacts = sorted(
        p.relative_to(home / "artifacts").parts[2:]
        for p in (home / "artifacts").rglob("*")
        if p.is_file() and run.info.run_id in str(p)
    )
    model_dir = next((home / "artifacts" / "models").glob(f"{version.source.rsplit('/', 1)[-1]}/artifacts"))
    return {
        "tags": sorted(version.tags),
        "run artifacts": ["/".join(a) for a in artifacts],
        "model files": sorted(p.name for p in model_dir.iterdir()),
        "requirements": (model_dir / "requirements.txt").read_text().split(),
        "dataset inputs": len(run.inputs.dataset_inputs),
    }


def _compare_train(runner: Runner, mlops_version: str, reference_version: str) -> dict[str, Any]:
    os.environ["MLOPS_HOME"] = runner.env["MLOPS_HOME"]
    from mlops_platform.registry import Registry
    from mlops_platform.settings import PlatformSettings

    registry = Registry(PlatformSettings())
    home = Path(runner.env["MLOPS_HOME"]).resolve()
    ours = _model_files(home, registry.get_version(MODEL, mlops_version), registry)
    theirs = _model_files(home, registry.get_version(MODEL, reference_version), registry)
    differences = {k: {"mlops": ours[k], "reference": theirs[k]} for k in ours if ours[k] != theirs[k]}
    return {"same": sorted(k for k in ours if k not in differences), "differences": differences}


def _in_process_work(batch_in: Path, drift_in: Path, out: Path) -> dict[str, float]:
    """The batch and drift jobs' own work: each run in this process twice, the second timed (run by
    ``--measure-work`` in a child with the side's packages and store)."""
    from mlops_platform.tables import Shard
    from mlops_workflows.jobs.batch.job import BatchRequest, run_batch
    from mlops_workflows.jobs.batch.settings import BatchSettings
    from mlops_workflows.jobs.drift.job import DriftRequest, run_drift
    from mlops_workflows.jobs.drift.settings import DriftSettings

    batch = BatchRequest(
        model=MODEL,
        version=None,
        alias="candidate",
        input_uri=str(batch_in),
        output_uri=str(out),
        id_column="id",
        shard=Shard(1, 1),
        invalid_rows=None,
        overwrite=True,
        chunk_rows=None,
    )
    drift = DriftRequest(
        model=MODEL,
        version=None,
        alias="candidate",
        since=None,
        until=None,
        last=None,
        input_uri=str(drift_in),
        report_dir=None,
        psi_warn=None,
        psi_alert=None,
        min_rows=None,
    )
    work: dict[str, float] = {}
    for name, call in (
        ("batch-predict", lambda: run_batch(BatchSettings(), batch)),
        ("drift", lambda: run_drift(DriftSettings(), drift)),
    ):
        call()
        start = time.perf_counter()
        call()
        work[name] = time.perf_counter() - start
    return work


def _measure_work(runner: Runner, batch_in: Path, drift_in: Path) -> dict[str, float]:
    _, done = runner.run(
        [sys.executable, __file__, "--measure-work", str(batch_in), str(drift_in), str(runner.workdir / "scores-work")]
    )
    work: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return work


def _interleaved(
    runs: int, sides: dict[str, Runner], call: Callable[[Runner], Timed], cpu: dict[str, list[float]] | None = None
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """``runs`` rounds; each round runs ``call`` once per side, in turn. Wall times are returned,
    CPU times (user + system) appended to ``cpu`` by side."""
    times: dict[str, list[float]] = {side: [] for side in sides}
    last: dict[str, Any] = {}
    for _ in range(runs):
        for side, runner in sides.items():
            elapsed, last[side] = call(runner)
            times[side].append(elapsed)
            if cpu is not None:
                cpu.setdefault(side, []).append(runner.last_cpu)
    return times, last


def main() -> int:
    if sys.argv[1:2] == ["--measure-work"]:
        batch_in, drift_in, out = (Path(a) for a in sys.argv[2:5])
        print(json.dumps(_in_process_work(batch_in, drift_in, out)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="cold runs per command (default 3)")
    parser.add_argument("--rows", type=int, default=5000, help="rows for batch-predict and drift (default 5000)")
    parser.add_argument("--workdir", type=Path, help="keep the store and data here (default: a temp dir)")
    parser.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                        help="another checkout of the project, measured side by side ('before')")
    args = parser.parse_args()
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="bench-jobs-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    sides = {"after": Runner(workdir)}
    if args.baseline is not None:
        sides = {"before": Runner(workdir, args.baseline.resolve()), **sides}
    runner = sides["after"]
    config = str(WINE_CONFIG)
    reference = [sys.executable, str(REPO / "tests/benchmarks/reference_train.py"), config]
    results: dict[str, Any] = {"runs": args.runs, "rows": args.rows, "workdir": str(workdir),
                               "baseline": str(args.baseline) if args.baseline else None}

    # Each training run gets its own random_state (the same work, another config digest), so that none is
    # skipped as "already registered", also when the bench runs again on a kept --workdir.
    counter = iter(range(time.time_ns() // 1000 % 10**9, 2**31))

    def train(side: Runner) -> Timed:
        return side.mlops("train", "--config", config, "--set", f"estimator.params.random_state={next(counter)}")

    # Warm the store (schema, experiment, registered model) and the bytecode caches.
    for warm in sides.values():
        train(warm)
    runner.run(reference)

    table: dict[str, dict[str, list[float]]] = {}

    cpu: dict[str, dict[str, list[float]]] = {}

    def row(name: str, call: Callable[[Runner], Timed]) -> None:
        table[name], _ = _interleaved(args.runs, sides, call, cpu.setdefault(name, {}))

    # Rounds of: each side's `mlops train`, then the reference script (same load for all three).
    trains: dict[str, list[float]] = {side: [] for side in sides}
    references: list[float] = []
    reference_cpu: list[float] = []
    done: dict[str, Any] = {}
    for _ in range(args.runs):
        for side, side_runner in sides.items():
            elapsed, done[side] = train(side_runner)
            trains[side].append(elapsed)
            cpu.setdefault("mlops train", {}).setdefault(side, []).append(side_runner.last_cpu)
        elapsed, done_ref = runner.run(reference)
        references.append(elapsed)
        reference_cpu.append(runner.last_cpu)
    table["mlops train"] = trains
    table["reference train script"] = dict.fromkeys(sides, references)
    cpu["reference train script"] = dict.fromkeys(sides, reference_cpu)
    results["train phases (last run)"] = {
        side: [line for line in d.stderr.splitlines() if line.startswith("[")] for side, d in done.items()
    }
    mlops_version = done["after"].stdout.split(" v", 1)[1].split()[0]
    reference_version = done_ref.stdout.split(" v", 1)[1].split()[0]
    # The reference took 'candidate' last: give it back to an mlops version for the jobs below.
    train(runner)

    batch_in, drift_in = workdir / "batch-input.parquet", workdir / "drift-input.parquet"
    _input(batch_in, args.rows, with_id=True)
    _input(drift_in, args.rows, with_id=False)
    out = workdir / "scores"
    batch_key, drift_key = f"mlops batch-predict ({args.rows} rows)", f"mlops drift ({args.rows} rows)"
    row(
        batch_key,
        lambda side: side.mlops(
            "batch-predict", MODEL, "--alias", "candidate", "--input", str(batch_in), "--output", str(out),
            "--id-column", "id", "--overwrite",
        ),
    )
    row(drift_key, lambda side: side.mlops("drift", MODEL, "--alias", "candidate", "--input", str(drift_in),
                                           ok=(0, 10)))

    sys.path.insert(0, str(REPO / "tests"))
    from support.promote import make_gitops

    gitops = make_gitops(workdir / "gitops")
    row(
        "mlops promote --to staging --dry-run",
        lambda side: side.mlops(
            "promote", MODEL, "--to", "staging", "--dry-run",
            MLOPS_PROMOTE_REPO_PATH=str(gitops.clone), MLOPS_PROMOTE_REPOSITORY="example/gitops",
        ),
    )
    row("mlops --help", lambda side: side.mlops("--help"))
    row("mlops train (argument error)", lambda side: side.mlops("train", ok=(2,)))
    row("bare interpreter", lambda side: side.run([sys.executable, "-c", "pass"]))

    work = {side: _measure_work(r, batch_in, drift_in) for side, r in sides.items()}
    results["in-process work (s)"] = {side: {k: round(v, 3) for k, v in w.items()} for side, w in work.items()}
    stats = {name: {side: _stats(t) for side, t in by_side.items()} for name, by_side in table.items()}
    results["train / reference (median)"] = {
        side: round(stats["mlops train"][side]["median"] / stats["reference train script"][side]["median"], 3)
        for side in sides
    }
    for name, key in (("batch-predict", batch_key), ("drift", drift_key)):
        results[f"{name} beyond its work (median, s)"] = {
            side: round(stats[key][side]["median"] - work[side][name], 3) for side in sides
        }
    os.environ["MLOPS_HOME"] = runner.env["MLOPS_HOME"]
    results["train: mlops vs reference registry result"] = _compare_train(runner, mlops_version, reference_version)

    width = max(map(len, table))
    header = "".join(f"  {side + ' min/median/max s':>26}" for side in sides)
    print(f"{'command':<{width}}{header}" + ("  after/before" if len(sides) > 1 else ""))
    for name, by_side_stats in stats.items():
        cells = "".join(f"  {r['min']:8.2f} {r['median']:8.2f} {r['max']:8.2f}" for r in by_side_stats.values())
        ratio = (f"  {by_side_stats['after']['median'] / by_side_stats['before']['median']:12.2f}"
                 if len(sides) > 1 else "")
        print(f"{name:<{width}}{cells}{ratio}")
    print(f"\n{'CPU s (user + system), median':<{width}}" + "".join(f"  {side:>10}" for side in sides))
    for name, by_side in cpu.items():
        print(f"{name:<{width}}" + "".join(f"  {statistics.median(by_side[side]):10.2f}" for side in sides))
    results["cpu s (median)"] = {name: {side: round(statistics.median(v), 3) for side, v in by_side.items()}
                                 for name, by_side in cpu.items()}
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
