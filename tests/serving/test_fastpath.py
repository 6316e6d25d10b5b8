"""The fast forest probabilities are bit-identical to predict_proba, or not used at all."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier, RandomForestClassifier

from mlops_serving import runtime
from mlops_serving.fastpath import CompiledForest, forest_proba
from mlops_serving.runtime import LoadedModel
from mlops_serving.settings import ModelRef


@pytest.mark.parametrize("loader", [load_wine, load_breast_cancer])
@pytest.mark.parametrize("cls", [RandomForestClassifier, ExtraTreesClassifier])
def test_fast_path_equals_predict_proba_bit_for_bit(loader, cls) -> None:  # type: ignore[no-untyped-def]
    x, y = loader(return_X_y=True)
    model = cls(n_estimators=30, random_state=0).fit(x, y)
    fast = forest_proba(model)
    assert fast is not None
    for rows in (x[:1], x[:64], x):
        assert np.array_equal(fast(rows), model.predict_proba(rows))


def test_other_estimators_keep_their_own_method() -> None:
    x, y = load_wine(return_X_y=True)
    assert forest_proba(GradientBoostingClassifier(n_estimators=5).fit(x, y)) is None
    multi = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, np.column_stack([y, y]))
    assert forest_proba(multi) is None


def _loaded(estimator: object) -> LoadedModel:
    return LoadedModel(name="m", version="1", run_id="r" * 32, ref=ModelRef("m", 1), estimator=estimator,
                       feature_names=[f"f{i}" for i in range(13)], baseline=None)


def test_loaded_model_uses_the_fast_path_only_after_checking_it(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = load_wine(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(x, y)

    model = _loaded(forest)
    model.enable_fast_path()
    assert model.proba_fn is not None
    prediction = model.predict(x)
    assert np.array_equal(prediction.probabilities, forest.predict_proba(x))
    assert np.array_equal(prediction.labels, forest.predict(x))

    # A fast path that disagrees (a future scikit-learn, say) is refused.
    monkeypatch.setattr(runtime, "forest_proba", lambda est: (lambda rows: np.zeros((len(rows), 3))))
    refused = _loaded(forest)
    refused.enable_fast_path()
    assert refused.proba_fn is None
    assert np.array_equal(refused.predict(x).probabilities, forest.predict_proba(x))


@pytest.mark.parametrize("loader", [load_wine, load_breast_cancer])
@pytest.mark.parametrize("cls", [RandomForestClassifier, ExtraTreesClassifier])
def test_compiled_forest_equals_the_estimator_bit_for_bit(loader, cls, tmp_path) -> None:  # type: ignore[no-untyped-def]
    x, y = loader(return_X_y=True)
    names = np.asarray(["class-" + str(label) for label in y])  # string classes are stored too
    model = cls(n_estimators=30, random_state=0).fit(x, names)
    compiled = CompiledForest.from_estimator(model)
    assert compiled is not None
    compiled.save(tmp_path / "forest.npz")
    loaded = CompiledForest.load(tmp_path / "forest.npz")
    rng = np.random.default_rng(1)
    spread = x.min(axis=0) + (x.max(axis=0) - x.min(axis=0)) * rng.uniform(-0.2, 1.2, size=(500, x.shape[1]))
    for rows in (x[:1], x[:64], x, spread):
        assert np.array_equal(loaded.predict_proba(rows), model.predict_proba(rows))
        assert np.array_equal(loaded.predict(rows), model.predict(rows))
    assert loaded.n_features_in_ == x.shape[1] and list(loaded.classes_) == list(model.classes_)


def test_compiled_forest_sends_missing_values_where_the_trees_do() -> None:
    x, y = load_wine(return_X_y=True)
    holes = x.copy()
    holes[::3, 6] = np.nan  # trees grown with missing values learn where NaN goes at each split
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(holes, y)
    compiled = CompiledForest.from_estimator(model)
    assert compiled is not None
    for rows in (holes, x):
        assert np.array_equal(compiled.predict_proba(rows), model.predict_proba(rows))
    plain = CompiledForest.from_estimator(RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y))
    assert plain is not None
    fast = forest_proba(RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y))
    assert fast is not None
    assert np.array_equal(plain.predict_proba(holes), fast(holes))  # NaN goes right, as in Tree.apply


def test_compiled_forest_predicts_single_rows_as_the_trees_do() -> None:
    """A single row takes its own walk (every node decided at once): the same leaves, NaN included."""
    x, y = load_wine(return_X_y=True)
    holes = x.copy()
    holes[::3, 6] = np.nan
    rng = np.random.default_rng(2)
    spread = x.min(axis=0) + (x.max(axis=0) - x.min(axis=0)) * rng.uniform(-0.2, 1.2, size=(200, x.shape[1]))
    for data in (x, holes):
        model = RandomForestClassifier(n_estimators=20, random_state=0).fit(data, y)
        compiled = CompiledForest.from_estimator(model)
        assert compiled is not None
        for row in [*data, *spread]:
            single = row[None, :]
            assert np.array_equal(compiled.predict_proba(single), model.predict_proba(single))
            as_path = compiled._leaves_by_path(np.ascontiguousarray(single, dtype=np.float32))
            assert np.array_equal(compiled._leaf_every_node(np.ascontiguousarray(single, dtype=np.float32)), as_path)


def test_compiled_forest_refuses_other_estimators_and_damaged_arrays(tmp_path) -> None:  # type: ignore[no-untyped-def]
    x, y = load_wine(return_X_y=True)
    assert CompiledForest.from_estimator(GradientBoostingClassifier(n_estimators=5).fit(x, y)) is None
    compiled = CompiledForest.from_estimator(RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y))
    assert compiled is not None
    arrays = dict(compiled.arrays)
    arrays["left"] = arrays["left"] + len(arrays["left"])  # a child outside the forest
    with pytest.raises(ValueError, match="out of range"):
        CompiledForest(arrays)
    with pytest.raises(ValueError, match="format"):
        CompiledForest({**compiled.arrays, "format": np.asarray(99)})
    with pytest.raises(ValueError, match="features"):
        compiled.predict_proba(x[:, :5])



def _cached_forest(compiled: CompiledForest, estimator: object) -> LoadedModel:
    """A model as ``_load_files`` leaves a cached forest: the compiled arrays, the estimator to load."""
    model = _loaded(compiled)
    model.proba_fn, model.proba_argmax = compiled.predict_proba, True
    model.predict_path = runtime.PATH_COMPILED_LOADING
    model.estimator_loader = lambda: estimator
    return model


def test_a_compiled_forest_hands_large_batches_to_the_estimator_once_loaded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_serving.fastpath import SMALL_BATCH

    x, y = load_wine(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(x, y)
    compiled = CompiledForest.from_estimator(forest)
    assert compiled is not None
    model = _cached_forest(compiled, forest)
    before = model.predict(x)

    compiled_rows: list[int] = []
    compiled_proba = compiled.predict_proba

    def counted(rows: np.ndarray) -> np.ndarray:
        compiled_rows.append(len(rows))
        return compiled_proba(rows)

    monkeypatch.setattr(compiled, "predict_proba", counted)
    assert model.attach_estimator() is True
    assert model.predict_path == runtime.PATH_SPLIT and model.estimator_loader is None
    assert model.attach_estimator() is False  # once
    compiled_rows.clear()
    for rows in (x[:1], x[:SMALL_BATCH], x[:SMALL_BATCH + 1], x):  # the same answers, small and large batches
        after = model.predict(rows)
        assert np.array_equal(after.probabilities, forest.predict_proba(rows))
        assert np.array_equal(after.labels, forest.predict(rows))
    assert compiled_rows == [1, SMALL_BATCH]  # above SMALL_BATCH rows, the estimator's trees
    assert np.array_equal(model.predict(x).probabilities, before.probabilities)
    monkeypatch.undo()

    # an estimator whose trees differ from the compiled arrays (another version's file): not used
    refused = _cached_forest(compiled, RandomForestClassifier(n_estimators=20, random_state=1).fit(x, y))
    assert refused.attach_estimator() is False
    assert refused.predict_path == runtime.PATH_COMPILED and refused.proba_fn == compiled.predict_proba

    # an estimator that cannot be loaded: the compiled forest goes on predicting every batch
    broken = _cached_forest(compiled, forest)

    def fail() -> None:
        raise OSError("model.skops: no such file")

    broken.estimator_loader = fail
    assert broken.attach_estimator() is False
    assert broken.predict_path == runtime.PATH_COMPILED
    assert np.array_equal(broken.predict(x).probabilities, forest.predict_proba(x))


def test_the_manager_attaches_estimators_after_the_models_are_ready(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    import time

    from mlops_serving.metrics import ServingMetrics
    from mlops_serving.runtime import ModelManager
    from mlops_serving.settings import ServingSettings

    x, y = load_wine(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(x, y)
    compiled = CompiledForest.from_estimator(forest)
    assert compiled is not None
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    settings = ServingSettings(models="a:1,b:1", load_retry_initial_s=0.05, load_retry_max_s=0.05)
    manager: ModelManager
    attempts = {"a": 0, "b": 0}
    ready_when_loaded: dict[str, bool] = {}

    def load(registry: object, ref: ModelRef) -> LoadedModel:
        attempts[ref.name] += 1
        if ref.name == "b" and attempts["b"] == 1:
            raise OSError("registry unreachable")  # b: ready only at its second attempt

        def estimator() -> RandomForestClassifier:
            ready_when_loaded[ref.name] = manager.slots[ref.name].state == "ready"
            return forest

        model = _cached_forest(compiled, forest)
        model.name = ref.name
        model.estimator_loader = estimator
        return model

    async def run() -> dict[str, str]:
        nonlocal manager
        manager = ModelManager(settings, ServingMetrics(), loader=load)
        monkeypatch.setattr(manager, "_get_registry", lambda: None)
        manager.start()
        deadline = time.monotonic() + 60
        paths: dict[str, str] = {}
        while time.monotonic() < deadline:
            paths = {n: s.model.predict_path if s.model else "" for n, s in manager.slots.items()}
            if all(p == runtime.PATH_SPLIT for p in paths.values()):
                break
            await asyncio.sleep(0.05)
        await manager.stop()
        return paths

    assert asyncio.run(run()) == {"a": runtime.PATH_SPLIT, "b": runtime.PATH_SPLIT}
    assert attempts == {"a": 1, "b": 2}
    assert ready_when_loaded == {"a": True, "b": True}  # never before the model was ready
