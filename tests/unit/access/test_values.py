"""Validation of principals, scopes, requests, rules and tokens: every rejection says what was wrong."""

from __future__ import annotations

from datetime import timedelta

import pytest

import rempart.access
from rempart.access import AccessRequest, AccessRules, ClockMode, Principal, Scope, lifecycle
from rempart.access.tokens import parse_token
from rempart.errors import ConfigurationError, InvalidInput, Unauthenticated
from tests.unit.access.cast import SIGNERS, START, subject

GOOD = {
    "id": "operator:alice", "display_name": "Alice", "org": "operator", "location": "US",
    "screening": "cleared", "roles": ["support"], "purposes": [], "vkey": None,
}

PRINCIPAL_ERRORS = [
    ({"id": "alice"}, "principal id 'alice' is not of the form kind:name (lowercase kind, then letters, "
                      "digits, '.', '_', '@' or '-'; at most 160 characters)"),
    ({"display_name": " "}, "display name must be a non-empty string"),
    ({"display_name": "A\nB"}, "display name contains a control character"),
    ({"org": "vendor"}, "org 'vendor' is not one of: operator, parent, custodian, board, auditor"),
    ({"location": "usa"}, "location 'usa' is not an ISO 3166-1 alpha-2 country code (e.g. US)"),
    ({"screening": "ok"}, "screening 'ok' is not one of: cleared, pending, none"),
    ({"roles": ["Support"]}, "role 'Support' is not a lowercase word (a-z, 0-9, _)"),
    ({"roles": "support"}, "roles must be a list of strings, not one string"),
    ({"purposes": ["fun"]}, "purpose 'fun' is not a purpose code; use one of: customer_support, "
                            "legal_request, security_incident, service_debugging, data_subject_request, "
                            "interoperability, business_metrics, safety_moderation"),
    ({"vkey": "nonsense"}, "verifier key must be name+hexid+base64(type‖key), found 1 '+'-separated part"),
]


