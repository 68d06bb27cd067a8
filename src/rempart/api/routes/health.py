"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from rempart.api._edge import acting
from rempart.api.metrics import CONTENT_TYPE, ApiMetrics
from rempart.api.models import HealthView, ReadyView
from rempart.api.problems import problem_response

router = APIRouter(tags=["health"])

_OK = b'{"status":"ok"}'


@router.get("/health", response_model=HealthView)
async def health() -> Response:
    """Liveness: the process answers (no database is touched)."""
    return Response(_OK, media_type="application/json")


@router.get("/ready", response_model=ReadyView)
def ready(request: Request) -> Any:
    """Readiness: the control database, every region's database and the log answer."""
    report = request.app.state.operations.readiness()
    if not report["ready"]:
        failing = ", ".join(f"{k} ({v})" for k, v in report["checks"].items() if v != "ok")
        return problem_response(
            request,
            status=503,
            code="storage_unavailable",
            title="Not ready",
            detail=f"not ready: {failing}",
            extensions={"checks": report["checks"]},
        )
    return report


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
def metrics(request: Request) -> Response:
    """Prometheus metrics (requests, latency, decisions, log size, checkpoint age); needs a token."""
    acting(request)
    collector: ApiMetrics = request.app.state.metrics
    return Response(collector.render(), media_type=CONTENT_TYPE)
