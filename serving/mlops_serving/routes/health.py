"""Liveness, readiness and metrics: always open, never authenticated."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from mlops_serving.metrics import CONTENT_TYPE
from mlops_serving.routes.deps import DataPlaneDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", summary="Readiness: every configured model is loaded (503 with the reasons otherwise)")
async def readyz(dataplane: DataPlaneDep) -> JSONResponse:
    ready, reasons = dataplane.ready()
    return JSONResponse({"status": "ready" if ready else "not ready", "models": reasons},
                        status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(dataplane: DataPlaneDep) -> Response:
    return Response(dataplane.metrics.render(), media_type=CONTENT_TYPE)
