"""Scenario tables: who may read what, under which grant, approved by whom, at what time.

Each row runs the real pieces end to end: the access service on a SQLite
control database, signed approvals, the log, the shipped Cedar policies, the
store's catalog. Rows name the exact policies that decide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import pytest

from rempart.access import (
    AccessRequest,
    ApprovalDecision,
    ClockMode,
    Grant,
    RequestState,
    ReviewVerdict,
    Scope,
    field_requests,
    lifecycle,
)
from rempart.access.model import Approval
from rempart.errors import AuditUnavailable, Conflict, InvalidInput, PermissionDenied, VerificationFailed
from rempart.policy import Decision
from rempart.store.catalog import default_catalog
from tests.unit.access.cast import SIGNERS, START, World, subject

CATALOG = default_catalog()
S1, S2, S3 = subject("s1"), subject("s2"), subject("s3")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World.open(f"sqlite:///{tmp_path / 'control.db'}")
    yield w
    w.close()


def read(
    world: World,
    principal_id: str,
    collection: str,
    field: str,
    *,
    subject_id: str = S1,
    purpose: str = "customer_support",
    grant: Grant | str | None = "lookup",
    action: str = "read",
) -> Decision:
    """What the gateway does: find the grant, build the facts, decide."""
    principal = world.principals.get(principal_id)
    if grant == "lookup":
        found = world.service.grant_for_use(
            principal_id, "us", collection, subject_id, purpose, world.now
        )
    else:
        found = grant  # type: ignore[assignment]
    requests = field_requests(
        principal=principal,
        action=action,
        region="us",
        collection=collection,
        fields=[CATALOG.collection(collection).field(field)],
        grant=found,
        subject=subject_id,
        purpose=purpose,
        now=world.now,
    )
    return world.engine.decide(requests)[0]


def approved(world: World, **kwargs: object) -> str:
    """A request by alice for S1's contact email and phone, approved by carol: its id."""
    record = world.submit(**kwargs)  # type: ignore[arg-type]
    return world.approve(record, "custodian:carol").id


def parent_grant(world: World) -> Grant:
    """A grant to the parent's bob that would be valid in every other respect.

    The service refuses to file one (see the test below), so it is made with
    the pure state machine, as a forged or buggy control plane would.
    """
    request = AccessRequest(
        id="req_00000000000000bb",
        requester="parent:bob",
        requester_org="parent",
        scope=Scope("us", frozenset({"contact"}), frozenset({"contact.email"}), (S1,)),
        purpose="customer_support",
        ticket="SUP-1",
        duration=timedelta(hours=1),
        created_at=world.now,
    )
    pending = lifecycle.submit(request, rules=world.rules, now=world.now).record
    approval = Approval(
        "custodian:carol", ApprovalDecision.APPROVE, world.now, world.now, "", counted=True
    )
    record = lifecycle.add_approval(pending, approval, rules=world.rules, now=world.now).record
    assert record.state is RequestState.ACTIVE
    return record.grant()


@dataclass(frozen=True)
class ReadCase:
    name: str
    setup: Callable[[World], object]
    principal: str
    collection: str
    field: str
    allowed: bool
    policies: tuple[str, ...]
    subject_id: str = S1
    purpose: str = "customer_support"
    action: str = "read"


def _grant_of(world: World, request_id: str) -> Grant:
    return world.grants.get(request_id).grant()


