"""Benchmark (a script, not a test): batch inference and drift detection on 1M rows.

    hack/bench-batch-drift.sh [--rows N] [--workdir DIR]

1. ``mlops batch-predict`` rows/s against raw in-process ``model.predict`` rows/s on the same
   rows (target: at least 80% of raw). The batch figure is the whole job as `run_batch` runs it:
   listing, reading Parquet by row group, validation, predict, writing and committing the output,
   recording the MLflow run; model loading (timed by the job) is left out, as it is of the raw
   figure, and shown separately, as is the CLI's wall time (interpreter start included).
2. Drift over the same rows × 13 features: the comparison itself (PSI, KS, out-of-range,
   missing rates, prediction PSI and chi-square), and reading the input file plus comparing
   (target: under 2 s).

Figures are printed as JSON. The wine-classifier is trained into ``<workdir>/.mlops`` first if the
work directory holds no model yet.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
MODEL = "wine-classifier"


def _mlops(*args: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLOPS_HOME": str(workdir / ".mlops")}
    return subprocess.run([sys.executable, "-m", "mlops_workflows.cli", *args], cwd=workdir, env=env,
                          capture_output=True, text=True)


def _input(path: Path, rows: int) -> pd.DataFrame:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.drop(columns="target")
    frame.columns = [str(c).replace("/", "_") for c in frame.columns]
    rng = np.random.default_rng(0)
    sample = frame.sample(rows, replace=True, random_state=0).reset_index(drop=True)
    sample = sample * rng.normal(1.0, 0.02, size=sample.shape)  # not 178 distinct rows repeated
    sample.insert(0, "id", np.arange(rows, dtype=np.int64))
    sample.to_parquet(path, row_group_size=100_000)
    return sample


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, help="keep the store and data here (default: a temp dir)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-batch-drift-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["MLOPS_HOME"] = str(workdir / ".mlops")

    from mlops_drift.baseline import BASELINE_ARTIFACT, BaselineStatistics
    from mlops_drift.report import Thresholds, build_report
    from mlops_platform.registry import Registry
    from mlops_workflows.jobs.batch.job import BatchRequest, run_batch
    from mlops_workflows.jobs.batch.settings import BatchSettings
    from mlops_workflows.jobs.drift.job import read_input
    from mlops_workflows.jobs.drift.settings import DriftSettings

    settings = BatchSettings()
    registry = Registry(settings)
    if registry.version_by_alias(MODEL, "candidate") is None and not registry.list_models():
        trained = _mlops("train", "--config", str(REPO / "workflows/models/wine-classifier.yaml"), workdir=workdir)
        if trained.returncode != 0:
            print(trained.stdout + trained.stderr, file=sys.stderr)
            return 1
    version = registry.list_versions(MODEL)[-1]
    data = workdir / "input.parquet"
    frame = _input(data, args.rows)
    features = [c for c in frame.columns if c != "id"]
    figures: dict[str, Any] = {"rows": args.rows, "features": len(features), "cpus": os.cpu_count()}

    # 1. raw in-process predict on the rows as a float64 matrix (best of 2)
    estimator = registry.load_sklearn_model(MODEL, version.version)
    matrix = frame[features].to_numpy(dtype=np.float64)
    raw = []
    for _ in range(2):
        started = time.perf_counter()
        estimator.predict(matrix)
        raw.append(time.perf_counter() - started)
    figures["raw_predict_s"] = round(min(raw), 3)
    figures["raw_predict_rows_per_s"] = round(args.rows / min(raw))
    del matrix

    # batch job in-process (model loaded once, as the raw figure), best of 2
    from mlops_serving.runtime import load_model  # noqa: F401  (imported before timing)

    batch = []
    for attempt in range(2):
        request = BatchRequest(model=MODEL, version=int(version.version), input_uri=str(data),
                               output_uri=str(workdir / f"out-{attempt}"), id_column="id", overwrite=True)
        started = time.perf_counter()
        result = run_batch(settings, request, registry=registry)
        batch.append((time.perf_counter() - started, result))
    best, result = min(batch, key=lambda item: item[0] - item[1].load_s)
    figures["batch_job_s"] = round(best, 3)
    figures["batch_model_load_s"] = round(result.load_s, 3)
    figures["batch_rows_per_s"] = round(result.rows_read / (best - result.load_s))
    figures["batch_vs_raw"] = round(figures["batch_rows_per_s"] / figures["raw_predict_rows_per_s"], 3)
    figures["batch_rows_per_s_with_model_load"] = round(result.rows_read / best)
    figures["batch_rows_predicted"] = result.rows_predicted

    started = time.perf_counter()
    cli = _mlops("batch-predict", MODEL, "--version", str(version.version), "--input", str(data),
                 "--output", str(workdir / "out-cli"), "--id-column", "id", "--overwrite", workdir=workdir)
    figures["batch_cli_wall_s"] = round(time.perf_counter() - started, 3)
    if cli.returncode != 0:
        print(cli.stdout + cli.stderr, file=sys.stderr)
        return 1

    # 2. drift over the same rows
    baseline = BaselineStatistics.model_validate(registry.load_run_json(version.run_id, BASELINE_ARTIFACT))
    values = {name: frame[name].to_numpy(dtype=np.float64) for name in baseline.feature_names}
    predictions = pd.read_parquet(workdir / "out-0")["prediction"].astype(str).to_numpy()
    compare = []
    for _ in range(3):
        started = time.perf_counter()
        report = build_report(baseline, values, predictions, model=MODEL, version=str(version.version),
                              thresholds=Thresholds(), min_rows=500, source=str(data))
        compare.append(time.perf_counter() - started)
    figures["drift_compare_s"] = round(min(compare), 3)
    figures["drift_status"] = report.status
    drift_settings = DriftSettings()
    started = time.perf_counter()
    rows = read_input(drift_settings, str(data), list(baseline.feature_names))
    build_report(baseline, rows.features, rows.predictions, model=MODEL, version=str(version.version),
                 thresholds=Thresholds(), min_rows=500, source=str(data))
    figures["drift_read_and_compare_s"] = round(time.perf_counter() - started, 3)
    figures["workdir"] = str(workdir)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
