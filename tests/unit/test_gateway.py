"""The one door, end to end through a real deployment: facts → Cedar → durable log → store → mask."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from rempart.errors import AuditUnavailable, InvalidInput, NotFound, PermissionDenied, StorageUnavailable
from rempart.store.egress import EgressRequest
from tests.world import World

CONTACT = {"email": "ana@example.com", "phone": "+1 555 0100", "email_verified": True}
PROFILE = {"handle": "ana", "display_name": "Ana", "full_name": "Ana Lopez", "birthdate": "1990-01-01"}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World.open(tmp_path)
    w.subject("u1", "us", {"contact": CONTACT, "profile": PROFILE})
    w.subject("u2", "us", {"contact": {"email": "bo@example.com", "phone": "+1 555 0101"}})
    w.subject("r1", "row", {"contact": {"email": "ro@example.eu", "phone": "+33 1 00"}})
    yield w
    w.close()


def grant(world: World, who: str = "operator:alice", **kwargs: object) -> str:
    kwargs.setdefault("collections", {"contact"})
    kwargs.setdefault("fields", {"contact.email", "contact.email_verified"})
    kwargs.setdefault("subjects", ["u1"])
    record = world.request(who, **kwargs)  # type: ignore[arg-type]
    world.approve(record.request, "custodian:carol")
    return record.request.id


def read(world: World, who: str, subject: str = "u1", **kwargs: object):  # type: ignore[no-untyped-def]
    kwargs.setdefault("collection", "contact")
    kwargs.setdefault("record_id", "main")
    kwargs.setdefault("purpose", "customer_support")
    return world.deployment.gateway.read(world.principal(who), subject_id=subject, **kwargs)  # type: ignore[arg-type]


def last_decision(world: World) -> dict[str, object]:
    return dict(world.events("access.decision")[-1].body)


def test_granted_read_returns_exactly_the_approved_fields_and_masks_the_rest(world: World) -> None:
    request_id = grant(world)
    got = read(world, "operator:alice")
    assert dict(got.record.fields) == {"email": "ana@example.com", "email_verified": True}
    assert got.outcome.masked_fields == ("phone", "postal_address")
    entry = last_decision(world)
    assert entry["grant"] == request_id
    assert entry["subject"] == world.commitment("u1")
    assert "u1" not in str(entry)  # the subject appears only as its commitment
    assert [f["name"] for f in entry["fields"] if f["allowed"]] == ["email", "email_verified"]  # type: ignore[index,union-attr]
    assert entry["allowed"] is True
    assert got.outcome.position.index == world.deployment.log.size - 1


def test_public_fields_need_no_grant(world: World) -> None:
    got = read(world, "operator:eve", collection="profile", fields=["handle", "display_name"])
    assert dict(got.record.fields) == {"handle": "ana", "display_name": "Ana"}


SCENARIOS = [
    # (name, who, grant kwargs (None: no grant), clock advance before read, read kwargs, expected reason)
    ("no grant", "operator:alice", None, timedelta(0), {}, "protected-read-needs-grant"),
    ("parent with a valid grant", "parent:bob", {}, timedelta(0), {}, "parent-never-touches-protected"),
    ("expired grant", "operator:alice", {}, timedelta(hours=3), {}, "grant-expired"),
    ("other subject", "operator:alice", {}, timedelta(0), {"subject": "u2"}, "grant-subject-out-of-scope"),
    ("other purpose", "operator:alice", {}, timedelta(0), {"purpose": "legal_request"},
     "protected-read-needs-grant"),
    ("field out of scope", "operator:alice", {}, timedelta(0), {"fields": ["phone"]},
     "grant-field-out-of-scope"),
    ("auditor", "auditor:ivy", None, timedelta(0), {}, "auditors-read-no-records"),
]


@pytest.mark.parametrize(
    ("name", "who", "grant_kwargs", "advance", "read_kwargs", "reason"),
    SCENARIOS,
    ids=[s[0] for s in SCENARIOS],
)
def test_denied_reads_are_logged_with_their_reasons(
    world: World,
    name: str,
    who: str,
    grant_kwargs: dict[str, object] | None,
    advance: timedelta,
    read_kwargs: dict[str, object],
    reason: str,
) -> None:
    if grant_kwargs is not None:
        # The parent cannot request access at all: it tries to use an operator's grant.
        grant(world, who if who != "parent:bob" else "operator:alice", **grant_kwargs)
    world.clock.advance(advance.total_seconds())
    before = world.deployment.log.size
    with pytest.raises(PermissionDenied) as caught:
        read(world, who, **read_kwargs)
    entry = last_decision(world)
    assert world.deployment.log.size == before + 1  # the denial is on the record
    assert entry["allowed"] is False
    assert entry["principal"] == who
    assert caught.value.details["log_index"] == before
    policies = {p for f in entry["fields"] for p in f["policies"]}  # type: ignore[union-attr,attr-defined]
    assert reason in policies, (policies, caught.value.message)


def test_parent_is_denied_even_holding_an_approved_grant_of_its_own(world: World) -> None:
    # A parent principal cannot even request access (policy), so forge the closest case:
    # an operator's grant is useless to the parent, and the parent's own request is refused.
    with pytest.raises(PermissionDenied):
        world.request("parent:bob", collections={"contact"}, fields={"contact.email"}, subjects=["u1"])
    grant(world)
    with pytest.raises(PermissionDenied, match="parent"):
        read(world, "parent:bob")


def test_revoked_grant_is_denied(world: World) -> None:
    request_id = grant(world)
    read(world, "operator:alice")
    world.deployment.access.revoke(request_id, by="custodian:carol", reason="done", now=world.now)
    with pytest.raises(PermissionDenied):
        read(world, "operator:alice")


def test_not_yet_started_grant_is_denied(world: World) -> None:
    grant(world, start_at=world.now + timedelta(hours=1))
    with pytest.raises(PermissionDenied):
        read(world, "operator:alice")
    world.clock.advance(hours=1, minutes=1)
    assert read(world, "operator:alice").record.fields["email"] == "ana@example.com"


def test_bulk_needs_two_approvals(world: World) -> None:
    record = world.request(
        "operator:alice", collections={"contact"}, fields={"contact.email"}, bulk_limit=50
    )
    world.approve(record.request, "custodian:carol")
    with pytest.raises(PermissionDenied):
        read(world, "operator:alice")
    world.approve(record.request, "custodian:dan")
    assert read(world, "operator:alice").record.fields == {"email": "ana@example.com"}
    assert read(world, "operator:alice", subject="u2").record.fields == {"email": "bo@example.com"}


def test_same_org_approval_does_not_count(world: World) -> None:
    record = world.request(
        "operator:alice", collections={"contact"}, fields={"contact.email"}, subjects=["u1"]
    )
    world.approve(record.request, "operator:olga")  # an operator with an "approver" role
    with pytest.raises(PermissionDenied):
        read(world, "operator:alice")


def test_grant_is_pinned_to_its_region(world: World) -> None:
    grant(world, subjects=["u1"])
    with pytest.raises(PermissionDenied):
        read(world, "operator:alice", subject="r1")
    assert last_decision(world)["region"] == "row"


def test_a_log_failure_denies_and_returns_nothing(world: World) -> None:
    grant(world)
    storage = world.deployment.log.storage
    real = storage.append

    def broken(*args: object, **kwargs: object) -> None:
        raise StorageUnavailable("disk full")

    storage.append = broken  # type: ignore[method-assign]
    try:
        with pytest.raises(AuditUnavailable, match="could not record"):
            read(world, "operator:alice")
    finally:
        storage.append = real  # type: ignore[method-assign]
    assert read(world, "operator:alice").record.fields["email"] == "ana@example.com"


def test_writes_need_every_field_allowed(world: World) -> None:
    service = world.principal("operator:svc-ingest")
    gw = world.deployment.gateway
    record, outcome = gw.write(
        service,
        subject_id="u2",
        collection="contact",
        record_id="main",
        values={"email": "new@example.com", "phone": "+1 555 0199"},
        purpose="customer_support",
        expected_version=1,
    )
    assert record.version == 2
    assert outcome.masked_fields == ()
    with pytest.raises(PermissionDenied):
        gw.write(
            world.principal("parent:bob"),
            subject_id="u2",
            collection="contact",
            record_id="main",
            values={"email": "steal@example.com"},
            purpose="interoperability",
            expected_version=2,
        )
    assert world.deployment.records.read("u2", "contact", "main").fields["email"] == "new@example.com"


def test_unknown_subject_and_field_are_clear_errors(world: World) -> None:
    with pytest.raises(NotFound):
        read(world, "operator:alice", subject="nobody")
    with pytest.raises(InvalidInput, match="has no field 'shoe_size'"):
        read(world, "operator:alice", fields=["shoe_size"])


def test_egress_of_protected_fields_is_refused_and_public_allowed(world: World) -> None:
    gw = world.deployment.gateway
    with pytest.raises(PermissionDenied):
        gw.egress(
            world.principal("operator:eve"),
            EgressRequest("us", "contact", ("email",), "business_metrics", "parent-co"),
        )
    assert world.events("access.decision")[-1].body["action"] == "egress"


def test_break_glass_reads_at_once_flagged_and_its_missing_review_is_reported(world: World) -> None:
    from rempart.access import Scope

    scope = Scope(
        "us", frozenset({"contact"}), frozenset({"contact.email"}), (world.commitment("u1"),)
    )
    record = world.deployment.access.open_break_glass(
        requester="operator:eve",
        scope=scope,
        purpose="security_incident",
        ticket="INC-7",
        duration=timedelta(minutes=30),
        now=world.now,
    )
    got = read(world, "operator:eve", purpose="security_incident")
    assert got.record.fields == {"email": "ana@example.com"}
    entry = last_decision(world)
    assert (entry["break_glass"], entry["grant"]) == (True, record.request.id)
    assert world.deployment.access.overdue_break_glass_reviews(world.now) == []
    world.clock.advance(hours=25)
    overdue = world.deployment.access.overdue_break_glass_reviews(world.now)
    assert [(v.request_id, v.requester) for v in overdue] == [(record.request.id, "operator:eve")]


def test_scopes_are_built_from_subject_ids_and_pinned_to_one_region(world: World) -> None:
    gw = world.deployment.gateway
    scope = gw.scope(region="us", fields=["contact.email", "profile.handle"], subject_ids=["u1", "u2"])
    assert scope.collections == frozenset({"contact", "profile"})
    assert scope.subjects == tuple(sorted([world.commitment("u1"), world.commitment("u2")]))
    with pytest.raises(InvalidInput, match="lives in region 'row', not 'us'"):
        gw.scope(region="us", fields=["contact.email"], subject_ids=["r1"])
    with pytest.raises(InvalidInput, match="not written collection.field"):
        gw.scope(region="us", fields=["email"], subject_ids=["u1"])
    record = gw.request_access(
        world.principal("operator:alice"),
        scope=scope,
        purpose="customer_support",
        ticket="T-9",
        duration=timedelta(hours=1),
    )
    assert record.request.scope == scope


def test_async_read_is_the_same_door(world: World) -> None:
    import asyncio

    grant(world)
    gw = world.deployment.gateway

    async def both() -> list[object]:
        return await asyncio.gather(
            gw.read_async(
                world.principal("operator:alice"),
                subject_id="u1",
                collection="contact",
                record_id="main",
                purpose="customer_support",
            ),
            gw.read_async(
                world.principal("parent:bob"),
                subject_id="u1",
                collection="contact",
                record_id="main",
                purpose="customer_support",
            ),
            return_exceptions=True,
        )

    granted, denied = asyncio.run(both())
    assert dict(granted.record.fields) == {"email": "ana@example.com", "email_verified": True}  # type: ignore[attr-defined]
    assert isinstance(denied, PermissionDenied)
    kinds = [(e.body["principal"], e.body["allowed"]) for e in world.events("access.decision")[-2:]]
    assert sorted(kinds) == [("operator:alice", True), ("parent:bob", False)]