READ_CASES = [
    ReadCase("active grant covers the field", approved, "operator:alice", "contact", "email",
             True, ("protected-with-active-grant",)),
    ReadCase("no grant at all", lambda w: None, "operator:alice", "contact", "email",
             False, ("protected-read-needs-grant",)),
    ReadCase("field outside the grant", approved, "operator:alice", "contact", "postal_address",
             False, ("grant-field-out-of-scope",)),
    ReadCase("subject outside the grant", approved, "operator:alice", "contact", "email",
             False, ("grant-subject-out-of-scope",), subject_id=S2),
    ReadCase("collection outside the grant: no grant applies", approved, "operator:alice", "device",
             "device_id", False, ("protected-read-needs-grant",)),
    ReadCase("other purpose: no grant applies", approved, "operator:alice", "contact", "email",
             False, ("protected-read-needs-grant",), purpose="security_incident"),
    ReadCase("expired grant", lambda w: (approved(w), w.clock.advance(hours=2)), "operator:alice",
             "contact", "email", False, ("grant-expired",)),
    ReadCase("one microsecond before expiry",
             lambda w: (approved(w), w.clock.advance(hours=2, microseconds=-1)), "operator:alice",
             "contact", "email", True, ("protected-with-active-grant",)),
    ReadCase("grant not yet started",
             lambda w: approved(w, start_at=w.now + timedelta(hours=1)),
             "operator:alice", "contact", "email", False, ("grant-not-yet-started",)),
    ReadCase("revoked grant: no live grant applies",
             lambda w: w.service.revoke(approved(w), by="custodian:dan", reason="done", now=w.now),
             "operator:alice", "contact", "email", False, ("protected-read-needs-grant",)),
    ReadCase("screening pending", lambda w: None, "operator:oscar", "contact", "email",
             False, ("protected-needs-screened-principal", "protected-read-needs-grant")),
    ReadCase("auditor reads no records", lambda w: None, "auditor:ivy", "profile", "handle",
             False, ("auditors-read-no-records",)),
    ReadCase("public field for the parent", lambda w: None, "parent:bob", "profile", "handle",
             True, ("public-for-all",)),
    ReadCase("excepted field, listed purpose, registered principal", lambda w: None, "parent:bob",
             "device", "os_name", True, ("excepted-for-registered-purpose",), purpose="interoperability"),
    ReadCase("excepted field, unlisted purpose", lambda w: None, "parent:bob", "watch_history",
             "daily_views", False, ("excepted-only-for-listed-purposes",), purpose="interoperability"),
    ReadCase("excepted field, principal not registered for the purpose", lambda w: None,
             "operator:alice", "device", "os_name", False, (), purpose="interoperability"),
    ReadCase("service writes for its registered purpose", lambda w: None, "operator:svc-ingest",
             "contact", "email", True, ("services-write-for-registered-purpose",), action="write"),
    ReadCase("service may not write for another purpose", lambda w: None, "operator:svc-ingest",
             "contact", "email", False, (), purpose="business_metrics", action="write"),
    ReadCase("protected data never leaves its region", lambda w: None, "operator:svc-ingest",
             "contact", "email", False, ("protected-never-egresses",), action="egress"),
]


@pytest.mark.parametrize("case", READ_CASES, ids=lambda c: c.name)
def test_read_scenarios(world: World, case: ReadCase) -> None:
    case.setup(world)
    decision = read(
        world,
        case.principal,
        case.collection,
        case.field,
        subject_id=case.subject_id,
        purpose=case.purpose,
        action=case.action,
    )
    assert (decision.allowed, decision.policies) == (case.allowed, case.policies)
    if not case.allowed and not case.policies:
        resource = f"us/{case.collection}/{case.field}"
        assert decision.reasons == (
            f"no policy permits {case.action} on {resource} by {case.principal} "
            f"for purpose {case.purpose!r}",
        )


GRANT_CASES: list[tuple[str, Callable[[World, Grant], Grant], str, tuple[str, ...], str]] = [
    ("revoked", lambda w, g: replace(g, state=RequestState.REVOKED), "operator:alice",
     ("grant-revoked",), "the grant was revoked, denied, withdrawn or lapsed"),
    ("someone else's", lambda w, g: g, "operator:olga",
     ("grant-belongs-to-someone-else",), "the grant was given to another principal"),
    ("other collection", lambda w, g: replace(g, collections=frozenset({"device"}),
                                               fields=frozenset({"device.device_id"})),
     "operator:alice", ("grant-collection-out-of-scope", "grant-field-out-of-scope"),
     "the collection is outside the grant's scope"),
    ("other region", lambda w, g: replace(g, region="row"), "operator:alice",
     ("grant-region-out-of-scope",), "the record's region is outside the grant's scope"),
    ("other purpose", lambda w, g: replace(g, purpose="security_incident"), "operator:alice",
     ("grant-purpose-mismatch",), "the access is for another purpose than the grant's"),
    ("awaiting first use", lambda w, g: replace(g, state=RequestState.APPROVED, starts_at=None,
                                                expires_at=None, use_by=w.now + timedelta(days=1)),
     "operator:alice", ("grant-not-yet-started",), "the grant has not started yet"),
]


