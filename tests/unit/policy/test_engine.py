"""The engine: one Cedar call per batch, exact memoization, fail closed on evaluation errors."""

from __future__ import annotations

import json
from dataclasses import replace

import cedarpy
import pytest

from rempart.errors import InvalidInput
from rempart.policy import (
    DEFAULT_POLICIES,
    NO_GRANT,
    AccessRequestResource,
    CompiledPolicies,
    DecisionRequest,
    FieldResource,
    GrantContext,
    LogResource,
    PolicyEngine,
    PolicySchema,
    PrincipalEntity,
    RecordContext,
)

SCHEMA = PolicySchema.default()
DEFAULT = CompiledPolicies.compile(DEFAULT_POLICIES, SCHEMA)

ALICE = PrincipalEntity("operator:alice", "operator", "US", "cleared", frozenset({"support"}))
EMAIL = FieldResource("us", "contact", "email", "protected")
PHONE = FieldResource("us", "contact", "phone", "protected")
HANDLE = FieldResource("us", "profile", "handle", "public")
GRANT = GrantContext(
    present=True,
    status="active",
    id="req_0000000000000001",
    grantee="operator:alice",
    regions=frozenset({"us"}),
    collections=frozenset({"contact"}),
    fields=frozenset({"contact.email"}),
    covers_subject=True,
    purpose="customer_support",
)
SUPPORT = RecordContext("customer_support", GRANT)


def req(principal: PrincipalEntity = ALICE, resource: FieldResource = EMAIL,
        context: RecordContext = SUPPORT, action: str = "read") -> DecisionRequest:
    return DecisionRequest(principal, action, resource, context)


def test_one_cedar_call_for_a_batch_and_none_for_hits() -> None:
    engine = PolicyEngine(DEFAULT)
    batch = [req(), req(resource=PHONE), req(resource=HANDLE), req()]
    first = engine.decide(batch)
    assert [d.allowed for d in first] == [True, False, True, True]
    assert [d.policies for d in first] == [
        ("protected-with-active-grant",),
        ("grant-field-out-of-scope",),
        ("public-for-all",),
        ("protected-with-active-grant",),
    ]
    assert first[1].reasons == ("the field is outside the grant's scope",)
    stats = engine.stats()
    assert (stats.cedar_calls, stats.evaluations, stats.misses, stats.hits, stats.size) == (1, 3, 4, 0, 3)
    again = engine.decide(batch)
    assert again == first
    stats = engine.stats()
    assert (stats.cedar_calls, stats.hits) == (1, 4)


def test_every_changed_fact_is_a_new_key() -> None:
    engine = PolicyEngine(DEFAULT)
    assert engine.decide_one(req()).allowed
    variants = [
        req(principal=PrincipalEntity("operator:alice", "parent", "US", "cleared", frozenset({"support"}))),
        req(principal=PrincipalEntity("operator:alice", "operator", "US", "pending", frozenset({"support"}))),
        req(context=RecordContext("customer_support", _grant(status="expired"))),
        req(context=RecordContext("customer_support", _grant(covers_subject=False))),
        req(context=RecordContext("legal_request", GRANT)),
        req(resource=FieldResource("row", "contact", "email", "protected")),
    ]
    decisions = engine.decide(variants)
    assert [d.allowed for d in decisions] == [False] * len(variants)
    assert [d.policies for d in decisions] == [
        ("parent-never-touches-protected",),
        ("protected-needs-screened-principal",),
        ("grant-expired",),
        ("grant-subject-out-of-scope",),
        ("grant-purpose-mismatch",),
        ("grant-region-out-of-scope",),
    ]


def _grant(**changes: object) -> GrantContext:
    return replace(GRANT, **changes)  # type: ignore[arg-type]


def test_same_entity_with_different_attributes_in_one_batch() -> None:
    engine = PolicyEngine(DEFAULT)
    moved = PrincipalEntity("operator:alice", "parent", "US", "cleared", frozenset({"support"}))
    decisions = engine.decide([req(), req(principal=moved)])
    assert [(d.allowed, d.policies) for d in decisions] == [
        (True, ("protected-with-active-grant",)),
        (False, ("parent-never-touches-protected",)),
    ]
    assert engine.stats().cedar_calls == 2  # split into two groups, never merged


def test_decisions_match_cedars_own_report() -> None:
    parent = PrincipalEntity("parent:bob", "parent", "CN", "cleared", frozenset({"engineer"}))
    request = req(principal=parent, context=RecordContext("customer_support", NO_GRANT))
    raw = cedarpy.is_authorized(
        request.cedar(), DEFAULT_POLICIES,
        [parent.entity(), EMAIL.entity()], schema=SCHEMA.text,
    )
    decision = PolicyEngine(DEFAULT).decide_one(request)
    assert decision.allowed is raw.allowed is False
    assert set(decision.policies) == set(raw.diagnostics.id_annotations_by_reason.values()) == {
        "parent-never-touches-protected", "protected-read-needs-grant",
    }
    assert decision.policies == ("parent-never-touches-protected", "protected-read-needs-grant")


