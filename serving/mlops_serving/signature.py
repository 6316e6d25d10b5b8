"""What a served model takes: its input contract, read from the MLflow signature. No HTTP here.

Every protocol parses a request into a float64 matrix (rows × features); this module says how
wide it must be, what its columns are called, which values each column may hold and what the model
is given. Three kinds, after the signature a model was logged with:

* ``columns`` — a column-based signature (``infer_signature(dataframe, y)``): named features in
  signature order; ``long``/``integer`` columns take integers only (422 otherwise), ``float``
  columns values within float32; the model gets a DataFrame of those dtypes (pyfunc models) or
  the float64 matrix (scikit-learn models, whose trees read float32 anyway).
* ``tensor`` — a tensor signature (``infer_signature(X_numpy, y)``, e.g. ``float64 (-1, 13)``):
  shape ``(-1, F)`` or ``(-1,)``, one dtype; rows of ``F`` values (the v2 ``[N, F]`` tensor and the
  ``inputs``/``instances`` lists map onto it directly), integer dtypes take integers only, and the
  model gets an array of that dtype and shape. Its columns have no names: they are called by
  position (``"0"``, ``"1"``, ...), or by the feature names of an attached baseline.
* ``none`` — no signature: nothing is validated beyond finite numbers and what the model itself
  checks (a ``ValueError``/``TypeError``/``KeyError`` raised by such a model is the client's 422).
  The width comes from the baseline or from the scikit-learn estimator (``feature_names_in_``,
  ``n_features_in_``); when neither knows it, each request's own width is passed through, and
  only positional input makes sense.

Every kind refuses NaN and infinity (JSON has neither; the prediction log and the drift
statistics need finite numbers).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from mlops_platform.errors import MlopsError
from mlops_serving.errors import ModelInputError

Kind = Literal["columns", "tensor", "none"]

COLUMN_DTYPES: dict[str, str] = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32"}
"""Column types of a column signature that can be served, and the numpy dtype the model gets."""

NUMERIC_TYPES = tuple(COLUMN_DTYPES)

V2_DATATYPES: dict[str, str] = {
    "float16": "FP16", "float32": "FP32", "float64": "FP64",
    "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
    "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
}
"""numpy dtype name → Open Inference v2 datatype."""


class SignatureError(MlopsError):
    """The signature describes an input this server cannot take (the version is not served)."""


def positional_names(width: int) -> list[str]:
    """Names of unnamed columns: their positions, as pandas names the columns of ``DataFrame(X)``."""
    return [str(i) for i in range(width)]


@dataclass(frozen=True)
class InputSchema:
    kind: Kind
    feature_names: tuple[str, ...]
    """Features in model order; empty when the width is unknown (``none`` without any hint)."""
    dtypes: tuple[str, ...]
    """The numpy dtype the model gets, one per feature (empty when the width is unknown)."""
    names_known: bool
    """The names are the model's own (signature columns, baseline, ``feature_names_in_``), not positions."""
    tensor_name: str | None = None
    tensor_shape: tuple[int, ...] | None = None
    source: str = ""
    """Where the features came from, for the log (``signature``, ``baseline``, ``estimator``)."""

    @property
    def width(self) -> int | None:
        return len(self.feature_names) if self.feature_names else None

    @property
    def validated(self) -> bool:
        return self.kind != "none"

    def describe(self) -> str:
        """One line for the start-up log and the v2 metadata."""
        width = self.width
        if self.kind == "columns":
            return f"column signature, {width} columns"
        if self.kind == "tensor":
            shape = ", ".join(str(d) for d in self.tensor_shape or ())
            return f"tensor signature {self.dtypes[0]} ({shape})"
        known = f"{width} features from the {self.source}" if width else "width unknown"
        return f"no signature ({known}): inputs are not validated beyond finite numbers and what the model checks"

    def names_for(self, width: int | None = None, given: Sequence[str] | None = None) -> list[str]:
        """The feature names a request is read with: the schema's, or (width unknown) the names
        the request gives, or its positions."""
        if self.feature_names:
            return list(self.feature_names)
        if given is not None:
            return [str(name) for name in given]
        return positional_names(width or 0)

    @cached_property
    def _integer_columns(self) -> list[int]:
        return [j for j, dtype in enumerate(self.dtypes) if np.dtype(dtype).kind in "iu"]

    def check(self, features: npt.NDArray[np.float64]) -> None:
        """422 naming the first value the model's dtype cannot hold (a fraction for an integer
        column, an integer beyond its range); float64 and float32 were checked while parsing."""
        if not self._integer_columns or features.ndim != 2 or features.shape[1] != len(self.dtypes):
            return
        for j in self._integer_columns:
            dtype = self.dtypes[j]
            column = features[:, j]
            info = np.iinfo(np.dtype(dtype))
            bad = (column != np.floor(column)) | (column < info.min) | (column > info.max)
            if bad.any():
                i = int(np.argmax(bad))
                name = self.feature_names[j]
                raise ModelInputError(
                    f"row {i}, feature {name}: {column[i]:g} is not an integer of type {dtype} (the model's "
                    f"signature: integers from {info.min} to {info.max})", field=name,
                )

    def model_input(self, features: npt.NDArray[np.float64], names: Sequence[str] | None = None) -> Any:
        """What a pyfunc model's ``predict`` gets for ``features`` (rows × features, float64)."""
        if self.kind == "tensor":
            shape = self.tensor_shape or (-1, features.shape[1])
            target = (-1,) if len(shape) == 1 else (-1, *shape[1:])
            return np.ascontiguousarray(features, dtype=self.dtypes[0]).reshape(target)
        import pandas as pd

        if self.kind == "columns":
            return pd.DataFrame({
                name: features[:, j].astype(self.dtypes[j], copy=False) for j, name in enumerate(self.feature_names)
            })
        if self.names_known:
            return pd.DataFrame(features, columns=list(self.feature_names))
        return features