@pytest.mark.parametrize(("name", "change", "principal", "policies", "first_reason"), GRANT_CASES,
                         ids=[c[0] for c in GRANT_CASES])
def test_grant_fact_scenarios(
    world: World,
    name: str,
    change: Callable[[World, Grant], Grant],
    principal: str,
    policies: tuple[str, ...],
    first_reason: str,
) -> None:
    grant = change(world, _grant_of(world, approved(world)))
    decision = read(world, principal, "contact", "email", grant=grant)
    assert (decision.allowed, decision.policies) == (False, policies)
    assert decision.reasons[0] == first_reason


def test_parent_with_an_otherwise_valid_grant_is_denied(world: World) -> None:
    grant = parent_grant(world)
    assert grant.status_at(world.now) == "active"
    decision = read(world, "parent:bob", "contact", "email", grant=grant)
    assert (decision.allowed, decision.policies) == (False, ("parent-never-touches-protected",))
    assert decision.reasons == (
        "principals of the foreign parent never read, write, erase, relocate or export protected "
        "data, whatever else holds",
    )
    # The same grant given to alice would allow: the parent rule alone denies.
    alice = replace(grant, grantee="operator:alice")
    assert read(world, "operator:alice", "contact", "email", grant=alice).allowed


def test_parent_cannot_file_a_request(world: World) -> None:
    with pytest.raises(PermissionDenied) as caught:
        world.submit("parent:bob")
    assert str(caught.value) == (
        "parent:bob may not request access: principals of the foreign parent cannot request "
        "access or open break-glass grants"
    )
    assert world.grants.list() == []


# -- approvals ----------------------------------------------------------------------

NOT_APPROVER = "only custodian approvers approve access requests"

APPROVAL_CASES = [
    ("requester approves their own request", "operator:alice",
     ("operator:alice is not a custodian approver in the roster", NOT_APPROVER,
      "nobody approves their own request", "nobody approves a request from their own organisation")),
    ("same org, approver role", "operator:olga",
     ("operator:olga is not a custodian approver in the roster", NOT_APPROVER,
      "nobody approves a request from their own organisation")),
    ("custodian without the approver role", "custodian:erin",
     ("custodian:erin is not a custodian approver in the roster", NOT_APPROVER)),
    ("parent with an approver role", "parent:bob",
     ("parent:bob is not a custodian approver in the roster", NOT_APPROVER)),
]


@pytest.mark.parametrize(("name", "signer", "reasons"), APPROVAL_CASES, ids=[c[0] for c in APPROVAL_CASES])
def test_approvals_that_do_not_count(world: World, name: str, signer: str, reasons: tuple[str, ...]) -> None:
    if signer == "custodian:erin":
        world.principals.update(signer, actor="setup", vkey=SIGNERS[signer].vkey())
    record = world.submit()
    after = world.approve(record, signer)
    assert after.state is RequestState.PENDING
    (approval,) = after.approvals
    assert (approval.approver, approval.counted, approval.reasons) == (signer, False, reasons)
    recorded = world.events()[-1]
    assert recorded.type == "access.approval.recorded"
    assert (recorded.body["counted"], recorded.body["reasons"]) == (False, list(reasons))
    assert recorded.body["approvals_counted"] == 0


def test_single_subject_needs_one_custodian_approval(world: World) -> None:
    record = world.submit()
    assert record.required_approvals == 1
    mark = len(world.events())
    after = world.approve(record, "custodian:carol")
    assert after.state is RequestState.ACTIVE
    assert (after.starts_at, after.expires_at) == (START, START + timedelta(hours=2))
    assert world.event_types(mark) == [
        "access.approval.recorded",
        "access.request.approved",
        "access.grant.activated",
    ]


