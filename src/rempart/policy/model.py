"""The facts a policy decision is made of, and the decision itself: frozen, type-checked values.

A :class:`DecisionRequest` holds *everything* Cedar sees when it evaluates a
request: the principal's attributes, the action, the resource's attributes and
the context (purpose and grant facts, computed in Python from the grant's
state and the time). Nothing else goes into an evaluation, so two equal
requests evaluated against the same policy set always get the same answer.
That is what makes memoization exact: the request value *is* the cache key.

Each value checks the type of every field when built (a ``bool`` is never an
``int``, a set is a ``frozenset`` of ``str``), so equality of two values is
equality of the Cedar inputs they encode, and a precomputed hash keeps
dictionary look-ups cheap.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final

from rempart.errors import InvalidInput

__all__ = [
    "ACTIONS",
    "GRANT_STATUSES",
    "NO_GRANT",
    "RECORD_ACTIONS",
    "REQUEST_ACTIONS",
    "AccessRequestResource",
    "Decision",
    "DecisionRequest",
    "FieldResource",
    "GrantContext",
    "LogResource",
    "PrincipalEntity",
    "RecordContext",
]

NAMESPACE: Final = "Rempart"

RECORD_ACTIONS: Final = frozenset({"read", "write", "erase", "egress", "relocate"})
"""Actions on record fields: resource :class:`FieldResource`, context :class:`RecordContext`."""

REQUEST_ACTIONS: Final = frozenset({"approve", "request_access", "break_glass"})
"""Actions on access requests: resource :class:`AccessRequestResource`, no context."""

ACTIONS: Final = RECORD_ACTIONS | REQUEST_ACTIONS | {"read_log"}

GRANT_STATUSES: Final = frozenset(
    {
        "none",
        "active",
        "not_started",
        "awaiting_first_use",
        "pending",
        "expired",
        "revoked",
        "denied",
        "withdrawn",
        "lapsed",
    }
)

_CATEGORIES: Final = frozenset({"protected", "excepted", "public"})
_MAX_TEXT = 256


def _text(value: object, what: str, *, empty: bool = False) -> str:
    if type(value) is not str:
        raise InvalidInput(f"{what} must be a string, got {type(value).__name__}")
    if not value and not empty:
        raise InvalidInput(f"{what} must not be empty")
    if len(value) > _MAX_TEXT:
        raise InvalidInput(f"{what} is longer than {_MAX_TEXT} characters")
    return value


def _strings(value: object, what: str) -> frozenset[str]:
    if type(value) is not frozenset:
        raise InvalidInput(f"{what} must be a frozenset of strings, got {type(value).__name__}")
    for item in value:
        _text(item, f"an element of {what}")
    return value


def _flag(value: object, what: str) -> bool:
    if type(value) is not bool:
        raise InvalidInput(f"{what} must be a bool, got {type(value).__name__}")
    return value


def _uid(kind: str, ident: str) -> dict[str, str]:
    return {"type": f"{NAMESPACE}::{kind}", "id": ident}


@dataclass(frozen=True, slots=True)
class PrincipalEntity:
    """A ``Rempart::Principal``: who asks, with the attributes policies look at."""

    id: str
    org: str
    location: str
    screening: str
    roles: frozenset[str]
    purposes: frozenset[str] = frozenset()
    _hash: int = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _text(self.id, "principal id")
        _text(self.org, "principal org")
        _text(self.location, "principal location", empty=True)
        _text(self.screening, "principal screening")
        _strings(self.roles, "principal roles")
        _strings(self.purposes, "principal purposes")
        object.__setattr__(
            self,
            "_hash",
            hash((self.id, self.org, self.location, self.screening, self.roles, self.purposes)),
        )

    def __hash__(self) -> int:
        return self._hash

    def uid(self) -> dict[str, str]:
        return _uid("Principal", self.id)

    def entity(self) -> dict[str, Any]:
        return {
            "uid": self.uid(),
            "attrs": {
                "id": self.id,
                "org": self.org,
                "location": self.location,
                "screening": self.screening,
                "roles": sorted(self.roles),
                "purposes": sorted(self.purposes),
            },
            "parents": [],
        }


@dataclass(frozen=True, slots=True)
class FieldResource:
    """A ``Rempart::Field``: one field of a record in one region, with its catalog category."""

    region: str
    collection: str
    field: str
    category: str
    purposes: frozenset[str] = frozenset()
    _hash: int = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _text(self.region, "field region")
        _text(self.collection, "field collection")
        _text(self.field, "field name")
        _text(self.category, "field category")
        if self.category not in _CATEGORIES:
            raise InvalidInput(
                f"field category {self.category!r} is not one of {', '.join(sorted(_CATEGORIES))}"
            )
        _strings(self.purposes, "field purposes")
        object.__setattr__(
            self,
            "_hash",
            hash((self.region, self.collection, self.field, self.category, self.purposes)),
        )

    def __hash__(self) -> int:
        return self._hash

    @property
    def path(self) -> str:
        """``collection.field``: how a grant's scope names a field."""
        return f"{self.collection}.{self.field}"

    def uid(self) -> dict[str, str]:
        return _uid("Field", f"{self.region}/{self.collection}/{self.field}")

    def entity(self) -> dict[str, Any]:
        return {
            "uid": self.uid(),
            "attrs": {
                "region": self.region,
                "collection": self.collection,
                "field": self.field,
                "path": self.path,
                "category": self.category,
                "purposes": sorted(self.purposes),
            },
            "parents": [],
        }


