"""A tracking server read and written over MLflow's REST API without MLflow: each side reads what the other wrote.

:class:`mlops_platform.registry_http.HttpRegistry` answers the jobs' registry questions with the
standard library against a real ``mlflow server --serve-artifacts`` (SQLite backend, artifacts
proxied to SeaweedFS S3, as in the cluster). These tests hold it to MLflow's client on the same
server: what MLflow wrote, it reads the same; what it writes, MLflow's client reads as its own;
and the jobs pointed at the server import neither MLflow nor SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.project import WINE_CONFIG, base_env, run_mlops
from support.registries import MODEL, fill_with_mlflow, wine_job_commands
from support.seaweedfs import S3

from mlops_platform.errors import NotFoundError, ServiceUnavailableError
from mlops_platform.registry import Registry, open_registry
from mlops_platform.registry_http import HttpRegistry
from mlops_platform.settings import PlatformSettings

pytestmark = pytest.mark.integration



@dataclass(frozen=True)
class Server:
    tracking_uri: str
    s3: S3
    workdir: Path
    run_id: str
    experiment_id: str

    def settings(self, **extra: Any) -> PlatformSettings:
        return PlatformSettings(tracking_uri=self.tracking_uri, home=self.workdir / ".mlops", **extra)

    def env(self, **extra: str) -> dict[str, str]:
        return base_env(MLFLOW_TRACKING_URI=self.tracking_uri, MLOPS_HOME=str(self.workdir / ".mlops"), **extra)


@contextlib.contextmanager
def _mlflow_uris_restored() -> Iterator[None]:
    """MLflow's client keeps the URI it was last given, in its globals and in MLFLOW_TRACKING_URI /
    MLFLOW_REGISTRY_URI: the modules after this one must not find this module's server there."""
    saved = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    try:
        yield
    finally:
        import mlflow

        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, s3: S3) -> Iterator[Server]:
    """A tracking server written by MLflow's client: a run with tags, params, metrics (NaN and
    infinite too) and files, a registered model with three versions (one deleted), tags and aliases."""
    from support.mlflow_server import mlflow_server

    root = tmp_path_factory.mktemp("registry-http")
    backend = f"sqlite:///{root / 'mlflow.db'}"
    with _mlflow_uris_restored(), mlflow_server(root / "mlflow", backend, s3, bucket=s3.new_bucket("mlflow")) as ml:
        mlflow = Registry(PlatformSettings(tracking_uri=ml.tracking_uri, home=root / ".mlops"))
        run_id, experiment = fill_with_mlflow(mlflow)
        yield Server(ml.tracking_uri, s3, root, run_id, experiment)


def _mlflow(server: Server) -> Registry:
    return Registry(server.settings())


def _light(server: Server, **extra: Any) -> HttpRegistry:
    light = open_registry(server.settings(**extra))
    assert isinstance(light, HttpRegistry), "an http tracking server must be asked over its REST API"
    return light


