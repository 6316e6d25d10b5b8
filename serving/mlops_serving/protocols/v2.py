"""Open Inference Protocol v2 over REST (KServe V2 / Triton), for tabular models.

Inputs, either:

* one tensor per feature, named by feature, each of shape ``[N]`` or ``[N, 1]`` (the model
  metadata lists these, from the signature); or
* one tensor of shape ``[N, F]`` (any name, e.g. ``input-0``) holding rows in signature order.

Data types FP16/FP32/FP64, INT8..INT64, UINT8..UINT64 and BYTES (numbers as text, e.g. from a CSV)
are accepted; data may be flat row-major or nested. The binary tensor data extension (the
``Inference-Header-Content-Length`` header, Triton's client default) is supported for inputs
and outputs.

Outputs: ``predict`` (shape ``[N]``; INT64, FP64, BOOL or BYTES after the class labels) and, for
classifiers with predict_proba, ``predict_proba`` (FP64, ``[N, classes]``). Without an
``outputs`` list every output is returned, as Triton does.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from mlops_serving.errors import BadRequestError, ModelInputError
from mlops_serving.protocols.tabular import (
    Matrix,
    ModelInputs,
    check_finite,
    check_names,
    decode_json,
    describe_features,
    media_type,
    out_of_range,
    require_object,
    to_array,
)
from mlops_serving.signature import V2_DATATYPES

if TYPE_CHECKING:
    from mlops_serving.runtime import LoadedModel, Prediction

CONTENT_TYPES = ("application/json", "application/octet-stream")
HEADER_LENGTH = "inference-header-content-length"
OUTPUT_PREDICT = "predict"
OUTPUT_PROBA = "predict_proba"

NUMERIC_DTYPES: dict[str, str] = {
    "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
    "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
}
BYTES = "BYTES"
MAX_DIMENSION = 2**31 - 1
"""Largest tensor dimension accepted (a shape such as ``[0, 10**20]`` is refused, not reshaped)."""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class InferRequest:
    features: Matrix
    id: str | None
    outputs: list[str]
    binary_outputs: set[str] = field(default_factory=set)


def server_metadata(version: str) -> dict[str, Any]:
    return {"name": "mlops-serving", "version": version, "extensions": ["binary_tensor_data"]}


_KIND_DATATYPES = {"int": "INT64", "float": "FP64", "bool": "BOOL", "str": BYTES}


def predict_datatype(model: LoadedModel, labels: npt.NDArray[Any] | None = None) -> str:
    """The v2 datatype of the predictions: of ``labels`` when given, else what the model says."""
    if labels is None:
        return _KIND_DATATYPES[model.label_kind]
    kind = labels.dtype.kind
    return _KIND_DATATYPES[{"i": "int", "u": "int", "f": "float", "b": "bool"}.get(kind, "str")]


def _inputs_metadata(model: LoadedModel) -> list[dict[str, Any]]:
    schema = model.input_schema
    if schema.kind == "columns" and schema.names_known:
        return [{"name": name, "datatype": V2_DATATYPES[dtype], "shape": [-1]}
                for name, dtype in zip(schema.feature_names, schema.dtypes, strict=True)]
    datatype = V2_DATATYPES.get(schema.dtypes[0], "FP64") if schema.dtypes else "FP64"
    name = schema.tensor_name or "input-0"
    return [{"name": name, "datatype": datatype, "shape": [-1, schema.width or -1]}]


def model_metadata(model: LoadedModel) -> dict[str, Any]:
    schema = model.input_schema
    outputs = [{"name": OUTPUT_PREDICT, "datatype": predict_datatype(model), "shape": [-1]}]
    if model.has_proba and model.classes is not None:
        outputs.append({"name": OUTPUT_PROBA, "datatype": "FP64", "shape": [-1, len(model.classes)]})
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": "sklearn" if model.pyfunc is None else "mlflow_pyfunc",
        "inputs": _inputs_metadata(model),
        "outputs": outputs,
        "parameters": {
            "run_id": model.run_id,
            "classes": model.class_names,
            "flavor": model.flavor,
            "predict_path": model.predict_path,
            "signature": schema.kind,
            "validation": schema.describe(),
            "feature_names": list(schema.feature_names) if schema.names_known else None,
            "drift_monitoring": (
                "baseline attached" if model.baseline is not None else
                f"off: no baseline; attach one with `mlops baseline create {model.name} --version {model.version} "
                "--data FILE`"
            ),
        },
    }


def parse_infer(body: bytes, content_type: str | None, header_length: str | None,
                model: ModelInputs) -> InferRequest:
    binary = b""
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError as exc:
            raise BadRequestError("Inference-Header-Content-Length must be an integer",
                                  field="Inference-Header-Content-Length") from exc
        if not 0 < length <= len(body):
            raise BadRequestError(f"Inference-Header-Content-Length {length} does not fit a body of {len(body)} "
                                  "bytes", field="Inference-Header-Content-Length")
        body, binary = body[:length], body[length:]
    else:
        media_type(content_type, ("application/json",), default="application/json")
    payload = require_object(decode_json(body), "the inference request")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequestError("inputs: expected a non-empty list of tensors", field="inputs")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ModelInputError("id: expected a string", field="id")
    parameters = payload.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ModelInputError("parameters: expected an object", field="parameters")
    tensors: list[tuple[str, npt.NDArray[np.float64]]] = []
    offset = 0
    for i, tensor in enumerate(inputs):
        name, array, offset = _tensor(tensor, f"inputs[{i}]", binary, offset)
        tensors.append((name, array))
    if offset != len(binary):
        raise BadRequestError(f"{len(binary) - offset} bytes of binary data are not claimed by any input",
                              field="inputs")
    features = _to_matrix(tensors, model)
    outputs, binary_outputs = _outputs(payload.get("outputs"), model, bool(parameters.get("binary_data_output")))
    return InferRequest(features, request_id, outputs, binary_outputs)


def _tensor(tensor: Any, where: str, binary: bytes, offset: int) -> tuple[str, npt.NDArray[np.float64], int]:
    if not isinstance(tensor, dict):
        raise ModelInputError(f"{where}: expected a tensor object", field=where)
    name, shape, datatype = tensor.get("name"), tensor.get("shape"), tensor.get("datatype")
    if not isinstance(name, str) or not name:
        raise ModelInputError(f"{where}.name: expected a tensor name", field=f"{where}.name")
    where = f"{where} ({name})"
    if (not isinstance(shape, list) or not 1 <= len(shape) <= 2
            or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_DIMENSION for d in shape)):
        raise ModelInputError(f"{where}.shape: expected [N] or [N, F] with integers from 0 to {MAX_DIMENSION}, "
                                f"got {_short(shape)}", field=f"{where}.shape")
    if not isinstance(datatype, str) or (datatype != BYTES and datatype not in NUMERIC_DTYPES):
        raise ModelInputError(
            f"{where}.datatype: {_short(datatype)} is not supported; use FP32, FP64, INT64 (or another numeric "
            "type) or BYTES", field=f"{where}.datatype",
        )
    count = math.prod(shape)
    params = tensor.get("parameters") or {}
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise BadRequestError(f"{where}.parameters.binary_data_size: {size!r} does not fit the binary data",
                                  field=f"{where}.parameters.binary_data_size")
        chunk = binary[offset:offset + size]
        offset += size
        values = _from_binary(chunk, datatype, count, where)
    else:
        if "data" not in tensor:
            raise ModelInputError(f"{where}.data: missing", field=f"{where}.data")
        values = _from_json(tensor["data"], datatype, count, where)
    return name, values.reshape(shape), offset


def _from_binary(chunk: bytes, datatype: str, count: int, where: str) -> npt.NDArray[np.float64]:
    if datatype == BYTES:
        items: list[str] = []
        pos = 0
        while pos < len(chunk):
            if pos + 4 > len(chunk):
                raise BadRequestError(f"{where}: truncated BYTES element", field=where)
            (length,) = struct.unpack_from("<I", chunk, pos)
            pos += 4
            items.append(chunk[pos:pos + length].decode("utf-8", errors="replace"))
            pos += length
        return _from_json(items, datatype, count, where)
    dtype = np.dtype(NUMERIC_DTYPES[datatype])
    if len(chunk) != count * dtype.itemsize:
        raise ModelInputError(f"{where}: shape needs {count} {datatype} values ({count * dtype.itemsize} bytes), "
                                f"got {len(chunk)} bytes", field=where)
    return np.frombuffer(chunk, dtype=dtype).astype(np.float64)


def _from_json(data: Any, datatype: str, count: int, where: str) -> npt.NDArray[np.float64]:
    if not isinstance(data, list):
        data = [data]
    flat = _flatten(data)
    if len(flat) != count:
        raise ModelInputError(f"{where}.data: the shape needs {count} values, got {len(flat)}", field=f"{where}.data")
    if datatype == BYTES:
        numbers = []
        for k, value in enumerate(flat):
            text = value.decode() if isinstance(value, bytes) else value
            try:
                if not isinstance(text, str):
                    raise ValueError
                numbers.append(float(text))
            except ValueError:
                raise ModelInputError(f"{where}.data[{k}]: BYTES value {_short(value)} is not a number",
                                        field=f"{where}.data[{k}]") from None
        return np.asarray(numbers, dtype=np.float64)
    integral = datatype[0] in "IU"
    for k, value in enumerate(flat):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ModelInputError(f"{where}.data[{k}]: expected a number for {datatype}, got {_short(value)}",
                                    field=f"{where}.data[{k}]")
        if integral and isinstance(value, float) and math.isfinite(value) and not value.is_integer():
            raise ModelInputError(f"{where}.data[{k}]: {value!r} is not an integer ({datatype})",
                                    field=f"{where}.data[{k}]")
    try:
        if datatype in ("FP16", "FP32"):
            with np.errstate(over="ignore"):  # beyond the type's range: infinity, refused by check_finite
                return to_array(flat, NUMERIC_DTYPES[datatype]).astype(np.float64)
        return to_array(flat, np.float64)
    except OverflowError as exc:  # an integer beyond float range
        raise out_of_range([flat], lambda i, k: f"{where}.data[{k}]") from exc


def _flatten(data: list[Any]) -> list[Any]:
    if not any(isinstance(item, list) for item in data):
        return data
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _to_matrix(tensors: list[tuple[str, npt.NDArray[np.float64]]], model: ModelInputs) -> Matrix:
    schema = model.input_schema
    names = model.feature_names
    single: tuple[str, npt.NDArray[np.float64]] | None = None
    if len(tensors) == 1:
        name, array = tensors[0]
        if not schema.names_known or schema.kind == "tensor":
            # a tensor signature or unnamed features: the one tensor is the input, whatever its name
            if array.ndim == 2 or schema.width in (1, None):
                single = (name, array.reshape(-1, 1) if array.ndim == 1 else array)
                names = schema.names_for(width=single[1].shape[1])
        elif array.ndim == 2 and (name not in names or len(names) > 1):
            single = (name, array)
    if single is not None:
        name, array = single
        if array.shape[1] != len(names):
            raise ModelInputError(
                f"inputs[0] ({name}): shape {list(array.shape)} has {array.shape[1]} columns; the model expects "
                f"{describe_features(names)} (or one [N] tensor per feature)", field="inputs[0].shape",
            )
        return check_finite(array, names, f"inputs[0] ({name})",
                            lambda i, j: f"inputs[0] ({name}) row {i} column {j} ({names[j]})")
    names = schema.names_for(given=[name for name, _ in tensors])
    check_names([name for name, _ in tensors], names, "inputs")
    by_name = dict(tensors)
    columns = []
    rows: set[int] = set()
    for name in names:
        array = by_name[name]
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise ModelInputError(f"inputs ({name}): expected shape [N] or [N, 1], got {list(array.shape)}",
                                    field=f"inputs.{name}.shape")
        rows.add(len(array))
        columns.append(array)
    if len(rows) != 1:
        raise ModelInputError(f"inputs: tensors have different lengths ({', '.join(map(str, sorted(rows)))})",
                                field="inputs")
    matrix = np.column_stack(columns).astype(np.float64, copy=False)
    return check_finite(matrix, names, "inputs", lambda i, j: f"inputs ({names[j]}) row {i}")


def _outputs(requested: Any, model: ModelInputs, binary_all: bool) -> tuple[list[str], set[str]]:
    available = [OUTPUT_PREDICT] + ([OUTPUT_PROBA] if model.has_proba else [])
    if requested is None:
        return available, set(available) if binary_all else set()
    if not isinstance(requested, list):
        raise ModelInputError("outputs: expected a list of {\"name\": ...}", field="outputs")
    names: list[str] = []
    binary: set[str] = set()
    for k, item in enumerate(requested):
        name = item.get("name") if isinstance(item, dict) else None
        if name not in available:
            raise ModelInputError(f"outputs[{k}].name: {name!r} is not an output of {model.name}; "
                                    f"available: {', '.join(available)}", field=f"outputs[{k}].name")
        params = item.get("parameters") or {}
        if binary_all or (isinstance(params, dict) and params.get("binary_data")):
            binary.add(name)
        names.append(name)
    return names, binary


def render_infer(model: LoadedModel, prediction: Prediction, request: InferRequest,
                 request_id: str) -> tuple[bytes, dict[str, str]]:
    """The response body and extra headers (binary outputs add ``Inference-Header-Content-Length``)."""
    outputs = []
    blobs: list[bytes] = []
    for name in request.outputs:
        if name == OUTPUT_PROBA and prediction.probabilities is not None:
            array: npt.NDArray[Any] = prediction.probabilities
            datatype = "FP64"
        else:
            array = prediction.labels
            datatype = predict_datatype(model, array)
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if name in request.binary_outputs:
            blob = _to_binary(array, datatype)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = (array.astype(str) if datatype == BYTES else array).reshape(-1).tolist()
        outputs.append(tensor)
    body = json.dumps(
        {"model_name": model.name, "model_version": model.version, "id": request.id or request_id, "outputs": outputs},
        separators=(",", ":"),
    ).encode()
    if not blobs:
        return body, {}
    return body + b"".join(blobs), {"Inference-Header-Content-Length": str(len(body))}


def _to_binary(array: npt.NDArray[Any], datatype: str) -> bytes:
    if datatype == BYTES:
        parts = []
        for value in array.reshape(-1).astype(str).tolist():
            encoded = value.encode()
            parts.append(struct.pack("<I", len(encoded)) + encoded)
        return b"".join(parts)
    if datatype == "BOOL":
        return array.astype(np.bool_).tobytes()
    return np.ascontiguousarray(array, dtype=NUMERIC_DTYPES[datatype]).tobytes()


# Shared with the gRPC binding (:mod:`mlops_serving.protocols.v2_grpc`): same checks, same messages.
values_from_binary = _from_binary
values_from_json = _from_json
tensors_to_matrix = _to_matrix
requested_outputs = _outputs
encode_binary = _to_binary
