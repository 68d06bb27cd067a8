"""The SDK: the embedded entry point and the HTTP client give the same typed answers and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import rempart
from rempart.client import Embedded, RecordData, Subject
from rempart.demo import DemoFiles, seed_demo
from rempart.errors import PermissionDenied, ResidencyViolation, Unauthenticated
from tests.unit.api.harness import rempart_server


def test_embedded_and_remote_answer_alike(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with rempart.open(data, principal="operator:svc-ingest") as embedded:
        seed_demo(embedded.deployment, data)
        local = embedded.get_subject("us-0001")
        local_me = embedded.whoami()
        with pytest.raises(ResidencyViolation):
            embedded.put_record(
                "us-0001",
                "contact",
                "main",
                {"email": "x@example.com"},
                purpose="customer_support",
                region="row",
            )
        written = embedded.put_record(
            "us-0001", "videos", "v1", {"title": "hello"}, purpose="customer_support"
        )
        assert isinstance(written, RecordData) and written.version == 1
        carol = embedded.acting_as("custodian:carol")
        assert carol.whoami().org == "custodian"
        with pytest.raises(Unauthenticated) as nobody:
            embedded.acting_as("operator:nobody").whoami()
        assert nobody.value.message == "no principal 'operator:nobody' in this deployment"
    tokens = DemoFiles(data).read_tokens()
    with rempart_server(data) as server, rempart.Client(server.url, tokens["operator:svc-ingest"]) as remote:
        assert remote.get_subject("us-0001") == local
        assert isinstance(local, Subject)
        assert remote.whoami() == local_me
        with pytest.raises(ResidencyViolation) as refused:
            remote.put_record(
                "us-0001",
                "contact",
                "main",
                {"email": "x@example.com"},
                purpose="customer_support",
                region="row",
            )
        assert refused.value.code == "residency_violation"
        assert remote.get_record("us-0001", "videos", "v1", purpose="customer_support").fields == {
            "title": "hello"
        }
        assert remote.ready().ready is True and remote.health() == {"status": "ok"}


def test_embedded_without_a_principal_serves_only_the_public_log(tmp_path: Path) -> None:
    with rempart.open(tmp_path / "data") as r:
        assert isinstance(r, Embedded)
        assert r.checkpoint().startswith(b"rempart.local/log\n")
        assert r.witnessing().configured is False
        with pytest.raises(Unauthenticated):
            r.get_subject("us-0001")


def test_embedded_refuses_as_the_server_does(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with rempart.open(data, principal="parent:bob") as bob:
        seed_demo(bob.deployment, data)
        with pytest.raises(PermissionDenied) as denied:
            bob.get_record("us-0001", "contact", "main", purpose="customer_support")
        assert "parent-never-touches-protected" in denied.value.details["policies"]