def test_approve_and_read_log_and_request_actions() -> None:
    engine = PolicyEngine(DEFAULT)
    carol = PrincipalEntity("custodian:carol", "custodian", "US", "cleared", frozenset({"approver"}))
    ivy = PrincipalEntity("auditor:ivy", "auditor", "US", "cleared", frozenset({"auditor"}))
    alices = AccessRequestResource("req_0000000000000001", "operator:alice", "operator")
    decisions = engine.decide([
        DecisionRequest(carol, "approve", alices),
        DecisionRequest(ALICE, "approve", alices),
        DecisionRequest(ivy, "read_log", LogResource("main")),
        DecisionRequest(ALICE, "read_log", LogResource("main")),
        DecisionRequest(ALICE, "request_access", alices),
    ])
    assert [(d.allowed, d.policies) for d in decisions] == [
        (True, ("custodian-approvers-approve",)),
        (False, ("only-custodian-approvers-approve", "no-self-approval", "no-same-org-approval")),
        (True, ("oversight-reads-log",)),
        (False, ()),
        (True, ("operators-request-access",)),
    ]
    assert decisions[3].reasons == ("no policy permits read_log on main by operator:alice",)


def test_install_puts_the_new_set_in_force_and_drops_the_cache() -> None:
    engine = PolicyEngine(DEFAULT)
    assert engine.decide_one(req(resource=HANDLE)).allowed
    stricter = CompiledPolicies.compile(
        DEFAULT_POLICIES + '\n@id("nothing-public") @reason("closed for maintenance")\n'
        'forbid (principal, action, resource) when { resource is Rempart::Field && '
        'resource.category == "public" };\n',
        SCHEMA,
    )
    engine.install(stricter)
    assert engine.stats().size == 0
    decision = engine.decide_one(req(resource=HANDLE))
    assert (decision.allowed, decision.policies, decision.policy_version) == (
        False, ("nothing-public",), stricter.version
    )


def test_evaluation_errors_deny_and_are_not_cached() -> None:
    broken = CompiledPolicies.compile(
        '@id("overflow") permit (principal, action, resource) when { 9223372036854775807 + 1 > 0 };',
        SCHEMA,
    )
    engine = PolicyEngine(broken)
    decision = engine.decide_one(req())
    assert (decision.allowed, decision.policies) == (False, ())
    assert decision.errors == (
        "error while evaluating policy `overflow`: integer overflow while attempting to add the "
        "values `9223372036854775807` and `1`",
    )
    assert decision.reasons[1] == f"evaluation error: {decision.errors[0]}"
    assert engine.stats().size == 0


def test_cache_is_bounded_lru() -> None:
    engine = PolicyEngine(DEFAULT, cache_size=2)
    a, b, c = req(), req(resource=PHONE), req(resource=HANDLE)
    engine.decide([a, b])
    engine.decide([a])  # a is now the most recent
    engine.decide([c])  # evicts b
    before = engine.stats().cedar_calls
    engine.decide([a, c])
    assert engine.stats().cedar_calls == before
    engine.decide([b])
    assert engine.stats().cedar_calls == before + 1


def test_requests_are_type_checked() -> None:
    with pytest.raises(InvalidInput) as caught:
        GrantContext(present=1, status="active")  # type: ignore[arg-type]
    assert str(caught.value) == "grant present must be a bool, got int"
    with pytest.raises(InvalidInput) as caught:
        DecisionRequest(ALICE, "read", EMAIL, None)
    assert str(caught.value) == "action 'read' needs a FieldResource and a RecordContext"
    with pytest.raises(InvalidInput) as caught:
        FieldResource("us", "contact", "email", "secret")
    assert str(caught.value) == "field category 'secret' is not one of excepted, protected, public"
    with pytest.raises(InvalidInput) as caught:
        PolicyEngine(DEFAULT).decide(["read"])  # type: ignore[list-item]
    assert str(caught.value) == "expected a DecisionRequest, got str"


def test_request_as_cedar_sees_it() -> None:
    assert json.loads(json.dumps(req().cedar())) == {
        "principal": {"type": "Rempart::Principal", "id": "operator:alice"},
        "action": {"type": "Rempart::Action", "id": "read"},
        "resource": {"type": "Rempart::Field", "id": "us/contact/email"},
        "context": {
            "purpose": "customer_support",
            "grant": {
                "present": True, "active": True, "status": "active", "id": "req_0000000000000001",
                "grantee": "operator:alice", "regions": ["us"], "collections": ["contact"],
                "fields": ["contact.email"], "covers_subject": True, "purpose": "customer_support",
                "break_glass": False,
            },
        },
    }
