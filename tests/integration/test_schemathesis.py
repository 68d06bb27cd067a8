"""The published OpenAPI document holds: schemathesis generates requests for every operation against a
live server (with a valid token) and checks no 5xx and that every answer matches the schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.unit.api.harness import RunningServer, rempart_server


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with rempart_server(
        tmp_path_factory.mktemp("schema") / "data", "--auth-failure-burst", "100000"
    ) as running:
        yield running


@pytest.fixture(scope="module")
def api_schema(live: RunningServer) -> Any:
    return schemathesis.openapi.from_url(f"{live.url}/openapi.json")


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_every_operation_matches_its_schema(api_schema: Any, live: RunningServer) -> None:
    """Every documented operation, a bounded number of generated requests each (schemathesis' Python API)."""
    headers = {"Authorization": f"Bearer {live.tokens['operator:admin']}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 30
    failures: list[str] = []
    statuses: dict[int, int] = {}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call_and_validate(base_url=live.url, headers=headers, checks=CHECKS, timeout=30)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:2000]}")
    assert not failures, "\n\n".join(failures)
    assert sum(statuses.values()) >= 3 * len(operations), statuses
    assert {200, 201, 404, 422} <= set(statuses), statuses  # answers, refusals and validation all seen
