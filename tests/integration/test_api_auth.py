"""Every way authentication fails, the failure rate limit, body limits, malformed and unknown input,
and the public routes that need no token: against a real server process."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import httpx
import pytest

from rempart import Client
from rempart.errors import PermissionDenied, Unauthenticated
from tests.unit.api.harness import RunningServer, rempart_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with rempart_server(tmp_path_factory.mktemp("auth") / "data", "--auth-failure-burst", "1000") as running:
        yield running


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert (body["status"], body["code"], body["type"]) == (status, code, f"urn:rempart:problem:{code}")
    return body


def test_a_missing_token_is_401_with_a_bearer_challenge(server: RunningServer) -> None:
    response = httpx.get(f"{server.url}/me")
    body = problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == 'Bearer realm="rempart", error="invalid_token"'
    assert body["detail"] == (
        "missing bearer token: send Authorization: Bearer rpt_… (issue one with `rempart tokens issue`)"
    )
    assert (body["title"], body["instance"]) == ("Authentication required", "/me")


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        ("hunter2", "the token is malformed: expected rpt_<16 hex digits>_<43-character secret>"),
        ("rpt_0123456789abcdef_" + "A" * 43, "the token is not recognised"),
    ],
)
def test_bad_tokens_are_refused(server: RunningServer, token: str, detail: str) -> None:
    body = problem(httpx.get(f"{server.url}/me", headers=bearer(token)), 401, "unauthenticated")
    assert body["detail"] == detail


def test_a_wrong_secret_for_a_real_token_id_is_refused(server: RunningServer) -> None:
    real = server.tokens["operator:alice"]
    wrong = real[:-1] + ("A" if real[-1] != "A" else "B")
    body = problem(httpx.get(f"{server.url}/me", headers=bearer(wrong)), 401, "unauthenticated")
    assert body["detail"] == "the token is not recognised"


def test_an_expired_token_is_refused(server: RunningServer) -> None:
    with Client(server.url, server.tokens["operator:eve"]) as eve:
        issued = eve.issue_token(label="short-lived", lifetime_seconds=60)
        assert Client(server.url, issued.token).whoami().id == "operator:eve"
    # Time passes: the database says the token expired (the server reads it on every request).
    with sqlite3.connect(server.data_dir / "control.db") as db:
        db.execute(
            "UPDATE access_tokens SET expires_at = ? WHERE id = ?", ("2026-01-01T00:00:00.000000Z", issued.id)
        )
    body = problem(httpx.get(f"{server.url}/me", headers=bearer(issued.token)), 401, "unauthenticated")
    assert body["detail"] == "the token expired at 2026-01-01T00:00:00.000000Z"


def test_a_revoked_token_is_refused_at_once(server: RunningServer) -> None:
    with Client(server.url, server.tokens["operator:eve"]) as eve:
        issued = eve.issue_token(label="to revoke")
        revoked = eve.revoke_token(issued.id)
    assert revoked.status == "revoked" and revoked.revoked_at is not None
    with Client(server.url, issued.token) as client, pytest.raises(Unauthenticated) as refused:
        client.whoami()
    assert refused.value.message.startswith("the token was revoked at ")


def test_a_disabled_principals_tokens_stop_working(server: RunningServer) -> None:
    with Client(server.url, server.tokens["operator:admin"]) as admin:
        admin.create_principal(
            id="operator:temp",
            display_name="Temp",
            org="operator",
            location="US",
            screening="cleared",
            roles=["support"],
        )
        token = admin.issue_token(label="temp", principal="operator:temp").token
        assert Client(server.url, token).whoami().id == "operator:temp"
        admin.disable_principal("operator:temp")
    with Client(server.url, token) as temp, pytest.raises(Unauthenticated) as refused:
        temp.whoami()
    assert refused.value.message == "principal operator:temp is disabled"


def test_failed_authentication_is_rate_limited_per_address(tmp_path_factory: pytest.TempPathFactory) -> None:
    data = tmp_path_factory.mktemp("limited") / "data"
    with rempart_server(data, "--auth-failure-burst", "3", "--auth-failure-rate", "0.05") as limited:
        for _ in range(3):
            problem(httpx.get(f"{limited.url}/me", headers=bearer("nope")), 401, "unauthenticated")
        blocked = httpx.get(f"{limited.url}/me", headers=bearer("nope"))
        body = problem(blocked, 429, "rate_limited")
        assert int(blocked.headers["retry-after"]) >= 1
        assert str(body["detail"]).startswith("too many failed authentications from 127.0.0.1; try again in")
        # while limited, even a good token waits; public routes do not
        good = httpx.get(f"{limited.url}/me", headers=bearer(limited.tokens["operator:alice"]))
        problem(good, 429, "rate_limited")
        assert httpx.get(f"{limited.url}/health").status_code == 200


def test_bodies_over_the_cap_are_413_before_parsing(server: RunningServer) -> None:
    headers = bearer(server.tokens["operator:svc-ingest"])
    url = f"{server.url}/subjects/us-0001/records/profile/main?purpose=service_debugging"
    big = b'{"values": {"bio": "' + b"x" * (1024 * 1024 + 10) + b'"}}'
    declared = httpx.put(url, content=big, headers={**headers, "Content-Type": "application/json"})
    body = problem(declared, 413, "payload_too_large")
    assert body["detail"] == (
        "the request body is larger than 1048576 bytes (the server's [server] max_body_bytes)"
    )

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"values": {"bio": "'
        for _ in range(17):
            yield b"y" * 65536
        yield b'"}}'

    streamed = httpx.put(url, content=chunks(), headers={**headers, "Content-Type": "application/json"})
    assert "content-length" not in streamed.request.headers
    problem(streamed, 413, "payload_too_large")


def test_malformed_and_unknown_input_is_422_naming_the_field(server: RunningServer) -> None:
    headers = {**bearer(server.tokens["operator:svc-ingest"]), "Content-Type": "application/json"}
    url = f"{server.url}/subjects/us-0001/records/profile/main?purpose=service_debugging"
    broken = problem(httpx.put(url, content=b'{"values": {', headers=headers), 422, "invalid_input")
    assert broken["errors"][0]["field"] == "body"  # type: ignore[index]
    assert str(broken["errors"][0]["message"]).startswith("the body is not valid JSON")  # type: ignore[index]
    unknown = problem(
        httpx.put(url, json={"values": {"bio": "hi"}, "vaules": 1}, headers=headers), 422, "invalid_input"
    )
    assert unknown["errors"] == [
        {"field": "body.vaules", "message": "unknown field (not part of this request's schema)"}
    ]
    missing = problem(
        httpx.put(url.split("?")[0], json={"values": {"bio": "hi"}}, headers=headers), 422, "invalid_input"
    )
    assert missing["errors"] == [{"field": "query.purpose", "message": "Field required"}]
    typed = problem(
        httpx.post(f"{server.url}/subjects", json={"subject_id": 5, "region": "us"}, headers=headers),
        422,
        "invalid_input",
    )
    assert typed["errors"][0]["field"] == "body.subject_id"  # type: ignore[index]


def test_unknown_routes_and_methods_are_problems_too(server: RunningServer) -> None:
    problem(httpx.get(f"{server.url}/nowhere"), 404, "not_found")
    wrong = problem(httpx.post(f"{server.url}/health"), 405, "method_not_allowed")
    assert wrong["detail"] == "POST is not allowed on /health"


def test_public_routes_need_no_token(server: RunningServer) -> None:
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/ready").json()
    assert ready == {
        "ready": True,
        "checks": {"control": "ok", "region:row": "ok", "region:us": "ok", "log": "ok"},
    }
    checkpoint = httpx.get(f"{server.url}/log/checkpoint")
    assert checkpoint.status_code == 200 and checkpoint.text.startswith("rempart.local/log\n")
    assert checkpoint.headers["cache-control"] == "no-cache, max-age=0"
    assert httpx.get(f"{server.url}/log/witnessing").json()["configured"] is False
    assert httpx.get(f"{server.url}/openapi.json").json()["components"]["schemas"]["Problem"]["required"] == [
        "type",
        "title",
        "status",
        "detail",
        "instance",
        "code",
    ]
    problem(httpx.get(f"{server.url}/metrics"), 401, "unauthenticated")


def test_operators_without_the_admin_role_manage_nobody(server: RunningServer) -> None:
    with Client(server.url, server.tokens["operator:alice"]) as alice:
        with pytest.raises(PermissionDenied) as denied:
            alice.create_principal(
                id="operator:mallory",
                display_name="M",
                org="operator",
                location="US",
                screening="cleared",
                roles=["admin"],
            )
        assert denied.value.message == (
            "operator:alice may not create principals: only operator principals with role 'admin' may"
        )
        with pytest.raises(PermissionDenied):
            alice.issue_token(label="for bob", principal="parent:bob")
        with pytest.raises(PermissionDenied):
            alice.list_principals()
        assert alice.get_principal("operator:alice").roles == ("support",)


@pytest.mark.parametrize(
    "path_and_query",
    [
        "us-0001/records/profile/main",  # no purpose
        "us-0001/records/profile/main?purpose=curiosity",
        "us-0001/records/profile/main?purpose=customer_support&purpose=nope",  # the last one counts
        "us%200001/records/profile/main?purpose=customer_support",
        "us-0001%0A/records/profile/main?purpose=customer_support",  # $ must not accept a newline
        "us-0001/records/Profile/main%0A?purpose=curiosity",
    ],
)
def test_the_record_read_checks_its_parameters_as_fastapi_does(
    server: RunningServer, path_and_query: str
) -> None:
    """GET checks its parameters by hand (the hot path); PUT on the same path lets FastAPI do it."""
    headers = bearer(server.tokens["operator:svc-ingest"])
    url = f"{server.url}/subjects/{path_and_query}"
    by_hand = problem(httpx.get(url, headers=headers), 422, "invalid_input")
    body = {"values": {"bio": "hi"}}
    by_fastapi = problem(httpx.put(url, json=body, headers=headers), 422, "invalid_input")
    assert by_hand["errors"] == by_fastapi["errors"]
    assert by_hand["detail"] == by_fastapi["detail"]
