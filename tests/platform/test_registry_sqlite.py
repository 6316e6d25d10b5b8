"""The embedded store read and written without MLflow: each side reads what the other wrote.

:class:`mlops_platform.registry_sqlite.SqliteRegistry` answers the jobs' registry questions with
sqlite3 on MLflow's own database. These tests hold it to MLflow's client on the same store: what
MLflow wrote, it reads the same; what it writes, MLflow's client reads as if MLflow had written it.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from support.registries import MODEL, fill_with_mlflow

from mlops_platform.errors import NotFoundError
from mlops_platform.registry import Registry, open_registry
from mlops_platform.registry_sqlite import SCHEMA_REVISIONS, SqliteRegistry
from mlops_platform.settings import PlatformSettings


@pytest.fixture
def store(tmp_path: Path) -> tuple[PlatformSettings, Registry, dict[str, Any]]:
    """An embedded store written by MLflow's client: a run with tags, params, metrics (NaN and
    infinite too) and files, a registered model with three versions (one deleted), tags and aliases."""
    settings = PlatformSettings(home=tmp_path / ".mlops")
    mlflow = Registry(settings)
    run_id, experiment = fill_with_mlflow(mlflow)
    return settings, mlflow, {"run_id": run_id, "experiment_id": experiment}


def _light(settings: PlatformSettings) -> SqliteRegistry:
    light = SqliteRegistry.open(settings)
    assert light is not None, "the embedded store MLflow created must be read directly"
    return light


def _version_fields(mv: Any) -> dict[str, Any]:
    return {
        "name": mv.name, "version": mv.version, "run_id": mv.run_id, "source": mv.source,
        "tags": dict(mv.tags), "aliases": sorted(mv.aliases), "status": mv.status,
        "creation_timestamp": mv.creation_timestamp,
    }


def _run_fields(run: Any) -> dict[str, Any]:
    info = run.info
    metrics = {k: ("nan" if math.isnan(v) else v) for k, v in run.data.metrics.items()}
    return {
        "run_id": info.run_id, "run_name": info.run_name, "experiment_id": str(info.experiment_id),
        "status": info.status, "start_time": info.start_time, "end_time": info.end_time,
        "lifecycle_stage": info.lifecycle_stage, "artifact_uri": info.artifact_uri,
        "tags": dict(run.data.tags), "params": dict(run.data.params), "metrics": metrics,
    }


def test_the_embedded_store_mlflow_creates_has_a_known_schema(tmp_path: Path) -> None:
    settings = PlatformSettings(home=tmp_path / ".mlops")
    Registry(settings).list_models()  # MLflow creates the store at its newest schema
    with sqlite3.connect(settings.home / "mlflow.db") as conn:
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert revision in SCHEMA_REVISIONS, (
        f"the installed MLflow's schema revision {revision} is not one registry_sqlite was checked against: "
        "check its SQL against this schema, then add the revision to SCHEMA_REVISIONS"
    )
    assert isinstance(open_registry(settings), SqliteRegistry)


def test_reads_what_mlflow_wrote(store: tuple[PlatformSettings, Registry, dict[str, Any]], tmp_path: Path) -> None:
    settings, mlflow, ids = store
    light = _light(settings)
    for kwargs in ({"version": 1}, {"version": "2"}, {"alias": "candidate"}, {"alias": "production"}):
        assert _version_fields(light.get_version(MODEL, **kwargs)) == _version_fields(
            mlflow.get_version(MODEL, **kwargs)), kwargs
    assert light.version_by_alias(MODEL, "staging").version == mlflow.version_by_alias(MODEL, "staging").version == 2
    assert light.version_by_alias(MODEL, "nope") is None and light.version_by_alias("other", "staging") is None
    for kwargs in ({"version": 3}, {"version": 9}, {"alias": "nope"}):  # 3 was deleted
        with pytest.raises(NotFoundError) as theirs:
            mlflow.get_version(MODEL, **kwargs)
        with pytest.raises(NotFoundError) as ours:
            light.get_version(MODEL, **kwargs)
        assert str(ours.value) == str(theirs.value)

    assert _run_fields(light.get_run(ids["run_id"])) == _run_fields(mlflow.get_run(ids["run_id"]))
    assert light.load_run_json(ids["run_id"], "baseline/baseline.json") == {"ok": True}
    assert light.run_has_artifact(ids["run_id"], "baseline/baseline.json")
    assert not light.run_has_artifact(ids["run_id"], "baseline/other.json")
    with pytest.raises(NotFoundError, match="missing from run"):
        light.load_run_file(ids["run_id"], "baseline/other.json")

    theirs_dir = mlflow.download_model_version(MODEL, 2, tmp_path / "theirs")
    ours_dir = light.download_model_version(MODEL, 2, tmp_path / "ours")
    listing = {str(p.relative_to(theirs_dir)): p.read_bytes() for p in theirs_dir.rglob("*") if p.is_file()}
    assert {str(p.relative_to(ours_dir)): p.read_bytes() for p in ours_dir.rglob("*") if p.is_file()} == listing
    assert "data/weights.bin" in listing


def test_an_artifact_path_that_leaves_the_run_is_not_read_directly(
    store: tuple[PlatformSettings, Registry, dict[str, Any]],
) -> None:
    settings, _, ids = store
    light = _light(settings)
    (settings.home / "secret.txt").write_text("s")
    for path in ("../../../secret.txt", "/etc/hostname", "baseline/../../../../secret.txt"):
        with pytest.raises(NotFoundError, match="outside"):
            light.load_run_file(ids["run_id"], path)
        assert not light.run_has_artifact(ids["run_id"], path)


def test_mlflow_reads_the_job_runs_it_records_as_its_own(
    store: tuple[PlatformSettings, Registry, dict[str, Any]], tmp_path: Path,
) -> None:
    settings, mlflow, _ = store
    light = _light(settings)
    record = {
        "tags": {"mlops.job": "drift", "mlops.model_name": MODEL, "mlflow.user": "ci"},
        "params": {"threshold": 0.25, "input": "s3://bucket/x.csv"},
        "metrics": {"rows": 10, "psi.od280/od315": 0.5, "gap": math.nan, "far": -math.inf},
        "texts": {"drift/report.json": '{"drifted": false}\n', "drift/report.html": "<p>ok</p>"},
    }
    ours_id, ours_url = light.record_job_run("drift/demo", "drift-demo", **record)
    theirs_id, _ = mlflow.record_job_run("drift/demo-mlflow", "drift-demo", **record)
    ours, theirs = _run_fields(mlflow.get_run(ours_id)), _run_fields(mlflow.get_run(theirs_id))
    assert ours["status"] == "FINISHED" and ours["end_time"] >= ours["start_time"]
    assert ours_id in ours_url
    for key in ("run_name", "status", "lifecycle_stage", "tags", "params", "metrics"):
        assert ours[key] == theirs[key], key
    assert ours["artifact_uri"].replace(ours_id, "RUN") == theirs["artifact_uri"].replace(theirs_id, "RUN")
    their_experiment = mlflow.client.get_experiment_by_name("drift/demo-mlflow")
    our_experiment = mlflow.client.get_experiment_by_name("drift/demo")
    assert our_experiment.artifact_location == their_experiment.artifact_location
    assert our_experiment.lifecycle_stage == "active"
    for run_id in (ours_id, theirs_id):
        listed = sorted(a.path for a in mlflow.client.list_artifacts(run_id, "drift"))
        assert listed == ["drift/report.html", "drift/report.json"]
        assert mlflow.load_run_file(run_id, "drift/report.json") == b'{"drifted": false}\n'
    # a second run in the now existing experiment, and MLflow's own run there too
    light.record_job_run("drift/demo", "drift-demo-2", {"mlops.job": "drift"}, {}, {"rows": 1}, {})
    runs = mlflow.client.search_runs([our_experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["drift-demo", "drift-demo-2"]


def test_recent_job_runs_match_mlflow_search(store: tuple[PlatformSettings, Registry, dict[str, Any]]) -> None:
    settings, mlflow, _ = store
    light = _light(settings)
    for i, (model, status) in enumerate([("a", "ok"), ("b", "ok"), ("a", "drift"), ("a", None), ("a", "ok")]):
        tags = {"mlops.model_name": model, "mlops.job": "drift"} | ({"drift.status": status} if status else {})
        writer = light if i % 2 else mlflow
        run_id, _ = writer.record_job_run("drift/jobs", f"r{i}", tags, {}, {"i": i}, {})
        if i == 4:
            mlflow.client.delete_run(run_id)  # deleted runs are not searched
    match = {"mlops.model_name": "a", "mlops.job": "drift"}
    assert light.recent_job_run_tags("drift/jobs", match, "drift.status", 10) == mlflow.recent_job_run_tags(
        "drift/jobs", match, "drift.status", 10) == [None, "drift", "ok"]
    assert light.recent_job_run_tags("drift/jobs", match, "drift.status", 2) == [None, "drift"]
    assert light.recent_job_run_tags("no/such", match, "drift.status", 2) == []


def test_version_tags_it_sets_are_mlflow_tags(store: tuple[PlatformSettings, Registry, dict[str, Any]]) -> None:
    settings, mlflow, _ = store
    light = _light(settings)
    light.set_version_tags(MODEL, 2, {"drift.status": "ok", "gate": "overridden"})
    light.set_version_tags(MODEL, "2", {"drift.status": "drift"})
    tags = mlflow.get_version(MODEL, version=2).tags
    assert tags["drift.status"] == "drift" and tags["gate"] == "overridden" and tags["dataset.digest"] == "abc"
    with pytest.raises(NotFoundError):
        light.set_version_tags(MODEL, 3, {"x": "y"})  # deleted


def test_a_file_it_cannot_write_marks_the_run_failed(
    store: tuple[PlatformSettings, Registry, dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, mlflow, _ = store
    light = _light(settings)

    def full(self: Path, *args: object, **kwargs: object) -> int:
        raise OSError("artifact store full")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError, match="artifact store full"):
        light.record_job_run("jobs/demo", "r", {}, {}, {"rows": 1}, {"x.txt": "x"})
    [run] = mlflow.client.search_runs([mlflow.ensure_experiment("jobs/demo")])
    assert run.info.status == "FAILED"


def test_what_it_does_not_cover_goes_to_mlflow(store: tuple[PlatformSettings, Registry, dict[str, Any]]) -> None:
    settings, mlflow, _ = store
    light = _light(settings)
    # an operation it does not define is MLflow's client's, built on first use
    assert light._client is None
    light.set_alias(MODEL, "staging", 1)
    assert str(mlflow.get_version(MODEL, alias="staging").version) == "1"
    # a value over MLflow's limits is handled by MLflow itself (its client shortens it)
    ours, _ = light.record_job_run("jobs/demo", "r", {}, {"p": "x" * 7000}, {}, {})
    theirs, _ = mlflow.record_job_run("jobs/demo", "r", {}, {"p": "x" * 7000}, {}, {})
    assert 0 < len(mlflow.get_run(ours).data.params["p"]) == len(mlflow.get_run(theirs).data.params["p"])


@pytest.mark.parametrize("change", ["schema", "missing", "workspaces", "remote-artifacts", "server"])
def test_mlflow_client_is_used_when_the_store_is_not_known(
    store: tuple[PlatformSettings, Registry, dict[str, Any]], monkeypatch: pytest.MonkeyPatch, change: str,
) -> None:
    settings, _, _ = store
    if change == "schema":
        with sqlite3.connect(settings.home / "mlflow.db") as conn:
            conn.execute("UPDATE alembic_version SET version_num = 'f00dfeed0000'")
    elif change == "missing":
        elsewhere = settings.home.parent / "elsewhere"
        settings = PlatformSettings(home=elsewhere, tracking_uri=f"sqlite:///{elsewhere / 'mlflow.db'}")
    elif change == "workspaces":
        monkeypatch.setenv("MLFLOW_ENABLE_WORKSPACES", "true")
    elif change == "remote-artifacts":
        settings = PlatformSettings(home=settings.home, artifact_root="s3://bucket/artifacts")
    else:
        settings = PlatformSettings(home=settings.home, tracking_uri="http://127.0.0.1:9")
    assert SqliteRegistry.open(settings) is None
