"""RFC 9457 problem details: every error the API answers, in one shape and from one place.

A :class:`~rempart.errors.RempartError` becomes ``application/problem+json``
with ``type``, ``title``, ``status``, ``detail``, ``instance``, ``code`` (the
error's stable code) and its ``details`` as extension members. Validation
errors name each field that is wrong; unknown routes, wrong methods and
oversize bodies use the same shape; an unexpected exception is a 500 whose
body says nothing of the trace (the trace goes to the server's log).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from rempart.errors import RempartError, Unauthenticated

__all__ = ["PROBLEM_TYPE", "install_problem_handlers", "problem_response", "problem_responses"]

PROBLEM_TYPE: Final = "urn:rempart:problem:"
MEDIA_TYPE: Final = "application/problem+json"
_STANDARD: Final = frozenset({"type", "title", "status", "detail", "instance", "code"})
_HTTP_CODES: Final = {
    400: ("bad_request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("permission_denied", "Permission denied"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    429: ("rate_limited", "Too many requests"),
}

_log = logging.getLogger("rempart.api")


def problem_response(
    request: Request | None,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    extensions: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """One problem document; extension members never override the standard ones."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": "" if request is None else request.url.path,
        "code": code,
    }
    for key, value in (extensions or {}).items():
        body[key if key not in _STANDARD else f"{key}_"] = value
    content = json.dumps(body, default=str, ensure_ascii=False).encode("utf-8")
    return Response(content, status_code=status, media_type=MEDIA_TYPE, headers=dict(headers or {}))


def rempart_error_response(request: Request | None, exc: RempartError) -> Response:
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="rempart", error="invalid_token"'
    retry = exc.details.get("retry_after")
    if isinstance(retry, int):
        headers["Retry-After"] = str(retry)
    return problem_response(
        request,
        status=exc.http_status,
        code=exc.code,
        title=exc.title,
        detail=exc.message,
        extensions=exc.details,
        headers=headers,
    )


def _field(loc: Any) -> str:
    return ".".join(str(part) for part in loc)


async def _on_rempart_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RempartError)  # noqa: S101 - registered for this class only
    return rempart_error_response(request, exc)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this class only
    errors = []
    for err in exc.errors():
        loc = err.get("loc", ())
        message = str(err.get("msg", "invalid"))
        if err.get("type") == "extra_forbidden":
            message = "unknown field (not part of this request's schema)"
        if err.get("type") == "json_invalid":
            at = loc[1] if len(loc) > 1 else "?"
            message = (
                f"the body is not valid JSON (at character {at}): {err.get('ctx', {}).get('error', message)}"
            )
            loc = ("body",)
        errors.append({"field": _field(loc), "message": message})
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "the request is invalid"
    return problem_response(
        request,
        status=422,
        code="invalid_input",
        title="Invalid input",
        detail=detail,
        extensions={"errors": errors},
    )


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for this class only
    code, title = _HTTP_CODES.get(exc.status_code, ("error", "Error"))
    detail = exc.detail if isinstance(exc.detail, str) else title
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no resource at {request.url.path} (see /openapi.json for the API)"
    if exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return problem_response(
        request, status=exc.status_code, code=code, title=title, detail=detail, headers=exc.headers
    )


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    _log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem_response(
        request,
        status=500,
        code="error",
        title="Internal error",
        detail="the server met an unexpected error; it is in the server's log",
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RempartError, _on_rempart_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry of a route: these statuses answer a problem document."""
    from rempart.api.models import Problem

    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        out[status] = {
            "model": Problem,
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            "description": _HTTP_CODES.get(status, ("", "Error"))[1]
            if status in _HTTP_CODES
            else {409: "Conflict", 422: "Invalid input", 503: "Unavailable", 500: "Internal error"}.get(
                status, "Error"
            ),
        }
    return out
