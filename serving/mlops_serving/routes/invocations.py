"""MLflow's scoring protocol: ``POST /invocations`` plus ``/ping``, ``/health`` and ``/version``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from mlops_serving import __version__
from mlops_serving.context import SERVER_REQUESTS
from mlops_serving.protocols import mlflow_scoring
from mlops_serving.routes.deps import SECURITY, DataPlaneDep, dataplane_of, principal_of, read_body

router = APIRouter(tags=["mlflow"])


@router.post(
    "/invocations",
    summary="MLflow scoring protocol (dataframe_split, dataframe_records, instances, inputs; JSON or CSV)",
    openapi_extra={**SECURITY, "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object"}}, "text/csv": {"schema": {"type": "string"}},
    }}},
)
async def invocations(request: Request) -> Response:
    dataplane = dataplane_of(request)
    principal_of(request).authorize(dataplane.settings.default_model)
    model = dataplane.model(None)
    with dataplane.arrival(model, request.scope.get(SERVER_REQUESTS)) as arrival:
        body = await read_body(request, dataplane.settings.max_body_bytes, dataplane.settings.body_timeout_s)
        features = await dataplane.parse(model, mlflow_scoring.parse, body, request.headers.get("content-type"))
        prediction = await dataplane.predict(model, arrival, features)
    return Response(mlflow_scoring.render(prediction), media_type="application/json")


@router.get("/ping", summary="MLflow health check: 200 once the default model is ready")
@router.get("/health", summary="MLflow health check: 200 once the default model is ready")
async def ping(dataplane: DataPlaneDep) -> Response:
    ready, _ = dataplane.ready()
    return Response("\n", status_code=200 if ready else 503, media_type="application/json")


@router.get("/version", summary="Server version")
async def version() -> JSONResponse:
    return JSONResponse(__version__)
