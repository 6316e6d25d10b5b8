"""The fast forest probabilities are bit-identical to predict_proba, or not used at all."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier, RandomForestClassifier

from mlops_serving import runtime
from mlops_serving.fastpath import forest_proba
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
