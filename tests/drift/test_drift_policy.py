"""Per-model drift thresholds: the training config's `drift:` section travels with the version."""

from __future__ import annotations

import json
from pathlib import Path

from sklearn.datasets import load_breast_cancer
from support.project import EmbeddedStore, run_mlops

from mlops_drift.baseline import BASELINE_ARTIFACT, BaselineStatistics


def _input(tmp_path: Path) -> Path:
    frame = load_breast_cancer(as_frame=True).frame.drop(columns=["target"])
    path = tmp_path / "cancer.csv"
    frame.to_csv(path, index=False)
    return path


def _report(tmp_path: Path, store: EmbeddedStore, *flags: str) -> dict[str, object]:
    out = tmp_path / f"report{len(flags)}"
    result = run_mlops(
        "drift", "breast-cancer-classifier", "--alias", "candidate", "--input", str(_input(tmp_path)),
        "--report-dir", str(out), *flags, cwd=store.workdir, env=store.env(),
    )
    assert result.returncode in (0, 10), result.stdout + result.stderr
    report: dict[str, object] = json.loads((out / "drift-report.json").read_text())
    return report


def test_the_models_policy_is_stored_and_used_unless_a_flag_overrides(
    trained_store: EmbeddedStore, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{trained_store.home}/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias("breast-cancer-classifier", "candidate")
    local = client.download_artifacts(version.run_id, BASELINE_ARTIFACT, str(tmp_path))
    policy = BaselineStatistics.model_validate_json(Path(local).read_text()).monitoring
    assert (policy.psi_warn, policy.psi_alert, policy.min_rows) == (0.10, 0.20, 300)

    report = _report(tmp_path, trained_store)
    assert report["thresholds"] == {"psi_warn": 0.10, "psi_alert": 0.20}
    assert report["min_rows"] == 300
    # the check is recorded in MLflow with its figures and both reports
    [run] = client.search_runs(
        [client.get_experiment_by_name("drift/breast-cancer-classifier").experiment_id],
        order_by=["attributes.start_time DESC"], max_results=1,
    )
    assert run.data.params["psi_alert"] == "0.2" and run.data.tags["mlops.model_version"] == str(version.version)
    assert "psi.mean radius" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "drift")}
    assert artifacts == {"drift/drift-report.json", "drift/drift-report.html"}

    overridden = _report(tmp_path, trained_store, "--psi-alert", "0.4", "--min-rows", "50")
    assert overridden["thresholds"] == {"psi_warn": 0.10, "psi_alert": 0.4}
    assert overridden["min_rows"] == 50

    result = run_mlops(
        "drift", "breast-cancer-classifier", "--alias", "candidate", "--input", str(_input(tmp_path)),
        "--psi-warn", "0.5", cwd=trained_store.workdir, env=trained_store.env(),
    )
    assert result.returncode == 2
    assert "psi_warn (0.5) must not exceed psi_alert (0.2)" in result.stderr