def _version_fields(mv: Any) -> dict[str, Any]:
    return {
        "name": mv.name, "version": int(mv.version), "run_id": mv.run_id, "source": mv.source,
        "tags": dict(mv.tags), "aliases": sorted(mv.aliases), "status": mv.status, "description": mv.description,
        "current_stage": mv.current_stage, "creation_timestamp": mv.creation_timestamp,
        "last_updated_timestamp": mv.last_updated_timestamp,
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


def test_reads_what_mlflow_wrote(server: Server, tmp_path: Path) -> None:
    mlflow, light = _mlflow(server), _light(server)
    for kwargs in ({"version": 1}, {"version": "2"}, {"alias": "candidate"}, {"alias": "production"}):
        assert _version_fields(light.get_version(MODEL, **kwargs)) == _version_fields(
            mlflow.get_version(MODEL, **kwargs)), kwargs
    assert light.get_version(MODEL, version=2).version == 2  # a number, as the jobs compare it
    staging = mlflow.version_by_alias(MODEL, "staging")
    assert light.version_by_alias(MODEL, "staging").version == int(staging.version) == 2
    assert light.version_by_alias(MODEL, "nope") is None and light.version_by_alias("other", "staging") is None
    for kwargs in ({"version": 3}, {"version": 9}, {"alias": "nope"}):  # 3 was deleted
        with pytest.raises(NotFoundError) as theirs:
            mlflow.get_version(MODEL, **kwargs)
        with pytest.raises(NotFoundError) as ours:
            light.get_version(MODEL, **kwargs)
        assert str(ours.value) == str(theirs.value)

    assert _run_fields(light.get_run(server.run_id)) == _run_fields(mlflow.get_run(server.run_id))
    with pytest.raises(NotFoundError, match="no run 'f00d'"):
        light.get_run("f00d")
    assert light.load_run_json(server.run_id, "baseline/baseline.json") == {"ok": True}
    assert light.run_has_artifact(server.run_id, "baseline/baseline.json")
    assert not light.run_has_artifact(server.run_id, "baseline/other.json")
    with pytest.raises(NotFoundError, match="missing from run"):
        light.load_run_file(server.run_id, "baseline/other.json")

    theirs_dir = mlflow.download_model_version(MODEL, 2, tmp_path / "theirs")
    ours_dir = light.download_model_version(MODEL, 2, tmp_path / "ours")
    listing = {str(p.relative_to(theirs_dir)): p.read_bytes() for p in theirs_dir.rglob("*") if p.is_file()}
    assert {str(p.relative_to(ours_dir)): p.read_bytes() for p in ours_dir.rglob("*") if p.is_file()} == listing
    assert "data/weights.bin" in listing
    assert light._client is None  # none of this asked MLflow's client


def test_mlflow_reads_the_job_runs_it_records_as_its_own(server: Server) -> None:
    mlflow, light = _mlflow(server), _light(server)
    record = {
        "tags": {"mlops.job": "drift", "mlops.model_name": MODEL, "mlflow.user": "ci"},
        "params": {"threshold": 0.25, "input": "s3://bucket/x.csv"},
        "metrics": {"rows": 10, "psi.od280/od315": 0.5, "gap": math.nan, "far": -math.inf, "big": math.inf},
        "texts": {"drift/report.json": '{"drifted": false}\n', "drift/report.html": "<p>ok é</p>"},
    }
    ours_id, ours_url = light.record_job_run("drift/demo", "drift-demo", **record)
    theirs_id, _ = mlflow.record_job_run("drift/demo-mlflow", "drift-demo", **record)
    ours, theirs = _run_fields(mlflow.get_run(ours_id)), _run_fields(mlflow.get_run(theirs_id))
    assert ours["status"] == "FINISHED" and ours["end_time"] >= ours["start_time"]
    assert ours_url == f"{server.tracking_uri}/#/experiments/{ours['experiment_id']}/runs/{ours_id}"
    for key in ("run_name", "status", "lifecycle_stage", "tags", "params", "metrics"):
        assert ours[key] == theirs[key], key
    assert ours["metrics"]["gap"] == "nan" and ours["params"]["threshold"] == "0.25"
    assert mlflow.client.get_run(ours_id).info.user_id == mlflow.client.get_run(theirs_id).info.user_id == "ci"
    assert ours["artifact_uri"].startswith("mlflow-artifacts:")
    ours_experiment = mlflow.client.get_experiment_by_name("drift/demo")
    theirs_experiment = mlflow.client.get_experiment_by_name("drift/demo-mlflow")
    assert ours_experiment.artifact_location.replace(ours_experiment.experiment_id, "E") == \
        theirs_experiment.artifact_location.replace(theirs_experiment.experiment_id, "E")
    for run_id in (ours_id, theirs_id):
        listed = sorted(a.path for a in mlflow.client.list_artifacts(run_id, "drift"))
        assert listed == ["drift/report.html", "drift/report.json"]
        assert mlflow.load_run_file(run_id, "drift/report.json") == b'{"drifted": false}\n'
        assert mlflow.load_run_file(run_id, "drift/report.html") == "<p>ok é</p>".encode()
    assert _run_fields(light.get_run(ours_id)) == _run_fields(mlflow.get_run(ours_id))
    # a second run in the now existing experiment, and one with nothing but tags
    light.record_job_run("drift/demo", "drift-demo-2", {"mlops.job": "drift"}, {}, {}, {})
    runs = mlflow.client.search_runs([ours_experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["drift-demo", "drift-demo-2"]
    assert light._client is None


def test_recent_job_runs_match_mlflow_search(server: Server) -> None:
    mlflow, light = _mlflow(server), _light(server)
    for i, (model, status) in enumerate([("a", "ok"), ("b", "ok"), ("a", "drift"), ("a", None), ("a", "it's")]):
        tags = {"mlops.model_name": model, "mlops.job": "drift"} | ({"drift.status": status} if status else {})
        writer = light if i % 2 else mlflow
        run_id, _ = writer.record_job_run("drift/jobs", f"r{i}", tags, {}, {"i": i}, {})
        if i == 4:
            mlflow.client.delete_run(run_id)  # deleted runs are not searched
    match = {"mlops.model_name": "a", "mlops.job": "drift"}
    assert light.recent_job_run_tags("drift/jobs", match, "drift.status", 10) == mlflow.recent_job_run_tags(
        "drift/jobs", match, "drift.status", 10) == [None, "drift", "ok"]
    assert light.recent_job_run_tags("drift/jobs", match, "drift.status", 2) == [None, "drift"]
    assert light.recent_job_run_tags("drift/jobs", {"drift.status": "it's"}, "drift.status", 2) == []
    assert light.recent_job_run_tags("no/such", match, "drift.status", 2) == []


def test_version_tags_it_sets_are_mlflow_tags(server: Server) -> None:
    mlflow, light = _mlflow(server), _light(server)
    light.set_version_tags(MODEL, 2, {"drift.status": "ok", "gate": "overridden"})
    light.set_version_tags(MODEL, "2", {"drift.status": "drift"})
    tags = mlflow.get_version(MODEL, version=2).tags
    assert tags["drift.status"] == "drift" and tags["gate"] == "overridden" and tags["dataset.digest"] == "abc"
    mlflow.set_version_tags(MODEL, 2, {"gate": "passed"})
    with pytest.raises(NotFoundError, match="has no version 3"):
        light.set_version_tags(MODEL, 3, {"x": "y"})  # deleted


def test_a_file_it_cannot_upload_marks_the_run_failed(server: Server) -> None:
    """The artifact proxy refuses a file (a name with ``#``): the run stays recorded with its
    figures, the upload's error is raised, and MLflow reads the run FAILED."""
    mlflow, light = _mlflow(server), _light(server)
    with pytest.raises(ServiceUnavailableError, match="answered 400: INVALID_PARAMETER_VALUE"):
        light.record_job_run("jobs/refused-file", "r", {}, {}, {"rows": 1}, {"ok.txt": "x", "not#ok.txt": "x"})
    [run] = mlflow.client.search_runs([mlflow.ensure_experiment("jobs/refused-file")])
    assert run.info.status == "FAILED" and run.data.metrics == {"rows": 1.0}
    assert [a.path for a in mlflow.client.list_artifacts(run.info.run_id)] == ["ok.txt"]


def test_what_it_does_not_cover_goes_to_mlflow(server: Server) -> None:
    mlflow, light = _mlflow(server), _light(server)
    # an operation it does not define is MLflow's client's, built on first use
    light.set_alias(MODEL, "staging", 1)
    assert light._client is not None
    assert str(mlflow.get_version(MODEL, alias="staging").version) == "1"
    mlflow.set_alias(MODEL, "staging", 2)
    # a value over MLflow's limits is handled by MLflow itself
    ours, _ = _light(server).record_job_run("jobs/demo", "r", {}, {"p": "x" * 7000}, {}, {})
    theirs, _ = mlflow.record_job_run("jobs/demo", "r", {}, {"p": "x" * 7000}, {}, {})
    assert 0 < len(mlflow.get_run(ours).data.params["p"]) == len(mlflow.get_run(theirs).data.params["p"])


def test_files_not_behind_the_artifact_proxy_are_written_by_mlflow(server: Server,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A run whose artifacts go straight to S3 (an experiment created with an ``s3://`` location)
    gets its files from MLflow's client; the rest of the run is recorded over HTTP as always."""
    bucket = server.s3.new_bucket("direct")
    for key, value in server.s3.env().items():
        monkeypatch.setenv(key, value)
    mlflow = _mlflow(server)
    light = _light(server, artifact_root=f"s3://{bucket}/artifacts")
    run_id, _ = light.record_job_run("jobs/direct-s3", "r", {"mlops.job": "drift"}, {}, {"rows": 2},
                                     {"drift/report.json": "{}"})
    run = mlflow.get_run(run_id)
    assert run.info.artifact_uri.startswith(f"s3://{bucket}/") and run.info.status == "FINISHED"
    assert mlflow.load_run_file(run_id, "drift/report.json") == b"{}"
    assert light.load_run_file(run_id, "drift/report.json") == b"{}"


@pytest.mark.parametrize("env", [{"MLFLOW_TRACKING_INSECURE_TLS": "true"}, {"MLFLOW_WORKSPACE": "team-a"},
                                 {"MLFLOW_TRACKING_AUTH": "plugin"}])
def test_mlflow_client_is_used_for_options_only_it_implements(server: Server, monkeypatch: pytest.MonkeyPatch,
                                                              env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert not isinstance(open_registry(server.settings()), HttpRegistry)


# -- the jobs -----------------------------------------------------------------------------------

IMPORTED_BY_COMMAND = """
import json, sys
sys.argv = ["mlops", *sys.argv[2:]]
from mlops_workflows import cli
try:
    code = cli.main()
except SystemExit as exc:
    code = exc.code
with open(OUT, "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def test_jobs_against_a_tracking_server_do_not_import_mlflow(server: Server, tmp_path: Path) -> None:
    """batch-predict, drift and promote --dry-run ask the tracking server over HTTP; the runs the
    jobs record are MLflow's all the same."""
    from support.promote import make_gitops

    env = server.env(**server.s3.env())
    trained = run_mlops("train", "--config", str(WINE_CONFIG), cwd=tmp_path, env=env)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    commands = {**wine_job_commands(tmp_path),
                "promote": ["promote", "wine-classifier", "--to", "staging", "--dry-run"]}
    gitops = make_gitops(tmp_path / "gitops")
    mlflow = _mlflow(server)
    for job, args in commands.items():
        out = tmp_path / f"{job}.json"
        job_env = env | {"MLOPS_PROMOTE_REPO_PATH": str(gitops.clone), "MLOPS_PROMOTE_REPOSITORY": "example/gitops"}
        done = subprocess.run([sys.executable, "-c", IMPORTED_BY_COMMAND.replace("OUT", repr(str(out))), "-", *args],
                              cwd=tmp_path, capture_output=True, text=True, env=job_env, timeout=300)
        result = json.loads(out.read_text())
        assert result["code"] in (0, 10, 11), done.stdout + done.stderr  # 11: too few rows for a verdict
        loaded = {m.split(".")[0] for m in result["modules"]}
        heavy = sorted(loaded & {"mlflow", "sqlalchemy", "alembic"})
        assert heavy == [], f"`mlops {job}` imported {heavy}"
        if job != "promote":
            run_id = done.stdout.split("/runs/")[1].split()[0]
            run = mlflow.get_run(run_id)
            assert run.info.status == "FINISHED" and run.data.tags["mlops.job"] == job
        else:
            assert "wine-classifier" in done.stdout, done.stdout