@pytest.mark.parametrize(("change", "message"), PRINCIPAL_ERRORS, ids=[m[:30] for _, m in PRINCIPAL_ERRORS])
def test_principal_validation(change: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Principal.build(**{**GOOD, **change})  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_principal_facts_and_verifier() -> None:
    p = Principal.build(**{**GOOD, "vkey": SIGNERS["operator:alice"].vkey()})  # type: ignore[arg-type]
    assert p.verifier() == SIGNERS["operator:alice"].verifier()
    assert p.entity().roles == frozenset({"support"})
    assert "display_name" not in p.facts()


SCOPE_ERRORS = [
    (("US", {"contact"}, {"contact.email"}, (subject("a"),), None),
     "region 'US' is not a region name (lowercase, a-z0-9_-)"),
    (("us", set(), {"contact.email"}, (subject("a"),), None), "a scope names at least one collection"),
    (("us", {"contact"}, {"email"}, (subject("a"),), None), "field 'email' is not collection.field"),
    (("us", {"contact"}, {"device.os_name"}, (subject("a"),), None),
     "field 'device.os_name' is in collection 'device', which the scope does not name"),
    (("us", {"contact", "device"}, {"contact.email"}, (subject("a"),), None),
     "collection 'device' has no field in the scope"),
    (("us", {"contact"}, {"contact.email"}, ("alice@example.com",), None),
     "subject 'alice@example.com' is not a subject commitment (64 lowercase hex digits); subjects are "
     "named by their keyed commitment, never in clear"),
    (("us", {"contact"}, {"contact.email"}, (), None),
     "a scope lists subjects or gives a bulk count limit, exactly one of the two"),
    (("us", {"contact"}, {"contact.email"}, (subject("a"),), 3),
     "a scope lists subjects or gives a bulk count limit, exactly one of the two"),
    (("us", {"contact"}, {"contact.email"}, (), 0), "bulk_limit must be a whole number of at least 1"),
]


@pytest.mark.parametrize(("args", "message"), SCOPE_ERRORS, ids=[m[:30] for _, m in SCOPE_ERRORS])
def test_scope_validation(args: tuple[object, ...], message: str) -> None:
    region, collections, fields, subjects, bulk = args
    with pytest.raises(InvalidInput) as caught:
        Scope(region, frozenset(collections), frozenset(fields), subjects, bulk)  # type: ignore[arg-type]
    assert str(caught.value) == message


def request(**changes: object) -> AccessRequest:
    base: dict[str, object] = {
        "id": "req_0123456789abcdef", "requester": "operator:alice", "requester_org": "operator",
        "scope": Scope(
            "us", frozenset({"contact"}), frozenset({"contact.email"}), (subject("b"), subject("a"))
        ),
        "purpose": "customer_support", "ticket": "SUP-9", "duration": timedelta(hours=1),
        "created_at": START,
    }
    return AccessRequest(**{**base, **changes})  # type: ignore[arg-type]


def test_canonical_request_round_trips_and_sorts_subjects() -> None:
    r = request(start_at=START + timedelta(minutes=5))
    assert r.scope.subjects == tuple(sorted((subject("a"), subject("b"))))
    assert AccessRequest.from_canonical(r.canonical()) == r
    assert r.canonical()["created_at"] == "2026-03-02T09:00:00.000000Z"
    tampered = {**r.canonical(), "extra": 1}
    with pytest.raises(InvalidInput) as caught:
        AccessRequest.from_canonical(tampered)
    assert str(caught.value) == "request is not in canonical form (unknown keys or non-canonical values)"


REQUEST_ERRORS = [
    ({"id": "42"}, "access request id '42' is not req_ followed by 16 hex digits"),
    ({"purpose": "curiosity"}, None),
    ({"ticket": ""}, "a request names its ticket reference (e.g. SUP-1234)"),
    ({"duration": timedelta(seconds=1.5)}, "duration is a whole number of seconds"),
    ({"duration": timedelta(0)}, "duration must be at least one second"),
    ({"created_at": START.replace(tzinfo=None)}, "created_at must be a timezone-aware time"),
]


@pytest.mark.parametrize(("change", "message"), REQUEST_ERRORS, ids=[str(c) for c, _ in REQUEST_ERRORS])
def test_request_validation(change: dict[str, object], message: str | None) -> None:
    with pytest.raises(InvalidInput) as caught:
        request(**change)
    if message is None:
        assert str(caught.value).startswith("purpose 'curiosity' is not a known purpose code")
    else:
        assert str(caught.value) == message


SUBMIT_ERRORS = [
    ({"duration": timedelta(hours=9)}, "duration 32400 s is longer than the 28800 s allowed"),
    ({"start_at": START - timedelta(seconds=1)}, "start_at is in the past"),
    ({"start_at": START + timedelta(days=15)}, "start_at is more than 1209600 s ahead"),
    ({"start_at": START + timedelta(hours=1), "clock_mode": ClockMode.AT_FIRST_USE},
     "a first-use grant starts at its first use: leave start_at empty"),
    ({"break_glass": True}, "a break-glass request is opened with open_break_glass, not submitted"),
]


@pytest.mark.parametrize(("change", "message"), SUBMIT_ERRORS, ids=[m[:30] for _, m in SUBMIT_ERRORS])
def test_submit_caps(change: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        lifecycle.submit(request(**change), rules=AccessRules(), now=START)
    assert str(caught.value) == message


def test_rules_refuse_open_doors() -> None:
    with pytest.raises(ConfigurationError) as caught:
        AccessRules(approvals_bulk=0)
    assert str(caught.value) == (
        "access.approvals_bulk must be a whole number of at least 1 (0 would open the door)"
    )
    with pytest.raises(ConfigurationError) as caught:
        AccessRules(decision_timeout=timedelta(0))
    assert str(caught.value) == "access.decision_timeout must be a positive duration"
    rules = AccessRules(approvals_single_subject=1, approvals_bulk=3, approvals_sensitive=2)
    one = Scope("us", frozenset({"contact"}), frozenset({"contact.email"}), (subject("a"),))
    assert rules.required_approvals(one) == 1
    assert rules.required_approvals(Scope("us", one.collections, one.fields, (), 10)) == 3
    msg = Scope("us", frozenset({"messages"}), frozenset({"messages.body"}), (subject("a"),))
    assert rules.required_approvals(msg) == 2


TOKEN_ERRORS = [
    "",
    "rpt_0123456789abcdef",
    "rpt_0123456789ABCDEF_" + "A" * 43,
    "xyz_0123456789abcdef_" + "A" * 43,
    "rpt_0123456789abcdef_" + "A" * 42,
]


@pytest.mark.parametrize("token", TOKEN_ERRORS)
def test_malformed_tokens(token: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        parse_token(token)
    assert str(caught.value) == (
        "the token is malformed: expected rpt_<16 hex digits>_<43-character secret>"
    )


def test_public_api_is_pinned() -> None:
    assert sorted(rempart.access.__all__) == [
        "APPROVAL_HEADER", "AccessRequest", "AccessRules", "AccessService", "Approval",
        "ApprovalDecision", "ApproverRoster", "BreakGlassViolation", "ClockMode", "Grant", "GrantStore",
        "IssuedToken", "ORGS", "Principal", "PrincipalRoster", "PrincipalStore", "REVIEW_HEADER",
        "RequestRecord", "RequestState", "Review", "ReviewVerdict", "RosterEntry", "SCREENING_STATUSES",
        "Scope", "SignedStatement", "StaleRecord", "TokenInfo", "TokenStore", "Transition",
        "approval_text", "field_requests", "grant_context", "read_statement", "review_text",
        "sign_approval", "sign_review", "verify_statement",
    ]
