"""The Cedar schema and compiled policy sets: parsed once, validated, annotated.

A policy set is accepted only if Cedar parses it and validates it against the
schema, and if it follows three house rules that Cedar cannot check:

* every policy has a unique ``@id`` annotation (reported as a deciding policy),
  and every ``forbid`` has a ``@reason`` (shown to the caller on a deny);
* no templates (a grant is facts in the context, not a linked policy);
* entity literals appear only as operands of ``==``, ``!=`` and ``in``: a
  policy may not read the attributes of an entity named in its text. A
  decision then depends on the request's own principal and resource alone,
  never on which other entities share a batch: that is what makes batched and
  memoized decisions exact.

A refused set raises :class:`~rempart.errors.InvalidInput` whose message is
Cedar's own (or the house rule's), and nothing else changes.

>>> schema = PolicySchema.default()
>>> policies = CompiledPolicies.compile(DEFAULT_POLICIES, schema)
>>> policies.info("policy0").id
'parent-never-touches-protected'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

import cedarpy

from rempart.errors import ConfigurationError, InvalidInput

__all__ = [
    "DEFAULT_POLICIES",
    "MAX_POLICY_TEXT",
    "SCHEMA_TEXT",
    "CompiledPolicies",
    "PolicyInfo",
    "PolicySchema",
]

MAX_POLICY_TEXT: Final = 48_000
"""Characters: a policy set is logged in full when activated, and log entries are at most 64 KiB."""


def _resource_text(name: str) -> str:
    return resources.files("rempart.policy").joinpath(name).read_text(encoding="utf-8")


SCHEMA_TEXT: Final = _resource_text("schema.cedarschema")
DEFAULT_POLICIES: Final = _resource_text("default.cedar")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class PolicySchema:
    """The Cedar schema, parsed once; ``digest`` is the SHA-256 of its text."""

    text: str
    digest: str
    handle: cedarpy.Schema

    @classmethod
    def parse(cls, text: str) -> PolicySchema:
        try:
            handle = cedarpy.Schema.from_str(text)
        except ValueError as exc:
            raise ConfigurationError(f"the Cedar schema does not parse: {exc}") from exc
        return cls(text, _digest(text), handle)

    @classmethod
    def default(cls) -> PolicySchema:
        """The schema shipped with Rempart (``rempart/policy/schema.cedarschema``)."""
        return _DEFAULT_SCHEMA


_DEFAULT_SCHEMA: Final = PolicySchema.parse(SCHEMA_TEXT)


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """What the engine needs to know about one policy: its ``@id``, effect and ``@reason``."""

    id: str
    effect: str
    reason: str


_LITERAL_OPERATORS: Final = frozenset({"==", "!=", "in"})
_LEAVES: Final = frozenset({"Var", "Slot", "Unknown"})


def _holds_entity(value: Any) -> bool:
    if isinstance(value, dict):
        return "__entity" in value or any(_holds_entity(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_entity(v) for v in value)
    return False


def _check_literals(node: Any, literal_ok: bool, policy: str) -> None:
    """Refuse entity literals anywhere but as operands of ==, != and in (or in a set there)."""
    if isinstance(node, list):
        for item in node:
            _check_literals(item, literal_ok, policy)
        return
    if not isinstance(node, dict):
        return
    if len(node) != 1:  # a structural object such as {"left": …, "right": …}
        for value in node.values():
            _check_literals(value, literal_ok, policy)
        return
    ((op, value),) = node.items()
    if op == "Value":
        if _holds_entity(value) and not literal_ok:
            raise InvalidInput(
                f"policy set refused: policy {policy!r} uses an entity literal outside ==, != or "
                "in; decisions may depend only on the request's own principal, resource and context"
            )
        return
    if op in _LEAVES:
        return
    if op in _LITERAL_OPERATORS:
        _check_literals(value, True, policy)
    elif op == "Set":
        _check_literals(value, literal_ok, policy)
    else:
        _check_literals(value, False, policy)


def _describe(error: cedarpy.ValidationError, text: str) -> str:
    """Cedar's message, led by the @id of the policy it is about when that can be read."""
    if not error.policy_id:
        return error.error
    try:
        est = json.loads(cedarpy.policies_to_json_str(text))
        ident = est["staticPolicies"][error.policy_id]["annotations"]["id"]
    except (ValueError, KeyError, TypeError):
        return str(error)
    return f"[{ident}] {error.error}"


