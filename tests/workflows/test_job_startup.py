"""What a job process does before and around its work (issue 14): `mlops --help` and argument
errors import nothing heavy; a logged model's requirements are pinned and complete without MLflow
scanning every installed distribution; skops comes from its trusted-type snapshot; a one-command
process tunes the garbage collector, a library call of ``cli.main`` does not. No timings here:
speed is measured by hack/bench-jobs.sh."""

from __future__ import annotations

import gc
import json
import logging
import shutil
import subprocess
import sys
from importlib.metadata import version as installed
from pathlib import Path
from typing import Any

import pytest
from support.project import EmbeddedStore, base_env

from mlops_workflows import cli

HEAVY = ("mlflow", "sklearn", "pandas", "numpy", "scipy", "pyarrow", "sqlalchemy", "skops", "pydantic",
         "pydantic_settings", "fastapi", "git", "boto3", "argo_workflows", "yaml", "grpc", "requests")

IMPORTED_BY_COMMAND = """
import json, sys
sys.argv = ["mlops", *sys.argv[2:]]
from mlops_workflows import cli
try:
    code = cli.main()
except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
    code = exc.code
with open(OUT, "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def _command(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
             ) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    out = tmp_path / "modules.json"
    code = IMPORTED_BY_COMMAND.replace("OUT", repr(str(out)))
    done = subprocess.run([sys.executable, "-c", code, "-", *args], cwd=tmp_path, capture_output=True, text=True,
                          env=env or base_env(MLOPS_HOME=str(tmp_path / ".mlops")), timeout=120)
    return json.loads(out.read_text()), done


@pytest.mark.parametrize(
    ("args", "status", "says"),
    [
        (["--help"], 0, "batch-predict"),
        (["train", "--help"], 0, "--config FILE"),
        (["train"], 2, "the following arguments are required: --config"),
        (["drift", "wine-classifier"], 2, "one of the arguments --version --alias is required"),
        (["no-such-command"], 2, "invalid choice: 'no-such-command'"),
    ],
)
def test_help_and_argument_errors_import_nothing_heavy(tmp_path: Path, args: list[str], status: int,
                                                       says: str) -> None:
    result, done = _command(tmp_path, *args)
    assert result["code"] == status, done.stderr
    assert says in done.stdout + done.stderr
    heavy = sorted({m.split(".")[0] for m in result["modules"]} & set(HEAVY))
    assert heavy == [], f"`mlops {' '.join(args)}` imported {heavy}"
    assert not (tmp_path / ".mlops").exists()


def test_the_process_entry_tunes_the_collector_and_a_library_call_does_not(monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    threshold = gc.get_threshold()
    frozen = gc.get_freeze_count()  # code run earlier in this process may have frozen objects too
    try:
        assert cli.main(["config"]) == 0
        assert gc.get_threshold() == threshold and gc.get_freeze_count() == frozen  # a library call: left alone

        monkeypatch.setattr(sys, "argv", ["mlops", "config"])
        assert cli.main() == 0  # the process entry (the `mlops` script, python -m mlops_workflows.cli)
        assert gc.get_threshold()[0] == 50_000 and gc.get_threshold()[1:] == threshold[1:]
        assert gc.get_freeze_count() > frozen  # survivors skipped by the collections at interpreter exit
        assert "MLFLOW_TRACKING_URI" in capsys.readouterr().out
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_model_requirements_are_pinned_and_cover_the_flavour() -> None:
    import mlflow
    import mlflow.sklearn

    from mlops_workflows.training.modelenv import model_pip_requirements

    ours = model_pip_requirements()
    assert ours == [
        f"mlflow=={mlflow.__version__}",
        *(f"{name}=={installed(name)}" for name in ("numpy", "pandas", "scikit-learn", "scipy", "skops")),
    ]
    # Everything MLflow itself declares for an sklearn model saved with skops, at the same pins.
    flavour = mlflow.sklearn.get_default_pip_requirements(include_skops=True)
    assert flavour and set(flavour) <= set(ours), flavour


def test_the_requirement_check_runs_without_scanning_every_distribution(monkeypatch: pytest.MonkeyPatch,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    import importlib_metadata
    from mlflow.utils import requirements_utils

    from mlops_workflows.training.modelenv import model_pip_requirements, requirements_check_scope

    monkeypatch.setattr(requirements_utils, "_MODULES_TO_PACKAGES", None)
    scans: list[int] = []
    real = importlib_metadata.packages_distributions

    def counted() -> Any:
        scans.append(1)
        return real()

    monkeypatch.setattr(importlib_metadata, "packages_distributions", counted)
    mlflow_log = logging.getLogger("mlflow")  # MLflow's loggers may not propagate to the root logger
    mlflow_log.addHandler(caplog.handler)
    try:
        with caplog.at_level("WARNING", logger="mlflow"), requirements_check_scope():
            requirements_utils.warn_dependency_requirement_mismatches(model_pip_requirements())
            assert "mismatches" not in caplog.text  # the pins are what is installed
            requirements_utils.warn_dependency_requirement_mismatches(["scikit-learn==0.0.1"])
            assert "scikit-learn (current: " in caplog.text  # the check still runs and still warns
    finally:
        mlflow_log.removeHandler(caplog.handler)
    assert scans == []
    # Afterwards MLflow builds its full map again when something needs it (e.g. inferring requirements).
    assert requirements_utils._MODULES_TO_PACKAGES is None
    requirements_utils._init_packages_to_modules_map()  # type: ignore[no-untyped-call]
    full: Any = requirements_utils._MODULES_TO_PACKAGES
    assert scans == [1] and "pytest" in full


SKOPS_FROM_JOB = """
import json, sys
from mlops_platform.settings import PlatformSettings
from mlops_workflows.skopsio import import_skops_io, types_dir
skops_io = import_skops_io(PlatformSettings())
module = sys.modules["skops.io._trusted_types"]
folder = types_dir(PlatformSettings())
print(json.dumps({"snapshots": sorted(p.name for p in folder.iterdir()) if folder.exists() else [],
                  "mode": folder.stat().st_mode & 0o777 if folder.exists() else None,
                  "from_snapshot": "mlops_serving.skopstypes" in (module.__doc__ or ""),
                  "names": {k: v for k, v in vars(module).items() if k.endswith("_NAMES")}}))