@pytest.mark.parametrize(
    ("kwargs", "label"),
    [
        ({"bulk_limit": 50}, "bulk count limit"),
        ({"subjects": (S1, S2)}, "several subjects"),
        ({"collections": frozenset({"messages"}), "fields": frozenset({"messages.body"})}, "messages"),
        ({"collections": frozenset({"location"}), "fields": frozenset({"location.precise"})}, "location"),
    ],
)
def test_bulk_and_sensitive_need_two_approvals(world: World, kwargs: dict[str, object], label: str) -> None:
    record = world.submit(**kwargs)  # type: ignore[arg-type]
    assert record.required_approvals == 2
    once = world.approve(record, "custodian:carol")
    assert once.state is RequestState.PENDING
    twice = world.approve(once, "custodian:carol")  # the same approver again does not count
    assert twice.state is RequestState.PENDING
    assert twice.approvals[-1].reasons == ("custodian:carol already signed a decision on this request",)
    done = world.approve(twice, "custodian:dan")
    assert done.state is RequestState.ACTIVE
    assert done.counted_approvers == ("custodian:carol", "custodian:dan")


def test_a_counted_denial_denies(world: World) -> None:
    record = world.submit(bulk_limit=10)
    world.approve(record, "custodian:carol")
    denied = world.approve(record, "custodian:dan", ApprovalDecision.DENY)
    assert (denied.state, denied.ended_by) == (RequestState.DENIED, "custodian:dan")
    with pytest.raises(Conflict) as caught:
        world.approve(record, "custodian:fay")
    assert str(caught.value) == f"cannot decide on request {record.id}: it is denied"


def test_a_signature_by_another_key_is_refused_and_not_recorded(world: World) -> None:
    record = world.submit()
    from rempart.access import sign_approval

    forged = sign_approval(
        SIGNERS["custodian:dan"], record.request, approver="custodian:carol",
        decision=ApprovalDecision.APPROVE, time=world.now,
    )
    mark = len(world.events())
    with pytest.raises(VerificationFailed) as caught:
        world.service.record_approval(record.id, forged, now=world.now)
    assert str(caught.value).startswith(
        "no signature from a known key: the note is signed by keys.example/custodian-dan+"
    )
    assert world.grants.get(record.id).approvals == ()
    assert len(world.events()) == mark


def test_an_approval_of_a_different_request_text_is_refused(world: World) -> None:
    record = world.submit()
    from rempart.access import sign_approval

    longer = replace(record.request, duration=timedelta(hours=8))
    note = sign_approval(
        SIGNERS["custodian:carol"], longer, approver="custodian:carol",
        decision=ApprovalDecision.APPROVE, time=world.now,
    )
    with pytest.raises(InvalidInput) as caught:
        world.service.record_approval(record.id, note, now=world.now)
    assert str(caught.value) == (
        f"the signed request (digest {longer.digest()}) is not request {record.id} as submitted "
        f"(digest {record.request.digest()})"
    )


# -- time ------------------------------------------------------------------------------


def test_lapsed_request(world: World) -> None:
    record = world.submit()
    world.clock.advance(hours=24)
    mark = len(world.events())
    (lapsed,) = world.service.advance(world.now)
    assert (lapsed.id, lapsed.state) == (record.id, RequestState.LAPSED)
    assert world.event_types(mark) == ["access.request.lapsed"]
    with pytest.raises(Conflict) as caught:
        world.approve(record, "custodian:carol")
    assert str(caught.value) == f"cannot decide on request {record.id}: it is lapsed"
    assert world.service.advance(world.now) == []


