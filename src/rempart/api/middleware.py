"""Pure ASGI middleware (cheap per request): the request body cap and the request metrics.

The body cap is enforced before anything parses the body: a declared
``Content-Length`` above the cap is refused at once, and a body sent without
one (chunked) is counted as it streams; the first byte past the cap stops it.
Either way the answer is a ``413`` problem document.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rempart.api.metrics import ApiMetrics
from rempart.api.problems import problem_response

__all__ = ["BodyLimitMiddleware", "MetricsMiddleware"]


def _too_large(limit: int) -> str:
    return f"the request body is larger than {limit} bytes (the server's [server] max_body_bytes)"


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
                break
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                length = -1
            if length < 0:
                await problem_response(
                    None,
                    status=400,
                    code="bad_request",
                    title="Bad request",
                    detail="Content-Length is not a non-negative integer",
                )(scope, receive, send)
                return
            if length > self.limit:
                await problem_response(
                    None,
                    status=413,
                    code="payload_too_large",
                    title="Payload too large",
                    detail=_too_large(self.limit),
                    extensions={"max_body_bytes": self.limit},
                )(scope, receive, send)
                return
        limit = self.limit
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # FastAPI re-raises HTTPException from body reading; the problem handler answers.
                    raise HTTPException(413, _too_large(limit))
            return message

        await self.app(scope, counted, send)


class MetricsMiddleware:
    """Counts requests and their latency by route template, method and status."""

    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(template, scope["method"], status, time.perf_counter() - started)
