"""Records, subjects, erasure and egress over HTTP, driven with the SDK against a real server process."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from rempart import Client
from rempart.cli._connect import load_signer
from rempart.errors import InvalidInput, NotFound, PermissionDenied, ResidencyViolation
from rempart.store.catalog import default_catalog
from tests.unit.api.harness import RunningServer, rempart_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with rempart_server(tmp_path_factory.mktemp("records") / "data") as running:
        yield running


def api(server: RunningServer, principal: str) -> Client:
    return Client(server.url, server.tokens[principal])


def grant(
    server: RunningServer,
    requester: str,
    fields: list[str],
    subject: str,
    purpose: str,
    approvers: tuple[str, ...] = ("custodian:carol",),
) -> str:
    with api(server, requester) as me:
        request = me.request_access(
            region=me.get_subject(subject).region,
            fields=fields,
            subjects=[subject],
            purpose=purpose,
            ticket="TEST-1",
            duration_seconds=3600,
        )
    for approver in approvers:
        with api(server, approver) as custodian:
            custodian.approve(request.id, load_signer(server.key(approver)))
    return request.id


def test_subjects_live_in_their_home_region(server: RunningServer) -> None:
    with api(server, "operator:svc-ingest") as ingest:
        created = ingest.create_subject("row-9001", "row")
        assert (created.subject_id, created.region, len(created.commitment)) == ("row-9001", "row", 64)
        assert created.log_index is not None and created.log_index > 0
        assert ingest.get_subject("row-9001").commitment == created.commitment
        written = ingest.put_record(
            "row-9001", "contact", "main", {"email": "p@example.fr"}, purpose="customer_support"
        )
        assert (written.version, written.fields, written.masked) == (1, {}, ())
        with pytest.raises(ResidencyViolation) as refused:
            ingest.put_record(
                "row-9001",
                "contact",
                "main",
                {"email": "p@example.fr"},
                purpose="customer_support",
                region="us",
            )
        assert refused.value.code == "residency_violation"
        with pytest.raises(NotFound):
            ingest.get_subject("nobody-here")


def test_only_services_and_admins_create_subjects(server: RunningServer) -> None:
    with api(server, "operator:alice") as alice, pytest.raises(PermissionDenied) as denied:
        alice.create_subject("us-9002", "us")
    assert denied.value.message == (
        "operator:alice may not create subjects: operator services and admins may"
    )


def test_a_granted_read_returns_exactly_the_approved_fields(server: RunningServer) -> None:
    with api(server, "operator:eve") as eve, pytest.raises(PermissionDenied) as before:
        eve.get_record("us-0002", "contact", "main", purpose="customer_support")
    assert (
        "reading, erasing or relocating protected data needs an approved access grant" in before.value.message
    )
    assert isinstance(before.value.details["log_index"], int)

    grant(server, "operator:eve", ["contact.email", "contact.phone"], "us-0002", "customer_support")
    with api(server, "operator:eve") as eve:
        record = eve.get_record("us-0002", "contact", "main", purpose="customer_support")
        assert dict(record.fields) == {"email": "joe.alvarez@example.net", "phone": "+1 305 555 0199"}
        assert record.masked == ("postal_address", "email_verified")
        only = eve.get_record("us-0002", "contact", "main", purpose="customer_support", fields=["phone"])
        assert (dict(only.fields), only.masked) == ({"phone": "+1 305 555 0199"}, ())
        assert only.log_index > record.log_index
        with pytest.raises(PermissionDenied) as other_purpose:
            eve.get_record("us-0002", "contact", "main", purpose="service_debugging", fields=["email"])
        # the grant is looked up by purpose: for another purpose there is none
        assert other_purpose.value.message == (
            "read of contact/main denied: reading, erasing or relocating protected data needs an approved "
            "access grant, and none applies"
        )
        with pytest.raises(InvalidInput) as bad_field:
            eve.get_record("us-0002", "contact", "main", purpose="customer_support", fields=["shoe_size"])
        assert bad_field.value.message.startswith("collection 'contact' has no field 'shoe_size'")


def test_a_parent_company_employee_is_denied_with_the_policy_reason(server: RunningServer) -> None:
    with api(server, "parent:bob") as bob, pytest.raises(PermissionDenied) as denied:
        bob.get_record("us-0001", "contact", "main", purpose="customer_support")
    assert denied.value.details["reasons"][0] == (
        "principals of the foreign parent never read, write, erase, relocate or export protected data, "
        "whatever else holds"
    )
    assert "parent-never-touches-protected" in denied.value.details["policies"]


def test_listing_pages_through_a_collection(server: RunningServer) -> None:
    with api(server, "operator:svc-ingest") as ingest:
        ingest.create_subject("us-9003", "us")
        for n in range(3):
            ingest.put_record(
                "us-9003",
                "videos",
                f"v{n}",
                {"title": f"clip {n}", "visibility": "public"},
                purpose="customer_support",
            )
    with api(server, "operator:alice") as alice:
        first = alice.list_records(
            "us-9003", "videos", purpose="customer_support", fields=["title", "visibility"], limit=2
        )
        assert [r.record_id for r in first.items] == ["v0", "v1"]
        assert first.next_cursor is not None
        rest = alice.list_records(
            "us-9003",
            "videos",
            purpose="customer_support",
            fields=["title", "visibility"],
            limit=2,
            cursor=first.next_cursor,
        )
        assert [(r.record_id, r.fields["title"]) for r in rest.items] == [("v2", "clip 2")]
        assert rest.next_cursor is None


def test_delete_and_erase_need_an_erase_grant(server: RunningServer) -> None:
    with api(server, "operator:svc-ingest") as ingest:
        ingest.create_subject("us-9004", "us")
        ingest.put_record(
            "us-9004", "contact", "main", {"email": "gone@example.com"}, purpose="customer_support"
        )
    with api(server, "operator:alice") as alice, pytest.raises(PermissionDenied):
        alice.delete_record("us-9004", "contact", "main", purpose="data_subject_request", expected_version=1)

    catalog = default_catalog()
    every = [f"{c}.{f}" for c, spec in catalog.collections.items() for f in spec.fields]
    grant(
        server,
        "operator:alice",
        every,
        "us-9004",
        "data_subject_request",
        approvers=("custodian:carol", "custodian:dan"),
    )
    with api(server, "operator:alice") as alice:
        deleted = alice.delete_record(
            "us-9004", "contact", "main", purpose="data_subject_request", expected_version=1
        )
        assert (deleted.record_id, deleted.log_index > 0) == ("main", True)
        receipt = alice.erase_subject("us-9004", reason="DSR-77: the user asked to be forgotten")
        assert (receipt.region, receipt.destroyed, receipt.records, receipt.reason) == (
            "us", ("data_key", "commitment_key"), 0, "DSR-77: the user asked to be forgotten")
        with pytest.raises(NotFound):
            alice.get_subject("us-9004")


def test_protected_data_never_leaves_and_excepted_data_leaves_with_its_digest(server: RunningServer) -> None:
    with api(server, "operator:svc-metrics") as metrics:
        with pytest.raises(PermissionDenied) as refused:
            metrics.egress(
                region="us",
                collection="contact",
                fields=["email"],
                purpose="business_metrics",
                destination="parent-analytics",
            )
        assert refused.value.details["reasons"] == ["protected data never leaves its region"]
        sent = metrics.egress(
            region="us",
            collection="profile",
            fields=["account_created"],
            purpose="business_metrics",
            destination="parent-analytics",
        )
    assert sent.count == len(sent.records()) >= 3
    assert hashlib.sha256(sent.payload).hexdigest() == sent.digest
    assert {"2021-06-02", "2020-01-19"} <= {r["fields"]["account_created"] for r in sent.records()}


def test_unknown_subject_is_a_404_problem(server: RunningServer, tmp_path: Path) -> None:
    with api(server, "operator:alice") as alice, pytest.raises(NotFound) as missing:
        alice.get_record("no-such-subject", "contact", "main", purpose="customer_support")
    assert missing.value.code == "not_found"