def test_first_use_clock(world: World) -> None:
    record = world.submit(clock_mode=ClockMode.AT_FIRST_USE, duration=timedelta(hours=1))
    approved_record = world.approve(record, "custodian:carol")
    assert approved_record.state is RequestState.APPROVED
    assert approved_record.use_by == START + timedelta(hours=72)
    world.clock.advance(hours=30)  # an at-approval grant would have expired long ago
    first_use = world.now
    mark = len(world.events())
    decision = read(world, "operator:alice", "contact", "email")
    assert decision.allowed
    stored = world.grants.get(record.id)
    assert (stored.state, stored.starts_at, stored.expires_at) == (
        RequestState.ACTIVE, first_use, first_use + timedelta(hours=1)
    )
    (activated,) = world.events()[mark:]
    assert (activated.type, activated.body["trigger"]) == ("access.grant.activated", "first_use")
    world.clock.advance(minutes=59)
    assert read(world, "operator:alice", "contact", "email").allowed
    world.clock.advance(minutes=1)
    assert read(world, "operator:alice", "contact", "email").policies == ("grant-expired",)


def test_first_use_grant_never_used_expires_unused(world: World) -> None:
    record = world.approve(world.submit(clock_mode=ClockMode.AT_FIRST_USE), "custodian:carol")
    world.clock.advance(hours=72)
    (expired,) = world.service.advance(world.now)
    assert (expired.id, expired.state) == (record.id, RequestState.EXPIRED)
    event = world.events()[-1]
    assert (event.type, event.body["unused"]) == ("access.grant.expired", True)


def test_start_time_then_expiry_are_recorded_by_the_sweep(world: World) -> None:
    record = world.approve(world.submit(start_at=START + timedelta(hours=1)), "custodian:carol")
    assert record.state is RequestState.APPROVED
    world.clock.advance(hours=1)
    mark = len(world.events())
    world.service.advance(world.now)
    world.clock.advance(hours=2)
    world.service.advance(world.now)
    assert world.event_types(mark) == ["access.grant.activated", "access.grant.expired"]
    assert world.grants.get(record.id).state is RequestState.EXPIRED


def test_bulk_grant_covers_at_most_its_count(world: World) -> None:
    record = world.submit(bulk_limit=2)
    world.approve(record, "custodian:carol")
    world.approve(record, "custodian:dan")
    assert read(world, "operator:alice", "contact", "email", subject_id=S1).allowed
    assert read(world, "operator:alice", "contact", "email", subject_id=S2).allowed
    third = read(world, "operator:alice", "contact", "email", subject_id=S3)
    assert (third.allowed, third.policies) == (False, ("grant-subject-out-of-scope",))
    assert read(world, "operator:alice", "contact", "phone", subject_id=S1).allowed  # S1 keeps its slot
    assert world.grants.claimed(record.id) == 2


def test_withdraw_only_by_the_requester(world: World) -> None:
    record = world.submit()
    with pytest.raises(Conflict) as caught:
        world.service.withdraw(record.id, by="operator:olga", now=world.now)
    assert str(caught.value) == f"only the requester (operator:alice) withdraws request {record.id}"
    withdrawn = world.service.withdraw(record.id, by="operator:alice", now=world.now)
    assert withdrawn.state is RequestState.WITHDRAWN


def test_revoke_only_by_grantee_or_custodian_approver(world: World) -> None:
    request_id = approved(world)
    with pytest.raises(PermissionDenied) as caught:
        world.service.revoke(request_id, by="operator:olga", reason="x", now=world.now)
    assert str(caught.value) == (
        f"operator:olga may not revoke {request_id}: only its grantee or a custodian approver may"
    )
    revoked = world.service.revoke(request_id, by="operator:alice", reason="ticket closed", now=world.now)
    assert (revoked.state, revoked.end_reason) == (RequestState.REVOKED, "ticket closed")


# -- break-glass --------------------------------------------------------------------------


def open_break_glass(world: World, duration: timedelta = timedelta(minutes=30)) -> str:
    scope = Scope("us", frozenset({"contact"}), frozenset({"contact.email"}), (S1,))
    return world.service.open_break_glass(
        requester="operator:alice", scope=scope, purpose="security_incident",
        ticket="INC-7", duration=duration, now=world.now,
    ).id


