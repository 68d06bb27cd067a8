"""Unit tests of the edge's parts: the failure limiter, problem documents both ways, the public names."""

from __future__ import annotations

import json

import pytest

import rempart
import rempart.api
import rempart.client
from rempart.access.grants import StaleRecord
from rempart.api.auth import AuthFailureLimiter
from rempart.api.problems import problem_response
from rempart.client import PayloadTooLarge, RateLimited, error_from_problem
from rempart.errors import (
    AuditUnavailable,
    Conflict,
    NotFound,
    PermissionDenied,
    RempartError,
    ResidencyViolation,
    StorageUnavailable,
)


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_limiter_allows_a_burst_then_refills_at_its_rate() -> None:
    clock = FakeTime()
    limiter = AuthFailureLimiter(burst=2, rate=0.5, monotonic=clock)
    assert limiter.retry_after("10.0.0.1") is None
    limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") is None
    limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == 2  # one token takes 1 / 0.5 s
    assert limiter.retry_after("10.0.0.2") is None  # per address
    clock.now += 1.0
    assert limiter.retry_after("10.0.0.1") == 1
    clock.now += 1.0
    assert limiter.retry_after("10.0.0.1") is None
    clock.now += 10
    assert limiter.retry_after("10.0.0.1") is None and not limiter._buckets  # full again: forgotten


def test_the_limiter_keeps_a_bounded_number_of_addresses() -> None:
    limiter = AuthFailureLimiter(burst=1, rate=0.001, max_addresses=3, monotonic=FakeTime())
    for n in range(5):
        limiter.failed(f"10.0.0.{n}")
    assert list(limiter._buckets) == ["10.0.0.2", "10.0.0.3", "10.0.0.4"]
    with pytest.raises(ValueError, match="burst must be at least 1"):
        AuthFailureLimiter(burst=0)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFound("no subject 'x'", subject="x"), 404),
        (Conflict("taken"), 409),
        (StaleRecord("keeps changing"), 409),
        (ResidencyViolation("wrong region", home_region="us"), 403),
        (PermissionDenied("no", reasons=["a", "b"], log_index=7), 403),
        (AuditUnavailable("log down"), 503),
        (RateLimited("slow down", retry_after=3), 429),
        (PayloadTooLarge("too big", max_body_bytes=1024), 413),
    ],
)
def test_a_problem_document_round_trips_to_the_same_error(error: RempartError, status: int) -> None:
    response = problem_response(
        None,
        status=error.http_status,
        code=error.code,
        title=error.title,
        detail=error.message,
        extensions=error.details,
    )
    assert response.status_code == status
    assert response.media_type == "application/problem+json"
    back = error_from_problem(status, response.body)
    expected = Conflict if isinstance(error, StaleRecord) else type(error)
    assert (type(back), back.message, back.details) == (expected, error.message, error.details)


def test_extension_members_never_override_standard_ones() -> None:
    body = json.loads(
        problem_response(
            None,
            status=422,
            code="invalid_input",
            title="Invalid input",
            detail="bad",
            extensions={"status": 1, "path": "x"},
        ).body
    )
    assert (body["status"], body["status_"], body["path"]) == (422, 1, "x")


def test_a_non_problem_answer_becomes_a_plain_error() -> None:
    gateway = error_from_problem(502, b"<html>bad gateway</html>")
    assert (type(gateway), gateway.message) == (
        StorageUnavailable,
        "the server answered HTTP 502: <html>bad gateway</html>",
    )
    unknown = error_from_problem(418, json.dumps({"code": "teapot", "detail": "short and stout"}).encode())
    assert (type(unknown), unknown.code, unknown.message) == (RempartError, "teapot", "short and stout")


def test_public_names_are_pinned() -> None:
    assert rempart.__all__ == ["Client", "Embedded", "__version__", "open"]
    assert rempart.Client is rempart.client.Client and rempart.open is rempart.client.open
    assert rempart.api.__all__ == ["create_app"]
    assert set(rempart.client.__all__) >= {
        "Client",
        "Embedded",
        "open",
        "RecordData",
        "AccessRequestInfo",
        "error_from_problem",
        "RateLimited",
        "PayloadTooLarge",
    }
    with pytest.raises(AttributeError):
        _ = rempart.nothing_here  # type: ignore[attr-defined]
