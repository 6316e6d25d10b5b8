"""Open Inference Protocol v2 over REST (``/v2/...``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from mlops_serving import __version__
from mlops_serving.context import SERVER_REQUESTS, current
from mlops_serving.errors import ModelNotFoundError, ModelNotReadyError
from mlops_serving.protocols import v2
from mlops_serving.routes.deps import (
    SECURITY,
    DataPlaneDep,
    PrincipalDep,
    dataplane_of,
    principal_of,
    read_body,
)
from mlops_serving.runtime import LoadedModel

router = APIRouter(prefix="/v2", tags=["v2"])


@router.get("", summary="Server metadata")
async def server_metadata() -> JSONResponse:
    return JSONResponse(v2.server_metadata(__version__))


@router.get("/health/live", summary="Server liveness")
async def live() -> JSONResponse:
    return JSONResponse({"live": True})


@router.get("/health/ready", summary="Server readiness: every model loaded")
async def ready(dataplane: DataPlaneDep) -> JSONResponse:
    is_ready, _ = dataplane.ready()
    return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)


def _check_version(model: LoadedModel, version: str | None) -> None:
    if version is not None and version != model.version:
        raise ModelNotFoundError(
            f"model {model.name} version {version} is not served here; serving version {model.version}",
            field="version",
        )


async def _model_ready(dataplane: DataPlaneDep, name: str, version: str | None) -> JSONResponse:
    try:
        model = dataplane.models.get(name)
    except ModelNotReadyError:
        return JSONResponse({"name": name, "ready": False}, status_code=503)
    _check_version(model, version)
    return JSONResponse({"name": name, "ready": True})


@router.get("/models/{name}/ready", summary="Model readiness")
async def model_ready(name: str, dataplane: DataPlaneDep) -> JSONResponse:
    return await _model_ready(dataplane, name, None)


@router.get("/models/{name}/versions/{version}/ready", summary="Model version readiness")
async def model_version_ready(name: str, version: str, dataplane: DataPlaneDep) -> JSONResponse:
    return await _model_ready(dataplane, name, version)


def _metadata(dataplane: DataPlaneDep, principal: PrincipalDep, name: str, version: str | None) -> JSONResponse:
    principal.authorize(name)
    model = dataplane.models.get(name)
    _check_version(model, version)
    return JSONResponse(v2.model_metadata(model))


@router.get("/models/{name}", summary="Model metadata: inputs and outputs with types and shapes")
async def model_metadata(name: str, dataplane: DataPlaneDep, principal: PrincipalDep) -> JSONResponse:
    return _metadata(dataplane, principal, name, None)


@router.get("/models/{name}/versions/{version}", summary="Model version metadata")
async def model_version_metadata(name: str, version: str, dataplane: DataPlaneDep,
                                 principal: PrincipalDep) -> JSONResponse:
    return _metadata(dataplane, principal, name, version)


async def _infer(request: Request, name: str, version: str | None) -> Response:
    dataplane = dataplane_of(request)
    principal_of(request).authorize(name)
    model = dataplane.model(name)
    _check_version(model, version)
    with dataplane.arrival(model, request.scope.get(SERVER_REQUESTS)) as arrival:
        body = await read_body(request, dataplane.settings.max_body_bytes, dataplane.settings.body_timeout_s)
        parsed = await dataplane.parse(model, v2.parse_infer, body, request.headers.get("content-type"),
                                       request.headers.get(v2.HEADER_LENGTH))
        prediction = await dataplane.predict(model, arrival, parsed.features)
    content, headers = v2.render_infer(model, prediction, parsed, current().request_id)
    media = "application/octet-stream" if headers else "application/json"
    return Response(content, media_type=media, headers=headers)


_ELEMENT = {"type": ["number", "string", "boolean"]}
_PARAMETERS = {"type": "object", "additionalProperties": _ELEMENT,
               "description": "Parameters: values are strings, numbers or booleans."}
_BODY = {**SECURITY, "requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": _PARAMETERS,
        "inputs": {"type": "array", "items": {"type": "object", "required": ["name", "shape", "datatype"],
                                              "properties": {
            "name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string", "enum": [*v2.NUMERIC_DTYPES, v2.BYTES]},
            "data": {"type": "array", "description": "Row-major values, flat or nested by row ([N] or [N, F]).",
                     "items": {"anyOf": [_ELEMENT, {"type": "array", "items": _ELEMENT}]}},
            "parameters": _PARAMETERS,
        }}},
        "outputs": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string", "enum": [v2.OUTPUT_PREDICT, v2.OUTPUT_PROBA]}, "parameters": _PARAMETERS,
        }}},
    },
}}}}}


@router.post("/models/{name}/infer", summary="Inference", openapi_extra=_BODY)
async def infer(name: str, request: Request) -> Response:
    return await _infer(request, name, None)


@router.post("/models/{name}/versions/{version}/infer", summary="Inference on a version", openapi_extra=_BODY)
async def infer_version(name: str, version: str, request: Request) -> Response:
    return await _infer(request, name, version)