"""


def test_jobs_import_skops_from_a_snapshot_of_its_trusted_types(tmp_path: Path) -> None:
    env = base_env(MLOPS_HOME=str(tmp_path / ".mlops"))

    def job() -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-c", SKOPS_FROM_JOB], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    from mlops_serving.skopstypes import BUILT_IN, snapshot_key

    first, second = job(), job()
    assert second["from_snapshot"]
    assert second["names"] == first["names"] and second["names"]["SKLEARN_ESTIMATOR_TYPE_NAMES"]
    if (BUILT_IN / f"{snapshot_key()}.json").is_file():  # an image's (or a bench's) snapshot: read, nothing made
        assert first["from_snapshot"] and first["mode"] is None
    else:  # the first job scanned and stored the snapshot, privately; the second read it
        assert not first["from_snapshot"]
        assert first["snapshots"] == second["snapshots"] == [f"{snapshot_key()}.json"]
        assert first["mode"] == 0o700


def test_a_snapshot_folder_others_may_write_in_is_not_used(tmp_path: Path) -> None:
    folder = tmp_path / ".mlops" / "skops-trusted-types"
    folder.mkdir(parents=True)
    folder.chmod(0o777)  # anyone could put a longer trusted-type list here
    done = subprocess.run([sys.executable, "-c", SKOPS_FROM_JOB], cwd=tmp_path, capture_output=True, text=True,
                          env=base_env(MLOPS_HOME=str(tmp_path / ".mlops")), timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["snapshots"] == []  # nothing read from it, nothing stored in it
    from mlops_serving.skopstypes import BUILT_IN, snapshot_key

    if not (BUILT_IN / f"{snapshot_key()}.json").is_file():
        assert not result["from_snapshot"]


def test_jobs_on_the_embedded_store_do_not_import_mlflow(trained_store: EmbeddedStore, tmp_path: Path) -> None:
    """batch-predict and drift read the version and record their run in the embedded store without
    MLflow's client (mlops_platform.registry_sqlite); the run is MLflow's all the same."""
    from support.registries import wine_job_commands

    from mlops_platform.registry import Registry
    from mlops_platform.settings import PlatformSettings

    for job, args in wine_job_commands(tmp_path).items():
        result, done = _command(tmp_path, *args, env=trained_store.env())
        assert result["code"] in (0, 10, 11), done.stdout + done.stderr  # 11: too few rows for a verdict
        loaded = {m.split(".")[0] for m in result["modules"]}
        heavy = sorted(loaded & {"mlflow", "sqlalchemy", "alembic"})
        assert heavy == [], f"`mlops {job}` imported {heavy}"
        run_id = done.stdout.split("runs:/")[1].split()[0]
        run = Registry(PlatformSettings(home=trained_store.home)).get_run(run_id)
        assert run.info.status == "FINISHED" and run.data.tags["mlops.job"] == job


def test_a_small_batch_on_a_cached_forest_loads_no_scikit_learn(trained_store: EmbeddedStore, tmp_path: Path) -> None:
    """Once the model cache holds a forest's compiled arrays (checked against the estimator when
    stored), a batch of up to COMPILED_MAX_ROWS rows is scored with them alone, with the same
    output; a larger one loads the estimator and its trees score it, with the same output too."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_wine

    from mlops_workflows.jobs.batch.job import COMPILED_MAX_ROWS

    frame = load_wine(as_frame=True).frame.drop(columns="target")
    frame.columns = [str(c).replace("/", "_") for c in frame.columns]
    big = frame.sample(COMPILED_MAX_ROWS + 1, replace=True, random_state=1).reset_index(drop=True)
    big = big + pd.DataFrame(0.01 * np.random.default_rng(2).normal(size=big.shape), columns=big.columns)
    big.insert(0, "id", range(len(big)))
    big.to_parquet(tmp_path / "big.parquet")
    big.head(500).to_parquet(tmp_path / "small.parquet")
    shutil.copytree(trained_store.home, tmp_path / ".mlops-copy", ignore=shutil.ignore_patterns("model-cache"))
    env = base_env(MLOPS_HOME=str(tmp_path / ".mlops-copy"))

    def batch(name: str, out: str) -> tuple[set[str], pd.DataFrame]:
        result, done = _command(tmp_path, "batch-predict", "wine-classifier",
                                "--version", "1", "--input", str(tmp_path / f"{name}.parquet"),
                                "--output", str(tmp_path / out), "--id-column", "id", env=env)
        assert result["code"] == 0, done.stdout + done.stderr
        loaded = {m.split(".")[0] for m in result["modules"]}
        return loaded, pd.read_parquet(tmp_path / out).sort_values("id").reset_index(drop=True)

    first_modules, first = batch("small", "out-1")  # loads the estimator, stores its compiled arrays
    assert {"sklearn", "skops"} <= first_modules
    cached_modules, cached = batch("small", "out-2")
    assert not cached_modules & {"sklearn", "skops", "mlflow"}, sorted(cached_modules & {"sklearn", "skops"})
    pd.testing.assert_frame_equal(cached, first)
    big_modules, scored = batch("big", "out-3")
    assert {"sklearn", "skops"} <= big_modules  # the trees score a large input
    pd.testing.assert_frame_equal(scored.head(500), first)

    # a version deleted from the registry is not scored from the cache
    from mlops_platform.registry import Registry
    from mlops_platform.settings import PlatformSettings

    Registry(PlatformSettings(home=tmp_path / ".mlops-copy")).delete_version("wine-classifier", 1)
    result, done = _command(tmp_path, "batch-predict", "wine-classifier", "--version", "1", "--input",
                            str(tmp_path / "small.parquet"), "--output", str(tmp_path / "out-4"), env=env)
    assert result["code"] == 2 and "has no version 1" in done.stderr, done.stderr
