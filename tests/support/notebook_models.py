"""Register models the way a notebook does: plain MLflow calls, no `mlops train`, no baseline.

Run as a script against a tracking server (``MLFLOW_TRACKING_URI``); every model is logged inside
a run with ``registered_model_name`` and ``pip_requirements`` (so MLflow does not spend seconds
inferring them). Also writes, into the folder given as the first argument, the wine rows as
``wine.csv`` (named columns, for `mlops baseline create`) and ``expected.json``: what each model,
as the notebook holds it in memory, predicts for the first five rows (the server must agree).

| name                  | what                                                     | signature                        |
|-----------------------|----------------------------------------------------------|----------------------------------|
| nb-columns            | RandomForest on a DataFrame, skops (MLflow 3's default)  | columns, ``magnesium`` is long   |
| nb-tensor             | RandomForest on a numpy array, skops                     | tensor float64 (-1, 13)          |
| nb-nosig              | RandomForest on a numpy array, skops                     | none                             |
| nb-cloudpickle        | scaler + logistic regression, cloudpickle                | tensor float32 (-1, 13)          |
| nb-pyfunc             | a PythonModel rule on named columns, string labels       | columns x, y (double), n (long)  |
| nb-pyfunc-int         | a PythonModel summing integer counts                     | tensor int64 (-1, 3)             |
| nb-pyfunc-nosig       | a PythonModel returning row sums, any width              | none                             |
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import ColSpec, Schema, TensorSpec
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

TREE = ["sklearn.tree._tree.Tree"]  # skops refuses the tree's Cython class unless it is trusted
SKLEARN_REQS = ["scikit-learn", "skops"]
PYFUNC_REQS = ["pandas", "numpy"]


class Rule(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """Label "hi" when x + y > n, else "lo"; needs its named columns."""

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]  # as notebooks write it
        total = model_input["x"] + model_input["y"]
        return ["hi" if t > n else "lo" for t, n in zip(total, model_input["n"], strict=True)]


class Counts(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """The sum of each row of integer counts (int64)."""

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        if model_input.dtype != np.int64:
            raise TypeError(f"expected int64 counts, got {model_input.dtype}")
        return model_input.sum(axis=1)


class RowSums(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """Row sums of whatever it gets; refuses rows of fewer than two values (its own validation)."""

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        values = np.asarray(model_input, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] < 2:
            raise ValueError(f"RowSums needs rows of at least 2 values, got shape {values.shape}")
        return values.sum(axis=1)


def main(out: Path) -> None:
    data = load_wine(as_frame=True)
    frame: pd.DataFrame = data.data.copy()
    frame["magnesium"] = frame["magnesium"].astype("int64")
    y = data.target.to_numpy()
    x = frame.to_numpy(dtype=np.float64)
    frame.to_csv(out / "wine.csv", index=False)
    mlflow.set_experiment("notebook")
    rows = x[:5]
    expected: dict[str, list[object]] = {}

    with mlflow.start_run(run_name="columns"):
        model = RandomForestClassifier(n_estimators=20, random_state=0).fit(frame, y)
        mlflow.sklearn.log_model(model, name="model", signature=infer_signature(frame, y),
                                 registered_model_name="nb-columns", skops_trusted_types=TREE,
                                 pip_requirements=SKLEARN_REQS)
        expected["nb-columns"] = model.predict(frame.iloc[:5]).tolist()
    with mlflow.start_run(run_name="tensor"):
        model = RandomForestClassifier(n_estimators=20, random_state=1).fit(x, y)
        mlflow.sklearn.log_model(model, name="model", signature=infer_signature(x, y),
                                 registered_model_name="nb-tensor", skops_trusted_types=TREE,
                                 pip_requirements=SKLEARN_REQS)
        expected["nb-tensor"] = model.predict(rows).tolist()
    with mlflow.start_run(run_name="nosig"):
        model = RandomForestClassifier(n_estimators=20, random_state=2).fit(x, y)
        mlflow.sklearn.log_model(model, name="model", registered_model_name="nb-nosig", skops_trusted_types=TREE,
                                 pip_requirements=SKLEARN_REQS)
        expected["nb-nosig"] = model.predict(rows).tolist()
    with mlflow.start_run(run_name="cloudpickle"):
        x32 = x.astype(np.float32)
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x32, y)
        mlflow.sklearn.log_model(model, name="model", signature=infer_signature(x32, y),
                                 registered_model_name="nb-cloudpickle", serialization_format="cloudpickle",
                                 pip_requirements=SKLEARN_REQS)
        expected["nb-cloudpickle"] = model.predict(x32[:5]).tolist()
    with mlflow.start_run(run_name="pyfunc"):
        signature = ModelSignature(
            inputs=Schema([ColSpec("double", "x"), ColSpec("double", "y"), ColSpec("long", "n")]),
            outputs=Schema([ColSpec("string")]),
        )
        mlflow.pyfunc.log_model(name="model", python_model=Rule(), signature=signature,
                                registered_model_name="nb-pyfunc", pip_requirements=PYFUNC_REQS)
    with mlflow.start_run(run_name="pyfunc-int"):
        signature = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype("int64"), (-1, 3))]),
            outputs=Schema([TensorSpec(np.dtype("int64"), (-1,))]),
        )
        mlflow.pyfunc.log_model(name="model", python_model=Counts(), signature=signature,
                                registered_model_name="nb-pyfunc-int", pip_requirements=PYFUNC_REQS)
    with mlflow.start_run(run_name="pyfunc-nosig"):
        mlflow.pyfunc.log_model(name="model", python_model=RowSums(), registered_model_name="nb-pyfunc-nosig",
                                pip_requirements=PYFUNC_REQS)
    (out / "expected.json").write_text(json.dumps(expected))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