def from_signature(signature: Any, baseline_names: Sequence[str] | None, estimator: Any, uri: str) -> InputSchema:
    """The input schema of a model version: its MLflow ``signature`` (or None), the feature names
    of its baseline (or None), and its scikit-learn ``estimator`` (or None: a pyfunc model)."""
    inputs = getattr(signature, "inputs", None)
    if inputs is not None and inputs.has_input_names() and not inputs.is_tensor_spec():
        specs = inputs.inputs
        bad = [f"{s.name} ({_type_name(s.type)})" for s in specs if _type_name(s.type) not in COLUMN_DTYPES]
        if bad:
            raise SignatureError(f"{uri}: only numeric features can be served; signature has {', '.join(bad)}")
        return InputSchema(
            "columns", tuple(str(s.name) for s in specs), tuple(COLUMN_DTYPES[_type_name(s.type)] for s in specs),
            names_known=True, source="signature",
        )
    if inputs is not None and inputs.is_tensor_spec():
        return _tensor_schema(inputs, baseline_names, uri)
    if inputs is not None and not inputs.has_input_names():  # unnamed columns: ColSpecs without names
        specs = inputs.inputs
        bad = [_type_name(s.type) for s in specs if _type_name(s.type) not in COLUMN_DTYPES]
        if bad:
            raise SignatureError(f"{uri}: only numeric features can be served; signature has {', '.join(bad)}")
        names = _baseline_or_positions(baseline_names, len(specs))
        return InputSchema("columns", tuple(names), tuple(COLUMN_DTYPES[_type_name(s.type)] for s in specs),
                           names_known=names != positional_names(len(specs)), source="signature")
    return _unsigned_schema(baseline_names, estimator)


