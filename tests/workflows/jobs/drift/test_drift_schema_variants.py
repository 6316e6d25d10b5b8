"""`mlops drift` on hand-made prediction-log files of another schema (extra, missing, retyped
column): each is skipped and listed in the report; the job fails only when nothing usable remains."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.drift import MODEL, log_table, wine_sample
from support.project import EmbeddedStore, run_mlops

from mlops_platform import prediction_log as records

pytestmark = pytest.mark.integration

EXIT_INVALID = 2


def _parquet(table: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _variants(table: Any) -> dict[str, Any]:
    """Readable Parquet files whose schema is not the record schema."""
    proline = records.feature_column("proline")
    i = table.schema.get_field_index(proline)
    return {
        "extra-column": table.append_column("feature.unknown", pa.array([1.0] * len(table))),
        "missing-column": table.remove_column(i),
        "retyped-feature": table.set_column(i, proline, pa.array([str(v) for v in table[proline].to_pylist()])),
        "retyped-timestamp": table.set_column(
            table.schema.get_field_index("timestamp"), "timestamp",
            pa.array([v.isoformat() for v in table["timestamp"].to_pylist()])),
        "retyped-prediction": table.set_column(
            table.schema.get_field_index("prediction"), "prediction",
            pa.array([int(v) for v in table["prediction"].to_pylist()], type=pa.int64())),
        "feature-as-int": table.set_column(i, proline, pa.array([int(v) for v in table[proline].to_pylist()])),
    }


def test_files_of_another_schema_are_skipped_and_listed(trained_store: EmbeddedStore, tmp_path: Path) -> None:
    from mlops_platform.registry import Registry
    from mlops_platform.settings import PlatformSettings

    registry = Registry(PlatformSettings(MLOPS_HOME=str(trained_store.home)))
    from mlops_drift.baseline import BASELINE_ARTIFACT, BaselineStatistics

    version = registry.get_version(MODEL, version=1)
    baseline = BaselineStatistics.model_validate(registry.load_run_json(version.run_id, BASELINE_ARTIFACT))
    names = list(baseline.feature_names)
    store = tmp_path / "store"
    when = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(hours=1)
    good = log_table(wine_sample(600, seed=3), names, when)
    _parquet(good, Path(records.record_file_uri(str(store), MODEL, "1", when, "good")))
    variants = _variants(log_table(wine_sample(50, seed=4), names, when))
    for name, table in variants.items():
        _parquet(table, Path(records.record_file_uri(str(store), MODEL, "1", when, name)))

    env = trained_store.env(MLOPS_STORE_URI=str(store))
    since, until = (when - timedelta(hours=1)).isoformat(), (when + timedelta(hours=1)).isoformat()
    run = run_mlops("drift", MODEL, "--version", "1", "--since", since, "--until", until,
                    "--report-dir", str(tmp_path / "report"), cwd=trained_store.workdir, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    report = json.loads((tmp_path / "report" / "drift-report.json").read_text())
    assert report["rows"] == 600
    skipped = report["files_skipped"]
    assert sorted(name for name in variants if any(f"{name}.parquet" in s for s in skipped)) == sorted(variants)
    assert len(skipped) == len(variants)

    # nothing usable left: a clear one-line error, exit 2
    Path(records.record_file_uri(str(store), MODEL, "1", when, "good")).unlink()
    bad = run_mlops("drift", MODEL, "--version", "1", "--since", since, "--until", until,
                    cwd=trained_store.workdir, env=env)
    assert bad.returncode == EXIT_INVALID, bad.stdout + bad.stderr
    assert "Traceback" not in bad.stderr and "readable" in bad.stderr