@dataclass(frozen=True, slots=True)
class AccessRequestResource:
    """A ``Rempart::AccessRequest``: the resource of approving, requesting and break-glass."""

    id: str
    requester: str
    requester_org: str

    def __post_init__(self) -> None:
        _text(self.id, "access request id")
        _text(self.requester, "access request requester")
        _text(self.requester_org, "access request requester org")

    def uid(self) -> dict[str, str]:
        return _uid("AccessRequest", self.id)

    def entity(self) -> dict[str, Any]:
        return {
            "uid": self.uid(),
            "attrs": {"id": self.id, "requester": self.requester, "requester_org": self.requester_org},
            "parents": [],
        }


@dataclass(frozen=True, slots=True)
class LogResource:
    """A ``Rempart::Log``: the transparency log, as the resource of ``read_log``."""

    name: str

    def __post_init__(self) -> None:
        _text(self.name, "log name")

    def uid(self) -> dict[str, str]:
        return _uid("Log", self.name)

    def entity(self) -> dict[str, Any]:
        return {"uid": self.uid(), "attrs": {"name": self.name}, "parents": []}


@dataclass(frozen=True, slots=True)
class GrantContext:
    """The grant facts of a record access, computed in Python before the decision.

    ``active`` is derived from ``status`` (it is ``status == "active"``), so the
    two can never disagree. Use :data:`NO_GRANT` when no grant applies.
    """

    present: bool
    status: str
    id: str = ""
    grantee: str = ""
    regions: frozenset[str] = frozenset()
    collections: frozenset[str] = frozenset()
    fields: frozenset[str] = frozenset()
    covers_subject: bool = False
    purpose: str = ""
    break_glass: bool = False
    _hash: int = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _flag(self.present, "grant present")
        _text(self.status, "grant status")
        if self.status not in GRANT_STATUSES:
            raise InvalidInput(
                f"grant status {self.status!r} is not one of {', '.join(sorted(GRANT_STATUSES))}"
            )
        if self.present == (self.status == "none"):
            raise InvalidInput("grant status is 'none' exactly when no grant is present")
        _text(self.id, "grant id", empty=not self.present)
        _text(self.grantee, "grant grantee", empty=not self.present)
        _strings(self.regions, "grant regions")
        _strings(self.collections, "grant collections")
        _strings(self.fields, "grant fields")
        _flag(self.covers_subject, "grant covers_subject")
        _text(self.purpose, "grant purpose", empty=True)
        _flag(self.break_glass, "grant break_glass")
        object.__setattr__(
            self,
            "_hash",
            hash(
                (
                    self.present,
                    self.status,
                    self.id,
                    self.grantee,
                    self.regions,
                    self.collections,
                    self.fields,
                    self.covers_subject,
                    self.purpose,
                    self.break_glass,
                )
            ),
        )

    def __hash__(self) -> int:
        return self._hash

    @property
    def active(self) -> bool:
        return self.status == "active"

    def cedar(self) -> dict[str, Any]:
        return {
            "present": self.present,
            "active": self.active,
            "status": self.status,
            "id": self.id,
            "grantee": self.grantee,
            "regions": sorted(self.regions),
            "collections": sorted(self.collections),
            "fields": sorted(self.fields),
            "covers_subject": self.covers_subject,
            "purpose": self.purpose,
            "break_glass": self.break_glass,
        }


