"""Registry access: the job-run record shared by batch inference and drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_platform.registry import Registry, metric_key
from mlops_platform.settings import PlatformSettings


def test_record_job_run_writes_everything_in_one_finished_run(tmp_path: Path) -> None:
    registry = Registry(PlatformSettings(home=tmp_path / ".mlops"))
    run_id, url = registry.record_job_run(
        "jobs/demo",
        run_name="demo-run",
        tags={"mlops.job": "demo"},
        params={"threshold": 0.25, "input": "s3://bucket/x.csv"},
        metrics={"rows": 10, "psi.od280/od315": 0.5, "psi.a(b)": 0.1},
        texts={"demo/report.json": '{"ok": true}\n'},
    )
    run = registry.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "demo-run"
    assert run.data.tags["mlops.job"] == "demo"
    assert run.data.params == {"threshold": "0.25", "input": "s3://bucket/x.csv"}
    assert run.data.metrics == {"rows": 10.0, "psi.od280/od315": 0.5, "psi.a_b_": 0.1}
    assert [a.path for a in registry.client.list_artifacts(run_id, "demo")] == ["demo/report.json"]
    assert run_id in url


def test_a_failed_record_marks_the_run_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry(PlatformSettings(home=tmp_path / ".mlops"))

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("artifact store full")

    monkeypatch.setattr(registry.client, "log_text", broken)
    with pytest.raises(OSError, match="artifact store full"):
        registry.record_job_run("jobs/demo", "r", {}, {}, {"rows": 1}, {"x.txt": "x"})
    [run] = registry.client.search_runs([registry.ensure_experiment("jobs/demo")])
    assert run.info.status == "FAILED"


def test_metric_key_keeps_what_mlflow_accepts() -> None:
    assert metric_key("precision.class 1/b-c_d") == "precision.class 1/b-c_d"
    assert metric_key("recall(é)") == "recall_é_"
