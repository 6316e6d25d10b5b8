"""What makes the server start fast must not change what it serves: the model cache and the
skops trusted-type snapshot, each checked against the slow path it replaces.

(How fast it starts is measured by hack/bench-coldstart.sh, never asserted here.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import requests
from support.serving import CANCER, WINE, WINE_ROWS, start_server, wait_until, wine_features

from mlops_serving.runtime import PATH_COMPILED_LOADING, PATH_SPLIT

SNAPSHOT_NAMES = """
import json, sys
from pathlib import Path
if sys.argv[1] == "real":
    import skops.io
else:
    from mlops_serving.skopstypes import import_skops_io
    import_skops_io(Path(sys.argv[2]), built_in=None)  # not the snapshot an image build (or bench) stored
module = sys.modules["skops.io._trusted_types"]
import skops.io._general as general
names = {k: v for k, v in vars(module).items() if k.endswith("_NAMES")}
print(json.dumps({"names": names, "doc": module.__doc__ or "", "estimators": general.SKLEARN_ESTIMATOR_TYPE_NAMES}))
"""


def _names(mode: str, folder: Path) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-c", SNAPSHOT_NAMES, mode, str(folder)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


def test_skops_snapshot_holds_exactly_the_names_skops_computes(tmp_path: Path) -> None:
    from mlops_serving.skopstypes import snapshot_key

    real = _names("real", tmp_path)
    # the first import without a snapshot is a real one, and stores it
    first = _names("snapshot", tmp_path)
    assert (tmp_path / f"{snapshot_key()}.json").is_file()
    assert first["names"] == real["names"] and "mlops_serving" not in first["doc"]
    second = _names("snapshot", tmp_path)
    assert "mlops_serving.skopstypes" in second["doc"]  # this time from the snapshot
    assert second["names"] == real["names"]
    assert second["estimators"] == real["estimators"] and len(real["estimators"]) > 100
    assert {"SKLEARN_ESTIMATOR_TYPE_NAMES", "NUMPY_UFUNC_TYPE_NAMES", "SCIPY_UFUNC_TYPE_NAMES"} <= set(real["names"])


CACHED_LOAD = """
import json, sys
from pathlib import Path
from mlops_serving.modelcache import ModelCache
from mlops_serving.runtime import load_model
from mlops_serving.settings import ModelRef

def no_registry():
    raise AssertionError("the registry was asked")

cache = ModelCache(Path(sys.argv[1]), sys.argv[2])
model = load_model(no_registry, ModelRef("wine-classifier", 1), cache)
heavy = sorted(m for m in ("mlflow", "sklearn", "scipy", "skops", "pandas", "pyarrow") if m in sys.modules)
print(json.dumps({"heavy": heavy, "features": model.feature_names, "run_id": model.run_id,
                  "baseline": model.baseline is not None, "compiled": type(model.estimator).__name__,
                  "proba": model.predict(model.probe_rows()).probabilities.tolist()}))