NO_GRANT: Final = GrantContext(present=False, status="none")


@dataclass(frozen=True, slots=True)
class RecordContext:
    """The context of a record action: why (purpose code) and under which grant."""

    purpose: str
    grant: GrantContext = NO_GRANT

    def __post_init__(self) -> None:
        _text(self.purpose, "purpose", empty=True)
        if type(self.grant) is not GrantContext:
            raise InvalidInput(f"grant must be a GrantContext, got {type(self.grant).__name__}")

    def cedar(self) -> dict[str, Any]:
        return {"purpose": self.purpose, "grant": self.grant.cedar()}


Resource = FieldResource | AccessRequestResource | LogResource


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    """One question for the policy engine: may ``principal`` do ``action`` on ``resource``?

    Record actions (read, write, erase, egress, relocate) take a
    :class:`FieldResource` and a :class:`RecordContext`; approve,
    request_access and break_glass take an :class:`AccessRequestResource`;
    read_log takes a :class:`LogResource`; those have no context.
    """

    principal: PrincipalEntity
    action: str
    resource: Resource
    context: RecordContext | None = None
    _hash: int = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.principal) is not PrincipalEntity:
            raise InvalidInput("principal must be a PrincipalEntity")
        if self.action not in ACTIONS:
            raise InvalidInput(f"action {self.action!r} is not one of {', '.join(sorted(ACTIONS))}")
        if self.action in RECORD_ACTIONS:
            if type(self.resource) is not FieldResource or type(self.context) is not RecordContext:
                raise InvalidInput(
                    f"action {self.action!r} needs a FieldResource and a RecordContext"
                )
        else:
            expected = AccessRequestResource if self.action in REQUEST_ACTIONS else LogResource
            if type(self.resource) is not expected:
                raise InvalidInput(f"action {self.action!r} needs a {expected.__name__}")
            if self.context is not None:
                raise InvalidInput(f"action {self.action!r} takes no context")
        object.__setattr__(
            self,
            "_hash",
            hash((self.principal, self.action, type(self.resource), self.resource, self.context)),
        )

    def __hash__(self) -> int:
        return self._hash

    def cedar(self) -> dict[str, Any]:
        """The request as cedarpy takes it (context as a dict)."""
        return {
            "principal": self.principal.uid(),
            "action": _uid("Action", self.action),
            "resource": self.resource.uid(),
            "context": {} if self.context is None else self.context.cedar(),
        }

    def describe(self) -> str:
        uid = self.resource.uid()["id"]
        purpose = f" for purpose {self.context.purpose!r}" if self.context else ""
        return f"{self.action} on {uid} by {self.principal.id}{purpose}"


@dataclass(frozen=True, slots=True)
class Decision:
    """Allow or deny, the ``@id`` of the policies that decided, and why in words.

    ``reasons`` is what a caller is shown on a deny: the ``@reason`` of each
    forbid that matched, or a sentence saying no policy permits the request,
    followed by any evaluation error. ``policy_version`` names the policy set
    (its content hash) that decided.
    """

    allowed: bool
    policies: tuple[str, ...]
    reasons: tuple[str, ...]
    errors: tuple[str, ...]
    policy_version: str

    def to_json(self) -> dict[str, Any]:
        """The decision as it goes into a log entry."""
        return {
            "allowed": self.allowed,
            "policies": list(self.policies),
            "reasons": list(self.reasons),
            "errors": list(self.errors),
            "policy_version": self.policy_version,
        }
