"""This platform's own JSON protocol (``POST /predict``, ``POST /models/{name}/predict``).

Request, one of::

    {"features": [[13 numbers in signature order], ...], "probabilities": true}
    {"instances": [{"alcohol": 13.2, ...}, ...]}

Response::

    {"predictions": [...], "probabilities": [[...], ...], "classes": [...],
     "model": "wine-classifier", "version": "3", "request_id": "..."}

``probabilities`` and ``classes`` are present when asked for and the model has predict_proba.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_serving.errors import BadRequestError, ModelInputError
from mlops_serving.protocols.tabular import (
    Matrix,
    ModelInputs,
    decode_json,
    first_keys,
    first_width,
    media_type,
    records_to_matrix,
    require_object,
    rows_to_matrix,
)

if TYPE_CHECKING:
    from mlops_serving.runtime import LoadedModel, Prediction

CONTENT_TYPES = ("application/json",)
_KEYS = ("features", "instances", "probabilities")


@dataclass(frozen=True)
class NativeRequest:
    features: Matrix
    probabilities: bool


def parse(body: bytes, content_type: str | None, model: ModelInputs) -> NativeRequest:
    media_type(content_type, CONTENT_TYPES)
    payload = require_object(decode_json(body), "the request")
    unknown = [k for k in payload if k not in _KEYS]
    if unknown:
        raise BadRequestError(
            f"unknown field(s) {', '.join(map(repr, unknown))}; expected 'features' or 'instances' "
            "(and optionally 'probabilities')", field=unknown[0],
        )
    probabilities = payload.get("probabilities", False)
    if not isinstance(probabilities, bool):
        raise ModelInputError("probabilities: expected true or false", field="probabilities")
    maybe_bool = b"true" in body or b"false" in body
    if ("features" in payload) == ("instances" in payload):
        raise BadRequestError("send exactly one of 'features' (rows in signature order) or 'instances' "
                              "(objects keyed by feature name)", field="features")
    schema = model.input_schema
    if "features" in payload:
        rows = payload["features"]
        matrix = rows_to_matrix(rows, schema.names_for(width=first_width(rows)), "features", maybe_bool)
    else:
        records = payload["instances"]
        matrix = records_to_matrix(records, schema.names_for(given=first_keys(records)), "instances", maybe_bool)
    return NativeRequest(matrix, probabilities)


def render(model: LoadedModel, prediction: Prediction, request_id: str, probabilities: bool) -> bytes:
    body: dict[str, Any] = {"predictions": prediction.labels.tolist()}
    if probabilities and prediction.probabilities is not None:
        body["probabilities"] = prediction.probabilities.tolist()
        body["classes"] = model.classes.tolist() if model.classes is not None else None
    body.update(model=model.name, version=model.version, request_id=request_id)
    return json.dumps(body, separators=(",", ":")).encode()