"""


def test_a_cached_version_is_served_without_the_registry(trained_store: Any, tmp_path: Path,
                                                         wine_model: Any) -> None:
    home = tmp_path / ".mlops"
    shutil.copytree(trained_store.home, home)
    cache = tmp_path / "cache"
    env = {**trained_store.env(MLOPS_SERVING_AUTH="off", MLOPS_SERVING_MODEL_CACHE_DIR=str(cache),
                               MLOPS_SERVING_PREDLOG_SAMPLE_RATE="0", MLOPS_SERVING_MODELS=f"{WINE}:1",
                               MLOPS_SERVING_LOAD_RETRY_INITIAL_S="0.2", MLOPS_SERVING_LOAD_RETRY_MAX_S="1"),
           "MLOPS_HOME": str(home)}
    body = {"dataframe_split": {"columns": wine_features(), "data": WINE_ROWS}}
    x = np.asarray(WINE_ROWS, dtype=np.float64)

    first = start_server(tmp_path, env)  # empty cache: from the registry, into the cache
    try:
        answer = first.post("/invocations", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == wine_model.predict(x).tolist()
        metadata = first.get(f"/v2/models/{WINE}").json()
    finally:
        first.stop()
    entries = list(cache.glob(f"*/{WINE}/1/entry.json"))
    assert len(entries) == 1 and (entries[0].parent / "model" / "MLmodel").is_file()
    assert (entries[0].parent / "baseline.json").is_file()
    assert (entries[0].parent / "forest.npz").is_file()  # checked against the estimator, then stored
    assert json.loads(entries[0].read_text())["run_id"] == metadata["parameters"]["run_id"]

    # the downloading process: the compiled forest up to SMALL_BATCH rows, the estimator's trees above
    assert metadata["parameters"]["predict_path"] == PATH_SPLIT
    (home / "mlflow.db").rename(tmp_path / "mlflow.db.away")  # no registry any more
    second = start_server(tmp_path, env)
    try:
        again = second.post("/invocations", json=body)
        assert again.status_code == 200, again.text
        assert again.json() == answer.json()
        # ready on the compiled forest alone; the estimator loads after ready, from the cache entry, and
        # then predicts the large batches, as in the downloading process
        assert second.get(f"/v2/models/{WINE}").json()["parameters"]["predict_path"] in (PATH_COMPILED_LOADING,
                                                                                          PATH_SPLIT)
        wait_until(lambda: second.get(f"/v2/models/{WINE}").json()["parameters"]["predict_path"] == PATH_SPLIT,
                   120, f"{second.url}: estimator not attached\n{second.log.read_text(errors='replace')[-3000:]}")
        assert second.get(f"/v2/models/{WINE}").json() == metadata  # same version, run, features, classes, path
        assert f"{WINE} v1: scikit-learn estimator loaded" in second.log.read_text()
        large = [WINE_ROWS[i % len(WINE_ROWS)] for i in range(200)]
        for rows in (WINE_ROWS[:1], large):  # the same answers on both sides of SMALL_BATCH
            proba = second.post("/predict", json={"features": rows, "probabilities": True})
            assert proba.status_code == 200, proba.text
            expected = wine_model.predict_proba(np.asarray(rows, dtype=np.float64)).tolist()
            assert proba.json()["probabilities"] == expected
    finally:
        second.stop()

    # an alias must be resolved by the registry: not ready, with the registry's reason
    alias = start_server(tmp_path, {**env, "MLOPS_SERVING_MODELS": f"{CANCER}@candidate"}, ready=False)
    try:
        ready = alias.get("/readyz")
        assert ready.status_code == 503 and CANCER in ready.text, ready.text
    finally:
        alias.stop()

    # in process: the cached load asks no registry and imports neither MLflow nor scikit-learn
    # (nor SciPy, skops, pandas): the forest comes from its compiled arrays
    uri = f"sqlite:///{(home / 'mlflow.db').resolve()}"
    result = subprocess.run([sys.executable, "-c", CACHED_LOAD, str(cache), uri], capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    probe = np.asarray(loaded.pop("proba"))
    assert loaded == {"heavy": [], "features": wine_features(), "run_id": metadata["parameters"]["run_id"],
                      "baseline": True, "compiled": "CompiledForest"}
    assert np.array_equal(probe, wine_model.predict_proba(_probe_rows(entries[0].parent)))


def _probe_rows(entry: Path) -> Any:
    from mlops_drift.baseline import BaselineStatistics
    from mlops_serving.runtime import LoadedModel
    from mlops_serving.settings import ModelRef

    baseline = BaselineStatistics.model_validate_json((entry / "baseline.json").read_text())
    model = LoadedModel(name=WINE, version="1", run_id="r", ref=ModelRef(WINE, 1), estimator=None,
                        feature_names=wine_features(), baseline=baseline)
    return model.probe_rows()


def test_a_damaged_cache_entry_is_downloaded_again(trained_store: Any, tmp_path: Path) -> None:
    from mlops_serving.fastpath import CompiledForest

    cache = tmp_path / "cache"
    env = trained_store.env(MLOPS_SERVING_AUTH="off", MLOPS_SERVING_MODEL_CACHE_DIR=str(cache),
                            MLOPS_SERVING_PREDLOG_SAMPLE_RATE="0", MLOPS_SERVING_MODELS=f"{WINE}:1")
    server = start_server(tmp_path, env)
    server.stop()
    entry = next(cache.glob(f"*/{WINE}/1"))
    for damage in ("model file", "no baseline", "compiled forest"):
        if damage == "compiled forest":  # used instead of the model file: damaged, the estimator is loaded
            (entry / "forest.npz").write_bytes(b"PK\x03\x04 not a zip")
        elif damage == "model file":
            (entry / "model" / "MLmodel").write_text("corrupt: [")
        else:  # as if a start died part-way: neither the baseline nor the "missing" marker
            (entry / "baseline.json").unlink()
        server = start_server(tmp_path, env)
        try:
            response = requests.post(server.url + "/predict", json={"features": WINE_ROWS}, timeout=30)
            assert response.status_code == 200, (damage, response.text)
        finally:
            server.stop()
        assert (entry / "baseline.json").is_file(), damage
        assert "corrupt" not in (entry / "model" / "MLmodel").read_text(), damage
        assert CompiledForest.load(entry / "forest.npz").n_features_in_ == len(wine_features()), damage  # again