def _tensor_schema(inputs: Any, baseline_names: Sequence[str] | None, uri: str) -> InputSchema:
    specs = inputs.inputs
    if len(specs) != 1:
        raise SignatureError(f"{uri}: a signature of {len(specs)} tensors; one tensor (-1, F) can be served")
    spec = specs[0]
    dtype = np.dtype(spec.type)
    shape = tuple(int(d) for d in spec.shape)
    if dtype.name not in V2_DATATYPES:
        raise SignatureError(f"{uri}: tensor of {dtype.name}; only numeric tensors can be served")
    if shape[:1] != (-1,) or len(shape) > 2:
        raise SignatureError(f"{uri}: tensor of shape {shape}; tensors of shape (-1, F) or (-1,) can be served")
    width = 1 if len(shape) == 1 else shape[1]
    if width == -1:  # (-1, -1): any width, like a model without signature
        names: list[str] = list(baseline_names or [])
    else:
        names = _baseline_or_positions(baseline_names, width)
    return InputSchema(
        "tensor", tuple(names), tuple(dtype.name for _ in names) or (dtype.name,),
        names_known=bool(baseline_names) and names == list(baseline_names or []),
        tensor_name=spec.name, tensor_shape=shape, source="signature",
    )


def _unsigned_schema(baseline_names: Sequence[str] | None, estimator: Any) -> InputSchema:
    if baseline_names:
        return InputSchema("none", tuple(baseline_names), tuple("float64" for _ in baseline_names),
                           names_known=True, source="baseline")
    names_in = getattr(estimator, "feature_names_in_", None)
    if names_in is not None:
        names = [str(n) for n in names_in]
        return InputSchema("none", tuple(names), tuple("float64" for _ in names), names_known=True,
                           source="estimator")
    width = getattr(estimator, "n_features_in_", None)
    if width is not None:
        names = positional_names(int(width))
        return InputSchema("none", tuple(names), tuple("float64" for _ in names), names_known=False,
                           source="estimator")
    return InputSchema("none", (), (), names_known=False, source="request")


def _baseline_or_positions(baseline_names: Sequence[str] | None, width: int) -> list[str]:
    if baseline_names and len(baseline_names) == width:
        return [str(n) for n in baseline_names]
    return positional_names(width)


def _type_name(value: Any) -> str:
    return str(getattr(value, "name", value))


# -- the signature as MLflow writes it in MLmodel, read without importing MLflow ------------------

_COLUMN_NUMPY: dict[str, str] = {
    **COLUMN_DTYPES, "boolean": "bool", "string": "object", "binary": "object", "datetime": "datetime64[ns]",
}


@dataclass(frozen=True)
class SpecEntry:
    """One input or output of a signature: a column (``type`` its MLflow name: ``double``, ...) or a
    tensor (``type`` its numpy dtype, ``shape`` set)."""

    name: str | None
    type: str
    shape: tuple[int, ...] | None = None

    def numpy_type(self) -> str:
        return self.type if self.shape is not None else _COLUMN_NUMPY.get(self.type, "object")


@dataclass(frozen=True)
class SpecList:
    """A signature's inputs or outputs, answering what :func:`from_signature` asks of MLflow's ``Schema``."""

    inputs: list[SpecEntry]

    def has_input_names(self) -> bool:
        return all(s.name is not None for s in self.inputs)

    def is_tensor_spec(self) -> bool:
        return bool(self.inputs) and self.inputs[0].shape is not None

    def numpy_types(self) -> list[str]:
        return [s.numpy_type() for s in self.inputs]


@dataclass(frozen=True)
class FileSignature:
    inputs: SpecList | None
    outputs: SpecList | None


def _spec_list(raw: Any) -> SpecList | None:
    if not raw:
        return None
    entries = []
    for spec in json.loads(raw) if isinstance(raw, str) else raw:
        if spec.get("type") == "tensor":
            tensor = spec.get("tensor-spec") or {}
            entries.append(SpecEntry(spec.get("name"), str(tensor.get("dtype")),
                                     tuple(int(d) for d in tensor.get("shape") or ())))
        else:
            entries.append(SpecEntry(spec.get("name"), str(spec.get("type"))))
    return SpecList(entries)


def mlmodel_signature(mlmodel: dict[str, Any]) -> FileSignature | None:
    """The signature of a model folder's ``MLmodel`` (parsed YAML), or None: what
    ``mlflow.models.get_model_info(...).signature`` gives, for :func:`from_signature`, without
    importing MLflow (the server's cold start)."""
    signature = mlmodel.get("signature") or {}
    inputs, outputs = _spec_list(signature.get("inputs")), _spec_list(signature.get("outputs"))
    if inputs is None and outputs is None:
        return None
    return FileSignature(inputs, outputs)