def test_break_glass_opens_at_once_and_is_flagged(world: World) -> None:
    mark = len(world.events())
    request_id = open_break_glass(world)
    (opened,) = world.events()[mark:]
    assert opened.type == "access.break_glass.opened"
    assert (opened.body["expires_at"], opened.body["review_due"]) == (
        "2026-03-02T09:30:00.000000Z", "2026-03-03T09:00:00.000000Z"
    )
    grant = world.service.grant_for_use("operator:alice", "us", "contact", S1, "security_incident", world.now)
    assert grant is not None and grant.break_glass and grant.id == request_id
    decision = read(world, "operator:alice", "contact", "email", purpose="security_incident")
    assert (decision.allowed, decision.policies) == (True, ("protected-with-active-grant",))


def test_break_glass_is_capped(world: World) -> None:
    with pytest.raises(InvalidInput) as caught:
        open_break_glass(world, timedelta(hours=2))
    assert str(caught.value) == "a break-glass grant lasts at most 3600 s, 7200 s were asked"


def test_break_glass_needs_screened_operator(world: World) -> None:
    scope = Scope("us", frozenset({"contact"}), frozenset({"contact.email"}), (S1,))
    with pytest.raises(PermissionDenied) as caught:
        world.service.open_break_glass(
            requester="operator:oscar", scope=scope, purpose="security_incident",
            ticket="INC-7", duration=timedelta(minutes=5), now=world.now,
        )
    assert str(caught.value) == (
        "operator:oscar may not break glass: no policy permits break_glass on req_"
        + str(caught.value).split("req_")[1].split(" ")[0]
        + " by operator:oscar"
    )


def test_missing_break_glass_review_is_reported(world: World) -> None:
    request_id = open_break_glass(world)
    world.clock.advance(hours=23, minutes=59)
    assert world.service.overdue_break_glass_reviews(world.now) == []
    world.clock.advance(hours=2, minutes=1)
    (violation,) = world.service.overdue_break_glass_reviews(world.now)
    assert (violation.request_id, violation.requester, violation.overdue_by) == (
        request_id, "operator:alice", timedelta(hours=2)
    )
    record = world.grants.get(request_id)
    mark = len(world.events())
    world.review(record, "operator:olga", ReviewVerdict.UPHELD)  # does not count
    assert len(world.service.overdue_break_glass_reviews(world.now)) == 1
    reviewed = world.review(record, "custodian:carol", ReviewVerdict.UPHELD)
    assert reviewed.reviewed
    assert world.service.overdue_break_glass_reviews(world.now) == []
    events = world.events()[mark:]
    assert [e.type for e in events] == [
        "access.grant.expired",  # the 30-minute grant ran out long before; recorded first
        "access.break_glass.reviewed",
        "access.break_glass.reviewed",
    ]
    assert [(e.body["reviewer"], e.body["counted"], e.body["late"]) for e in events[1:]] == [
        ("operator:olga", False, True),
        ("custodian:carol", True, True),
    ]


def test_rejected_break_glass_is_revoked(world: World) -> None:
    request_id = open_break_glass(world)
    after = world.review(world.grants.get(request_id), "custodian:carol", ReviewVerdict.REJECTED)
    assert (after.state, after.ended_by) == (RequestState.REVOKED, "custodian:carol")
    assert world.event_types()[-2:] == ["access.break_glass.reviewed", "access.grant.revoked"]
    decision = read(world, "operator:alice", "contact", "email", purpose="security_incident")
    assert decision.policies == ("protected-read-needs-grant",)


# -- fail closed --------------------------------------------------------------------------


def test_no_transition_without_the_log(world: World) -> None:
    record = world.submit()
    world.log.close()
    with pytest.raises(AuditUnavailable) as caught:
        world.approve(record, "custodian:carol")
    assert str(caught.value) == "the log is closed"
    assert world.grants.get(record.id).state is RequestState.PENDING
    assert world.grants.get(record.id).approvals == ()
    with pytest.raises(AuditUnavailable):
        world.submit()
    assert [r.id for r in world.grants.list()] == [record.id]
