"""`mlops drift` end to end: prediction logs on S3 (SeaweedFS), reports, exit codes, and the
Pushgateway -> Prometheus -> alert path with real processes."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from support.drift import MODEL, SHIFTED, independent_psi, log_table, wine_sample
from support.project import EmbeddedStore, run_mlops

from mlops_drift.baseline import BASELINE_ARTIFACT, BaselineStatistics
from mlops_platform import prediction_log as records
from mlops_platform.exit_status import ExitStatus

pytestmark = pytest.mark.integration

EXIT_DRIFT, EXIT_INSUFFICIENT = ExitStatus.DRIFT, ExitStatus.INSUFFICIENT_DATA


@pytest.fixture(scope="module")
def baseline(trained_store: EmbeddedStore) -> BaselineStatistics:
    from mlops_platform.registry import Registry
    from mlops_platform.settings import PlatformSettings

    # explicit URI: a module fixture runs before the per-test environment clean-up, and an earlier
    # in-process Registry may have left MLFLOW_TRACKING_URI in os.environ (mlflow.set_tracking_uri does)
    home = trained_store.home
    registry = Registry(PlatformSettings(home=home, tracking_uri=f"sqlite:///{home / 'mlflow.db'}"))
    version = registry.get_version(MODEL, version=1)
    return BaselineStatistics.model_validate(registry.load_run_json(version.run_id, BASELINE_ARTIFACT))


def expected_psis(baseline: BaselineStatistics, sample: pd.DataFrame) -> dict[str, float]:
    return {
        f.name: independent_psi(f.bin_edges, f.proportions, sample[f.name].to_numpy(dtype=np.float64))
        for f in baseline.features
    }


def test_drift_on_prediction_logs_in_s3(trained_store: EmbeddedStore, baseline: BaselineStatistics, s3: Any,
                                        tmp_path: Path) -> None:
    client = s3.client()
    s3.make_bucket("predlog")
    store = "s3://predlog/store"
    names = list(baseline.feature_names)

    def put(uri: str, data: bytes) -> None:
        location = uri[len("s3://") :].split("/", 1)
        client.put_object(Bucket=location[0], Key=location[1], Body=data)

    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    # Fresh traffic over the last two hours, in two hourly partitions.
    fresh = wine_sample(1200, seed=1)
    for offset, part in ((timedelta(hours=1), fresh.iloc[:600]), (timedelta(0), fresh.iloc[600:])):
        when = now - offset
        put(records.record_file_uri(store, MODEL, "1", when), records.table_to_parquet(log_table(part, names, when)))
    # Drifted traffic a day earlier: three hours, the middle one missing, plus a corrupt file.
    drifted = wine_sample(1200, seed=2, shift=True)
    day = now - timedelta(days=1)
    for hours, part in ((0, drifted.iloc[:600]), (2, drifted.iloc[600:])):
        when = day + timedelta(hours=hours)
        put(records.record_file_uri(store, MODEL, "1", when), records.table_to_parquet(log_table(part, names, when)))
    put(records.record_file_uri(store, MODEL, "1", day, "corrupt"), b"PAR1 this is not parquet")

    env = trained_store.env(MLOPS_STORE_URI=store, **s3.env())
    until = (now + timedelta(hours=1)).isoformat()

    ok = run_mlops("drift", MODEL, "--version", "1", "--since", (now - timedelta(hours=2)).isoformat(),
                   "--until", until, "--report-dir", str(tmp_path / "fresh"), cwd=trained_store.workdir, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    report = json.loads((tmp_path / "fresh" / "drift-report.json").read_text())
    assert report["status"] in ("ok", "warning") and report["rows"] == 1200 and not report["drifted_features"]
    expected = expected_psis(baseline, fresh)
    for feature in report["features"]:
        assert feature["psi"] == pytest.approx(expected[feature["name"]], rel=1e-9)
    assert report["prediction"]["psi"] < 0.1
    assert (tmp_path / "fresh" / "drift-report.html").read_text().startswith("<!DOCTYPE html>")

    drift = run_mlops("drift", MODEL, "--version", "1", "--since", day.isoformat(),
                      "--until", (day + timedelta(hours=3)).isoformat(), "--report-dir", str(tmp_path / "drifted"),
                      cwd=trained_store.workdir, env=env)
    assert drift.returncode == EXIT_DRIFT, drift.stdout + drift.stderr
    report = json.loads((tmp_path / "drifted" / "drift-report.json").read_text())
    assert report["status"] == "drift" and report["rows"] == 1200
    assert set(SHIFTED) <= set(report["drifted_features"])
    assert len(report["files_skipped"]) == 1 and "corrupt" in report["files_skipped"][0]
    expected = expected_psis(baseline, drifted)
    for feature in report["features"]:
        assert feature["psi"] == pytest.approx(expected[feature["name"]], rel=1e-9)
        assert math.isfinite(feature["ks_statistic"])

    few = run_mlops("drift", MODEL, "--version", "1", "--since", (now - timedelta(hours=2)).isoformat(),
                    "--until", until, "--min-rows", "5000", cwd=trained_store.workdir, env=env)
    assert few.returncode == EXIT_INSUFFICIENT, few.stdout + few.stderr
    assert "INSUFFICIENT DATA" in few.stdout

    # The hour before the drifted day: no partition at all -> nothing to compare.
    empty = run_mlops("drift", MODEL, "--version", "1", "--last", "1h", "--until", day.isoformat(),
                      cwd=trained_store.workdir, env=env)
    assert empty.returncode == EXIT_INSUFFICIENT, empty.stdout + empty.stderr
    assert "0 row(s) compared" in empty.stdout


def test_missing_model_version_is_invalid_input(trained_store: EmbeddedStore) -> None:
    result = run_mlops("drift", MODEL, "--version", "99", cwd=trained_store.workdir, env=trained_store.env())
    assert result.returncode == 2 and "99" in result.stderr


def test_drift_run_pushes_metrics_that_prometheus_scrapes_and_alerts_on(
    trained_store: EmbeddedStore, baseline: BaselineStatistics, tmp_path: Path
) -> None:
    from support.prometheus import extract_rules, prometheus_server, pushgateway_server, wait_until

    from mlops_platform import metric_names as mn

    rules_dir = Path(__file__).resolve().parents[4] / "infra" / "monitoring" / "rules"
    rules = extract_rules([rules_dir / "prometheusrule-drift.yaml"], tmp_path / "rules.yaml")
    drifted = wine_sample(1500, seed=3, shift=True)
    drifted[list(baseline.feature_names)].to_parquet(tmp_path / "drifted.parquet")

    with pushgateway_server(tmp_path / "pgw") as gateway, prometheus_server(
        tmp_path / "prom", [gateway.target], rule_files=[rules]
    ) as prometheus:
        result = run_mlops("drift", MODEL, "--version", "1", "--input", str(tmp_path / "drifted.parquet"),
                           "--report-dir", str(tmp_path / "report"), cwd=trained_store.workdir,
                           env=trained_store.env(MLOPS_PUSHGATEWAY_URL=gateway.url))
        assert result.returncode == EXIT_DRIFT, result.stdout + result.stderr
        report = json.loads((tmp_path / "report" / "drift-report.json").read_text())

        selector = f'{mn.DRIFT_FEATURE_PSI.name}{{job="{mn.DRIFT_PUSH_JOB}",model="{MODEL}",version="1"}}'
        series = wait_until(lambda: len(prometheus.query(selector)) == len(baseline.features) and
                            prometheus.query(selector), timeout=60, what="the pushed PSI series in Prometheus")
        scraped = {s["metric"]["feature"]: float(s["value"][1]) for s in series}
        assert scraped == pytest.approx({f["name"]: f["psi"] for f in report["features"]}, rel=1e-9)
        # The run's own group only: the selector names job, model and version, like the PSI one above.
        group = f'{{job="{mn.DRIFT_PUSH_JOB}",model="{MODEL}",version="1"}}'
        rows = prometheus.query(mn.DRIFT_ROWS.name + group)
        assert [float(r["value"][1]) for r in rows] == [1500.0], rows
        status = prometheus.query(mn.DRIFT_STATUS.name + group)
        assert [float(s["value"][1]) for s in status] == [float(mn.DRIFT_STATUS_CODES["drift"])], status

        def firing() -> set[str]:
            return {a["labels"].get("feature", "") for a in prometheus.alerts()
                    if a["labels"]["alertname"] == "MlopsFeatureDrift" and a["state"] == "firing"}

        fired = wait_until(lambda: firing() >= set(SHIFTED) and firing(), timeout=60,
                           what="MlopsFeatureDrift firing for the shifted features")
        assert fired == set(report["drifted_features"])


def _gauge(text: str, name: str, **labels: str) -> float | None:
    """The value of the series ``name`` with exactly ``labels`` in a Pushgateway's exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            own = {k: v for k, v in sample.labels.items() if k != "instance"}
            if sample.name == name and own == labels:
                return float(sample.value)
    return None


