"""The input contract read from MLflow signatures (`mlops_serving.signature`), without a server.

The end-to-end view (notebook models in a real MLflow server, real clients) is
`test_byom.py`; these cases pin the rules one by one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import ColSpec, Schema, TensorSpec

from mlops_serving.errors import ModelInputError
from mlops_serving.signature import SignatureError, from_signature

URI = "models:/m/1"


class Estimator:
    n_features_in_ = 4


class NamedEstimator(Estimator):
    feature_names_in_ = np.array(["a", "b", "c", "d"], dtype=object)


def test_column_signature_keeps_names_and_types() -> None:
    frame = pd.DataFrame({"a": [1.5], "n": np.array([3], dtype=np.int64), "f": np.array([1.0], dtype=np.float32)})
    schema = from_signature(infer_signature(frame, [1]), None, None, URI)
    assert schema.kind == "columns" and schema.names_known
    assert schema.feature_names == ("a", "n", "f") and schema.dtypes == ("float64", "int64", "float32")
    assert schema.describe() == "column signature, 3 columns"
    given = schema.model_input(np.array([[1.5, 3.0, 2.0]]))
    assert list(given.columns) == ["a", "n", "f"] and [str(t) for t in given.dtypes] == ["float64", "int64", "float32"]
    schema.check(np.array([[1.5, 3.0, 2.5]]))  # a fraction is fine in a float column
    with pytest.raises(ModelInputError, match=r"row 1, feature n: 3.5 is not an integer of type int64"):
        schema.check(np.array([[1.5, 3.0, 2.5], [0.0, 3.5, 0.0]]))


def test_string_columns_are_refused_at_load() -> None:
    signature = ModelSignature(inputs=Schema([ColSpec("double", "a"), ColSpec("string", "city")]))
    with pytest.raises(SignatureError, match=r"only numeric features can be served; signature has city \(string\)"):
        from_signature(signature, None, None, URI)


def test_tensor_signature_is_positional_unless_a_baseline_names_it() -> None:
    x = np.ones((3, 4))
    schema = from_signature(infer_signature(x, [1, 2, 3]), None, Estimator(), URI)
    assert schema.kind == "tensor" and not schema.names_known
    assert schema.feature_names == ("0", "1", "2", "3") and schema.dtypes == ("float64",) * 4
    assert schema.describe() == "tensor signature float64 (-1, 4)"
    named = from_signature(infer_signature(x, [1, 2, 3]), ["p", "q", "r", "s"], Estimator(), URI)
    assert named.feature_names == ("p", "q", "r", "s") and named.names_known
    wrong_width = from_signature(infer_signature(x, [1, 2, 3]), ["p", "q"], Estimator(), URI)
    assert wrong_width.feature_names == ("0", "1", "2", "3")


def test_tensor_dtypes_and_shapes() -> None:
    ints = ModelSignature(inputs=Schema([TensorSpec(np.dtype("int64"), (-1, 3))]))
    schema = from_signature(ints, None, None, URI)
    given = schema.model_input(np.array([[1.0, 2.0, 3.0]]))
    assert given.dtype == np.int64 and given.shape == (1, 3)
    with pytest.raises(ModelInputError, match="is not an integer of type int64"):
        schema.check(np.array([[1.0, 2.0, 2.5]]))
    small = ModelSignature(inputs=Schema([TensorSpec(np.dtype("int8"), (-1, 1))]))
    with pytest.raises(ModelInputError, match="integers from -128 to 127"):
        from_signature(small, None, None, URI).check(np.array([[300.0]]))
    vector = ModelSignature(inputs=Schema([TensorSpec(np.dtype("float32"), (-1,))]))
    flat = from_signature(vector, None, None, URI)
    assert flat.width == 1 and flat.model_input(np.array([[1.0], [2.0]])).shape == (2,)
    images = ModelSignature(inputs=Schema([TensorSpec(np.dtype("float32"), (-1, 28, 28))]))
    with pytest.raises(SignatureError, match=r"tensor of shape \(-1, 28, 28\)"):
        from_signature(images, None, None, URI)
    two = ModelSignature(inputs=Schema([TensorSpec(np.dtype("float32"), (-1, 2), "a"),
                                        TensorSpec(np.dtype("float32"), (-1, 2), "b")]))
    with pytest.raises(SignatureError, match="a signature of 2 tensors"):
        from_signature(two, None, None, URI)


@pytest.mark.parametrize(("baseline", "estimator", "names", "known", "source"), [
    (["x", "y"], Estimator(), ("x", "y"), True, "baseline"),
    (None, NamedEstimator(), ("a", "b", "c", "d"), True, "estimator"),
    (None, Estimator(), ("0", "1", "2", "3"), False, "estimator"),
    (None, None, (), False, "request"),
])
def test_no_signature(baseline: Any, estimator: Any, names: tuple[str, ...], known: bool, source: str) -> None:
    schema = from_signature(None, baseline, estimator, URI)
    assert schema.kind == "none" and not schema.validated
    assert schema.feature_names == names and schema.names_known is known and schema.source == source
    assert "not validated beyond finite numbers" in schema.describe()
    if not names:  # width unknown: the request decides
        assert schema.width is None
        assert schema.names_for(width=3) == ["0", "1", "2"]
        assert schema.names_for(given=["u", "v"]) == ["u", "v"]
        assert schema.model_input(np.ones((2, 3))).shape == (2, 3)


def test_the_signature_read_from_mlmodel_gives_the_schema_mlflow_s_signature_gives() -> None:
    """The server reads signatures from the MLmodel file without importing MLflow (cold start): each
    kind of signature must give the same input schema and output kind as MLflow's own object."""
    import pandas as pd

    from mlops_serving.runtime import _output_kind
    from mlops_serving.signature import mlmodel_signature

    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3, 4], "c": np.array([1.5, 2.5], dtype=np.float32)})
    signatures = [
        infer_signature(frame, np.array([0, 1])),
        infer_signature(frame, pd.Series(["x", "y"])),
        infer_signature(np.zeros((3, 4)), np.array([1, 2, 3])),
        infer_signature(np.zeros((3, 4), dtype=np.int64), np.array([0.5, 1.5, 2.5])),
        infer_signature(np.zeros(3, dtype=np.float32), np.array([True, False, True])),
        infer_signature(pd.DataFrame([[1.0, 2.0]])),
    ]
    for signature in signatures:
        from_file = mlmodel_signature({"signature": signature.to_dict()})
        assert from_signature(from_file, None, None, URI) == from_signature(signature, None, None, URI), signature
        assert _output_kind(from_file) == _output_kind(signature), signature
    assert mlmodel_signature({"flavors": {}}) is None
