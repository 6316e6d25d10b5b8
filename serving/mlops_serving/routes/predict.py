"""The platform's own JSON protocol: ``POST /predict`` (default model), ``POST /models/{name}/predict``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mlops_serving.context import SERVER_REQUESTS, current
from mlops_serving.protocols import native
from mlops_serving.routes.deps import SECURITY, dataplane_of, principal_of, read_body

router = APIRouter(tags=["predict"])

_BODY: dict[str, Any] = {
    **SECURITY,
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "type": "object",
            "properties": {
                "features": {"type": "array", "items": {"type": "array", "items": {"type": "number"}},
                             "description": "Rows of feature values in signature order."},
                "instances": {"type": "array", "items": {"type": "object", "additionalProperties": {"type": "number"}},
                              "description": "Rows as objects keyed by feature name."},
                "probabilities": {"type": "boolean", "default": False},
            },
            "description": "Exactly one of `features` and `instances` (400 otherwise).",
            "oneOf": [{"required": ["features"]}, {"required": ["instances"]}],
        }}},
    }
}


async def _predict(request: Request, name: str | None) -> Response:
    dataplane = dataplane_of(request)
    principal_of(request).authorize(name or dataplane.settings.default_model)
    model = dataplane.model(name)
    with dataplane.arrival(model, request.scope.get(SERVER_REQUESTS)) as arrival:
        body = await read_body(request, dataplane.settings.max_body_bytes, dataplane.settings.body_timeout_s)
        parsed = await dataplane.parse(model, native.parse, body, request.headers.get("content-type"))
        prediction = await dataplane.predict(model, arrival, parsed.features)
    return Response(native.render(model, prediction, current().request_id, parsed.probabilities),
                    media_type="application/json")


@router.post("/predict", summary="Predict with the default (first configured) model", openapi_extra=_BODY)
async def predict(request: Request) -> Response:
    return await _predict(request, None)


@router.post("/models/{name}/predict", summary="Predict with a named model", openapi_extra=_BODY)
async def predict_model(name: str, request: Request) -> Response:
    return await _predict(request, name)
