"""Property: a memoized, batched decision is exactly what a fresh, single Cedar evaluation says."""

from __future__ import annotations

import cedarpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rempart.policy import (
    DEFAULT_POLICIES,
    NO_GRANT,
    AccessRequestResource,
    CompiledPolicies,
    DecisionRequest,
    FieldResource,
    GrantContext,
    PolicyEngine,
    PolicySchema,
    PrincipalEntity,
    RecordContext,
)
from rempart.store.catalog import PURPOSES

SCHEMA = PolicySchema.default()
POLICIES = CompiledPolicies.compile(DEFAULT_POLICIES, SCHEMA)
# One engine for every example, with a small cache: hits, misses and evictions all happen.
ENGINE = PolicyEngine(POLICIES, cache_size=64)

IDS = st.sampled_from(["operator:alice", "operator:olga", "parent:bob", "custodian:carol", "auditor:ivy"])
ORGS = st.sampled_from(["operator", "parent", "custodian", "board", "auditor"])
WORDS = st.frozensets(st.sampled_from(["support", "engineer", "approver", "service"]), max_size=3)
PURPOSE = st.sampled_from(PURPOSES)
PURPOSE_SETS = st.frozensets(PURPOSE, max_size=3)
REGIONS = st.sampled_from(["us", "row"])
COLLECTIONS = st.sampled_from(["contact", "device"])
FIELDS = st.sampled_from(["email", "os_name"])

principals = st.builds(
    PrincipalEntity,
    IDS,
    ORGS,
    st.sampled_from(["US", "CN"]),
    st.sampled_from(["cleared", "pending", "none"]),
    WORDS,
    PURPOSE_SETS,
)
fields = st.builds(
    FieldResource, REGIONS, COLLECTIONS, FIELDS,
    st.sampled_from(["protected", "excepted", "public"]), PURPOSE_SETS,
)
present_grants = st.builds(
    GrantContext,
    present=st.just(True),
    status=st.sampled_from(["active", "expired", "not_started", "revoked", "awaiting_first_use"]),
    id=st.just("req_0000000000000001"),
    grantee=IDS,
    regions=st.frozensets(REGIONS, min_size=1),
    collections=st.frozensets(COLLECTIONS, min_size=1),
    fields=st.frozensets(st.sampled_from(["contact.email", "device.os_name", "contact.os_name"])),
    covers_subject=st.booleans(),
    purpose=PURPOSE,
    break_glass=st.booleans(),
)
record_requests = st.builds(
    DecisionRequest,
    principals,
    st.sampled_from(["read", "write", "erase", "egress", "relocate"]),
    fields,
    st.builds(RecordContext, PURPOSE, st.one_of(st.just(NO_GRANT), present_grants)),
)
approve_requests = st.builds(
    DecisionRequest,
    principals,
    st.sampled_from(["approve", "request_access", "break_glass"]),
    st.builds(AccessRequestResource, st.just("req_0000000000000001"), IDS, ORGS),
)
requests = st.one_of(record_requests, record_requests, approve_requests)


def fresh(request: DecisionRequest) -> tuple[bool, frozenset[str], tuple[str, ...]]:
    """Cedar alone, no cache, no batch: the policy text parsed anew, only this request's entities."""
    result = cedarpy.is_authorized(
        request.cedar(),
        DEFAULT_POLICIES,
        [request.principal.entity(), request.resource.entity()],
        schema=SCHEMA.text,
    )
    ids = frozenset(result.diagnostics.id_annotations_by_reason.values())
    return result.allowed, ids, tuple(result.diagnostics.errors)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(requests, min_size=1, max_size=12))
def test_memoized_batched_decide_equals_fresh_cedar(batch: list[DecisionRequest]) -> None:
    decisions = ENGINE.decide(batch + batch[:3])  # repeats inside a batch, too
    for request, decision in zip(batch + batch[:3], decisions, strict=True):
        allowed, ids, errors = fresh(request)
        assert decision.allowed == allowed
        assert frozenset(decision.policies) == ids
        assert len(decision.policies) == len(ids)
        assert decision.errors == errors
        assert decision.policy_version == POLICIES.version
