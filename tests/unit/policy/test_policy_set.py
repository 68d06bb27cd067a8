"""Compiling policy sets: Cedar's validation, the house rules, the @id table."""

from __future__ import annotations

import json

import cedarpy
import pytest

import rempart.policy
from rempart.errors import InvalidInput
from rempart.policy import DEFAULT_POLICIES, CompiledPolicies, PolicySchema

SCHEMA = PolicySchema.default()
READ = 'action == Rempart::Action::"read"'

REFUSED = [
    (
        "unknown attribute",
        f'@id("x") permit(principal, {READ}, resource) when {{ principal.orgg == "x" }};',
        "policy set refused by Cedar: [x] for policy `policy0`, attribute `orgg` on entity type "
        "`Rempart::Principal` not found",
    ),
    (
        "parse error",
        '@id("x") permit(principal, action, resource) when { ;',
        "policy set refused by Cedar: Policy parse error: unexpected token `;`",
    ),
    (
        "wrong type",
        f'@id("x") permit(principal, {READ}, resource) when {{ principal.roles == "support" }};',
        None,
    ),
    (
        "no @id",
        "permit(principal, action, resource);",
        'policy set refused: policy policy0 has no @id("…") annotation; every policy needs one, '
        "it is reported as the deciding policy",
    ),
    (
        "forbid without @reason",
        '@id("x") forbid(principal, action, resource);',
        'policy set refused: forbid policy \'x\' has no @reason("…"); a deny must tell the caller why',
    ),
    (
        "duplicate @id",
        '@id("x") permit(principal, action, resource);\n@id("x") permit(principal, action, resource);',
        "policy set refused: @id 'x' is used twice",
    ),
    (
        "attribute of an entity literal",
        f'@id("x") permit(principal, {READ}, resource) '
        'when { Rempart::Principal::"operator:a".org == "x" };',
        "policy set refused: policy 'x' uses an entity literal outside ==, != or in; decisions may "
        "depend only on the request's own principal, resource and context",
    ),
    (
        "template",
        '@id("x") permit(principal == ?principal, action, resource);',
        "policy set refused: templates are not supported; put grant facts in context",
    ),
    ("empty", "", "policy set refused: it holds no policy (everything would be denied)"),
    ("too long", "//" + "x" * 48_000, "policy set refused: 48002 characters, more than the 48000 allowed"),
]


@pytest.mark.parametrize(("name", "text", "message"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_sets(name: str, text: str, message: str | None) -> None:
    with pytest.raises(InvalidInput) as caught:
        CompiledPolicies.compile(text, SCHEMA)
    if message is None:
        assert str(caught.value).startswith("policy set refused by Cedar: [x] ")
    else:
        assert str(caught.value) == message


ALLOWED_LITERALS = [
    f'@id("x") permit(principal == Rempart::Principal::"operator:a", {READ}, resource);',
    f'@id("x") permit(principal, {READ}, resource) when {{ principal == Rempart::Principal::"operator:a" }};',
    f'@id("x") permit(principal, {READ}, resource) '
    'when { principal in [Rempart::Principal::"operator:a", Rempart::Principal::"operator:b"] };',
    '@id("x") permit(principal, action, resource) when { action != Rempart::Action::"approve" };',
]


@pytest.mark.parametrize("text", ALLOWED_LITERALS)
def test_entity_literals_in_comparisons_are_fine(text: str) -> None:
    assert CompiledPolicies.compile(text, SCHEMA).version


def test_default_set_compiles_and_its_ids_match_cedars() -> None:
    policies = CompiledPolicies.compile(DEFAULT_POLICIES, SCHEMA)
    ids = list(policies.ids())
    assert len(ids) == len(set(ids)) == len(policies.handle) == 28
    assert ids[0] == "parent-never-touches-protected"
    # Our positional table must be the one Cedar uses when it reports reasons.
    cedar_ids = json.loads(cedarpy.policies_to_json_str(DEFAULT_POLICIES))["staticPolicies"]
    assert {k: v["annotations"]["id"] for k, v in cedar_ids.items()} == {
        k: v.id for k, v in policies.infos.items()
    }
    for info in policies.infos.values():
        assert info.effect in {"permit", "forbid"}
        if info.effect == "forbid":
            assert info.reason


def test_version_is_the_text_hash_and_key_adds_the_schema() -> None:
    a = CompiledPolicies.compile(DEFAULT_POLICIES, SCHEMA)
    b = CompiledPolicies.compile(DEFAULT_POLICIES + "\n", SCHEMA)
    assert a.version != b.version
    assert a.key == f"{a.version}:{SCHEMA.digest}"
    assert a.version == CompiledPolicies.compile(DEFAULT_POLICIES, SCHEMA).version


def test_public_api_is_pinned() -> None:
    assert sorted(rempart.policy.__all__) == sorted(
        [
            "ACTIONS", "DEFAULT_POLICIES", "GRANT_STATUSES", "MAX_POLICY_TEXT", "NO_GRANT",
            "RECORD_ACTIONS", "REQUEST_ACTIONS", "SCHEMA_TEXT", "AccessRequestResource", "CacheStats",
            "CompiledPolicies", "Decision", "DecisionBatcher", "DecisionRequest", "FieldResource",
            "GrantContext", "LogResource", "PolicyActivation", "PolicyEngine", "PolicyInfo",
            "PolicySchema", "PolicyStore", "PrincipalEntity", "RecordContext",
        ]
    )
