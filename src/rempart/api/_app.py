"""The FastAPI application of one deployment: routers, auth, problem details, limits, metrics."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from rempart.api.auth import BEARER_SCHEME, Authenticator, AuthFailureLimiter
from rempart.api.metrics import ApiMetrics
from rempart.api.middleware import BodyLimitMiddleware, MetricsMiddleware
from rempart.api.operations import Operations
from rempart.api.problems import install_problem_handlers, problem_responses
from rempart.api.routes import access, egress, health, log, principals, records, subjects
from rempart.deployment import Deployment

__all__ = ["create_app"]

_DESCRIPTION = """\
Rempart's API: records pinned to their subject's home region and read only
through the gateway (Cedar policies, signed approvals, every decision in the
transparency log before any data is returned), access requests approved by
custodian signatures, egress through one recorded door, release verification,
and the log's public read path (C2SP tlog-tiles) for anyone to verify.

Every route needs `Authorization: Bearer rpt_…` except `/health`, `/log/…`
and `/tuf/…`. Errors are RFC 9457 problem details (`application/problem+json`)
whose `code` is stable.
"""

# Statuses any authenticated route may answer with a problem document.
_AUTHENTICATED = (400, 401, 403, 404, 409, 413, 422, 429, 500, 503)
_PUBLIC = (400, 404, 413, 422, 500, 503)

# Rempart's observability is its Prometheus /metrics. FastAPI's own OpenTelemetry
# instrumentation (FastAPI 0.16x) would otherwise look the global providers up on
# every request, a few percent of an authorized read; older FastAPI has none.
_NO_NATIVE_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI).parameters
    else {}
)


def create_app(
    deployment: Deployment,
    *,
    tuf_dir: Path | None = None,
    auth_failure_burst: int = 20,
    auth_failure_rate: float = 0.5,
) -> FastAPI:
    """The API over ``deployment`` (which the caller opens and closes).

    ``tuf_dir`` holds the published TUF metadata (``<region>/metadata/…``)
    served under ``/tuf/``; ``auth_failure_*`` size the per-address bucket of
    failed authentications.
    """
    app = FastAPI(
        title="Rempart",
        version="1",
        description=_DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        **_NO_NATIVE_TELEMETRY,
    )
    ops = Operations(deployment)
    app.state.deployment = deployment
    app.state.operations = ops
    app.state.authenticator = Authenticator(
        deployment.tokens,
        deployment.clock,
        AuthFailureLimiter(burst=auth_failure_burst, rate=auth_failure_rate),
    )
    app.state.metrics = ApiMetrics(log=deployment.log, decisions=ops.decisions)
    app.state.tuf_dir = tuf_dir

    install_problem_handlers(app)
    authenticated = problem_responses(*_AUTHENTICATED)
    public = problem_responses(*_PUBLIC)
    for router in (records.router, subjects.router, access.router, principals.router, egress.router):
        app.include_router(router, responses=authenticated)
    app.include_router(log.router, responses=public)
    app.include_router(health.router, responses=authenticated)

    app.add_middleware(BodyLimitMiddleware, max_body_bytes=deployment.config.server.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            public_paths = ("/health", "/ready", "/log/", "/tuf/", "/openapi.json", "/docs")
            schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = BEARER_SCHEME
            for path, item in schema.get("paths", {}).items():
                for operation in item.values():
                    if path.startswith(public_paths):
                        operation.get("responses", {}).pop("401", None)
                        operation.get("responses", {}).pop("429", None)
                    else:
                        operation["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
