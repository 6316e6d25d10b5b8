"""Open Inference Protocol v2 over gRPC: ``ModelInferRequest`` → features, prediction → ``ModelInferResponse``.

The same tensors as the REST binding (:mod:`.v2`): one ``[N]`` / ``[N, 1]`` tensor per feature or
one ``[N, F]`` tensor in signature order, with the same checks and messages. Values come either
from each input's typed ``contents`` or from ``raw_input_contents`` (little-endian bytes, one
entry per input: what ``tritonclient.grpc`` sends). Outputs are returned as
``raw_output_contents``, as Triton does. Errors keep their HTTP status for the metrics and map
to a gRPC status code here (:data:`GRPC_CODES`): a client mistake is never INTERNAL.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from mlops_serving.errors import BadRequestError, ModelInputError
from mlops_serving.oip_grpc import grpc_predict_v2_pb2 as pb
from mlops_serving.protocols import v2
from mlops_serving.runtime import LoadedModel, Prediction

GRPC_CODES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    413: "RESOURCE_EXHAUSTED",
    415: "INVALID_ARGUMENT",
    422: "INVALID_ARGUMENT",
    499: "CANCELLED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
"""HTTP status of a :class:`~mlops_serving.errors.ServingError` → name of its ``grpc.StatusCode``."""

_CONTENTS: dict[str, str] = {
    "FP32": "fp32_contents", "FP64": "fp64_contents",
    "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents", "INT64": "int64_contents",
    "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    v2.BYTES: "bytes_contents",
}
"""The ``InferTensorContents`` field of each datatype (FP16 has none: raw contents only)."""


def _parameter(value: Any) -> Any:
    kind = value.WhichOneof("parameter_choice")
    return getattr(value, kind) if kind is not None else None


def _tensor(tensor: Any, index: int, raw: bytes | None) -> tuple[str, npt.NDArray[np.float64]]:
    where = f"inputs[{index}]"
    name, datatype, shape = tensor.name, tensor.datatype, list(tensor.shape)
    if not name:
        raise ModelInputError(f"{where}.name: expected a tensor name", field=f"{where}.name")
    where = f"{where} ({name})"
    if not 1 <= len(shape) <= 2 or not all(0 <= d <= v2.MAX_DIMENSION for d in shape):
        raise ModelInputError(f"{where}.shape: expected [N] or [N, F] with integers from 0 to {v2.MAX_DIMENSION}, "
                                f"got {shape}", field=f"{where}.shape")
    if datatype != v2.BYTES and datatype not in v2.NUMERIC_DTYPES:
        raise ModelInputError(
            f"{where}.datatype: {datatype!r} is not supported; use FP32, FP64, INT64 (or another numeric type) "
            "or BYTES", field=f"{where}.datatype",
        )
    count = math.prod(shape)
    if raw is not None:
        values = v2.values_from_binary(raw, datatype, count, where)
    else:
        field = _CONTENTS.get(datatype)
        if field is None:
            raise ModelInputError(f"{where}: {datatype} values can only be sent in raw_input_contents",
                                    field=where)
        data = list(getattr(tensor.contents, field))
        values = v2.values_from_json(data, datatype, count, where)
    return name, values.reshape(shape)


def parse_infer(request: Any, model: LoadedModel) -> v2.InferRequest:
    """The features and requested outputs of a ``ModelInferRequest`` (4xx errors as in REST)."""
    if not request.inputs:
        raise BadRequestError("inputs: expected a non-empty list of tensors", field="inputs")
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise ModelInputError(f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; "
                                "send one per input or none", field="raw_input_contents")
    tensors = [_tensor(tensor, i, raw[i] if raw else None) for i, tensor in enumerate(request.inputs)]
    features = v2.tensors_to_matrix(tensors, model.inputs)
    requested = [{"name": out.name, "parameters": {k: _parameter(p) for k, p in out.parameters.items()}}
                 for out in request.outputs]
    outputs, _ = v2.requested_outputs(requested or None, model.inputs, False)
    return v2.InferRequest(features, request.id or None, outputs)


def render_infer(model: LoadedModel, prediction: Prediction, request: v2.InferRequest, request_id: str) -> Any:
    """A ``ModelInferResponse`` holding the requested outputs as raw little-endian bytes."""
    response = pb.ModelInferResponse(model_name=model.name, model_version=model.version,
                                     id=request.id or request_id)
    for name in request.outputs:
        if name == v2.OUTPUT_PROBA and prediction.probabilities is not None:
            array: npt.NDArray[Any] = prediction.probabilities
            datatype = "FP64"
        else:
            array = prediction.labels
            datatype = v2.predict_datatype(model)
        response.outputs.add(name=name, datatype=datatype, shape=list(array.shape))
        response.raw_output_contents.append(v2.encode_binary(array, datatype))
    return response


def model_metadata(model: LoadedModel) -> Any:
    meta = v2.model_metadata(model)
    response = pb.ModelMetadataResponse(name=meta["name"], versions=meta["versions"], platform=meta["platform"])
    for tensor in meta["inputs"]:
        response.inputs.add(**tensor)
    for tensor in meta["outputs"]:
        response.outputs.add(**tensor)
    return response