def _annotations(text: str) -> dict[str, PolicyInfo]:
    try:
        est = json.loads(cedarpy.policies_to_json_str(text))
    except ValueError as exc:
        raise InvalidInput(f"policy set refused: {exc}") from exc
    if est.get("templates"):
        raise InvalidInput("policy set refused: templates are not supported; put grant facts in context")
    infos: dict[str, PolicyInfo] = {}
    seen: dict[str, str] = {}
    for cedar_id, policy in est.get("staticPolicies", {}).items():
        notes: Mapping[str, Any] = policy.get("annotations") or {}
        ident = notes.get("id")
        if not isinstance(ident, str) or not ident:
            raise InvalidInput(
                f"policy set refused: policy {cedar_id} has no @id(\"…\") annotation; every "
                "policy needs one, it is reported as the deciding policy"
            )
        if ident in seen:
            raise InvalidInput(f"policy set refused: @id {ident!r} is used twice")
        seen[ident] = cedar_id
        effect = policy.get("effect")
        reason = notes.get("reason") or ""
        if effect == "forbid" and not reason:
            raise InvalidInput(
                f"policy set refused: forbid policy {ident!r} has no @reason(\"…\"); a deny "
                "must tell the caller why"
            )
        for condition in policy.get("conditions", []):
            _check_literals(condition.get("body"), False, ident)
        infos[cedar_id] = PolicyInfo(ident, str(effect), str(reason))
    if not infos:
        raise InvalidInput("policy set refused: it holds no policy (everything would be denied)")
    return infos


@dataclass(frozen=True, slots=True)
class CompiledPolicies:
    """A validated policy set, parsed once, with its ``@id``/``@reason`` table.

    ``version`` is the hex SHA-256 of the policy text; ``key`` adds the schema
    digest and is what decisions are memoized under.
    """

    text: str
    version: str
    schema: PolicySchema
    handle: cedarpy.PolicySet
    infos: Mapping[str, PolicyInfo]

    @property
    def key(self) -> str:
        return f"{self.version}:{self.schema.digest}"

    @classmethod
    def compile(cls, text: str, schema: PolicySchema) -> CompiledPolicies:
        """Parse and validate ``text`` against ``schema``; raise InvalidInput with Cedar's message."""
        if not isinstance(text, str):
            raise InvalidInput(f"a policy set is text, got {type(text).__name__}")
        if len(text) > MAX_POLICY_TEXT:
            raise InvalidInput(
                f"policy set refused: {len(text)} characters, more than the {MAX_POLICY_TEXT} allowed"
            )
        result = cedarpy.validate_policies(text, schema.handle)
        if not result.validation_passed:
            messages = [_describe(error, text) for error in result.errors] or ["validation failed"]
            raise InvalidInput(
                "policy set refused by Cedar: " + "; ".join(messages), errors=messages
            )
        infos = _annotations(text)
        try:
            handle = cedarpy.PolicySet.from_str(text)
        except ValueError as exc:  # pragma: no cover - validation parsed it already
            raise InvalidInput(f"policy set refused by Cedar: {exc}") from exc
        if len(handle) != len(infos):  # pragma: no cover - same parser, same count
            raise InvalidInput("policy set refused: Cedar and its JSON form disagree on the policies")
        return cls(text, _digest(text), schema, handle, dict(infos))

    def info(self, cedar_id: str) -> PolicyInfo:
        """The annotations of Cedar's positional policy id (``policy0``…)."""
        found = self.infos.get(cedar_id)
        if found is None:
            return PolicyInfo(cedar_id, "unknown", "")
        return found

    def position(self, cedar_id: str) -> int:
        """Where a policy stands in the text (unknown ids sort last)."""
        for index, known in enumerate(self.infos):
            if known == cedar_id:
                return index
        return len(self.infos)

    def ids(self) -> Iterator[str]:
        """The ``@id`` of every policy, in the order of the text."""
        return (info.id for info in self.infos.values())