def test_insufficient_runs_are_counted_and_every_exit_path_pushes(
    trained_store: EmbeddedStore, baseline: BaselineStatistics, tmp_path: Path
) -> None:
    """Insufficient data (exit 11) counts up run after run, a comparison resets it, and a run that
    fails before it resolves a version (exit 2) still leaves its per-model series."""
    from support.prometheus import pushgateway_server

    from mlops_platform import metric_names as mn

    names = list(baseline.feature_names)
    enough, few = tmp_path / "enough.parquet", tmp_path / "few.parquet"
    wine_sample(600, seed=11)[names].to_parquet(enough)
    wine_sample(20, seed=12)[names].to_parquet(few)
    job = mn.DRIFT_PUSH_JOB
    with pushgateway_server(tmp_path / "pgw") as gateway:
        env = trained_store.env(MLOPS_PUSHGATEWAY_URL=gateway.url, MLOPS_DRIFT_INSUFFICIENT_RUNS_ALERT="3")

        def drift(*args: str) -> int:
            result = run_mlops("drift", *args, cwd=trained_store.workdir, env=env)
            return result.returncode

        def runs() -> float | None:
            return _gauge(gateway.metrics_text(), mn.DRIFT_INSUFFICIENT_RUNS.name, job=job, model=MODEL, version="1")

        assert drift(MODEL, "--version", "1", "--input", str(enough)) == 0
        assert runs() == 0.0
        counted = []
        for _ in range(3):
            assert drift(MODEL, "--version", "1", "--input", str(few)) == EXIT_INSUFFICIENT
            counted.append(runs())
        assert counted == [1.0, 2.0, 3.0]
        text = gateway.metrics_text()
        assert _gauge(text, mn.DRIFT_INSUFFICIENT_RUNS_LIMIT.name, job=job, model=MODEL, version="1") == 3.0
        success = _gauge(text, mn.DRIFT_MODEL_LAST_SUCCESS.name, job=job, model=MODEL)
        assert success is not None

        # Exit 2 (no such version): the last run moves, the last success stays.
        assert drift(MODEL, "--version", "99") == 2
        text = gateway.metrics_text()
        last_run = _gauge(text, mn.DRIFT_MODEL_LAST_RUN.name, job=job, model=MODEL)
        assert last_run is not None and last_run > success
        assert _gauge(text, mn.DRIFT_MODEL_LAST_SUCCESS.name, job=job, model=MODEL) == success

        # A model whose checks never get as far as a version: a last run and no success at all.
        assert drift("never-registered", "--alias", "production") == 2
        text = gateway.metrics_text()
        assert _gauge(text, mn.DRIFT_MODEL_LAST_RUN.name, job=job, model="never-registered") is not None
        assert _gauge(text, mn.DRIFT_MODEL_LAST_SUCCESS.name, job=job, model="never-registered") is None
        assert _gauge(text, mn.DRIFT_MODEL_EXPECTED_INTERVAL.name, job=job, model="never-registered") == 3600.0
