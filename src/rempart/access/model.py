"""Access requests, their lifecycle record, and the grants they become: frozen values.

An :class:`AccessRequest` is what a requester asks for and what approvers
sign: its :meth:`~AccessRequest.canonical` JSON is the exact byte string an
approval covers. A :class:`RequestRecord` is the request plus where it stands
(state, approvals, times); :mod:`rempart.access.lifecycle` moves it from state
to state. A :class:`Grant` is the view of an approved request that the
gateway uses to build decision facts.

Subjects are never held in clear: a scope lists their keyed commitments
(:func:`rempart.events.subject_commitment`, 64 hex digits), which the edge
computes with each subject's key from its home region.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from rempart.access.principals import check_principal_id
from rempart.clock import format_time, parse_time
from rempart.errors import InvalidInput
from rempart.events import canonical_json
from rempart.policy.model import NO_GRANT, GrantContext
from rempart.store.catalog import check_purpose
from rempart.store.records import REGION_NAME

__all__ = [
    "REQUEST_FORMAT",
    "AccessRequest",
    "Approval",
    "ApprovalDecision",
    "ClockMode",
    "Grant",
    "RequestRecord",
    "RequestState",
    "Review",
    "ReviewVerdict",
    "Scope",
    "check_request_id",
    "grant_context",
]

REQUEST_FORMAT: Final = 1

_REQUEST_ID = re.compile(r"req_[0-9a-f]{16}")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_COMMITMENT = re.compile(r"[0-9a-f]{64}")
_MAX_TICKET = 200
_MAX_COLLECTIONS = 64
_MAX_FIELDS = 512


class RequestState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    WITHDRAWN = "withdrawn"
    LAPSED = "lapsed"
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL: Final = frozenset(
    {
        RequestState.DENIED,
        RequestState.WITHDRAWN,
        RequestState.LAPSED,
        RequestState.EXPIRED,
        RequestState.REVOKED,
    }
)


class ClockMode(StrEnum):
    """When a grant's duration starts counting: at approval (or start time), or at first use."""

    AT_APPROVAL = "at_approval"
    AT_FIRST_USE = "at_first_use"


class ApprovalDecision(StrEnum):
    APPROVE = "approve"
    DENY = "deny"


class ReviewVerdict(StrEnum):
    UPHELD = "upheld"
    REJECTED = "rejected"


def check_request_id(value: object) -> str:
    if not isinstance(value, str) or not _REQUEST_ID.fullmatch(value):
        raise InvalidInput(f"access request id {value!r} is not req_ followed by 16 hex digits")
    return value


def _aware(value: object, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(f"{what} must be a timezone-aware time")
    return value


def _exact(value: datetime) -> datetime:
    """Round-trip through the log's time format, so a value equals its re-parsed self."""
    return parse_time(format_time(value))


@dataclass(frozen=True, slots=True)
class Scope:
    """What a request covers: one region, collections, ``collection.field`` names, and subjects.

    Subjects are either listed (``subjects``: keyed commitments, sorted and
    unique) or bounded by a count (``bulk_limit``): exactly one of the two.
    """

    region: str
    collections: frozenset[str]
    fields: frozenset[str]
    subjects: tuple[str, ...] = ()
    bulk_limit: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.region, str) or not REGION_NAME.fullmatch(self.region):
            raise InvalidInput(f"region {self.region!r} is not a region name (lowercase, a-z0-9_-)")
        if not isinstance(self.collections, frozenset) or not self.collections:
            raise InvalidInput("a scope names at least one collection")
        if len(self.collections) > _MAX_COLLECTIONS:
            raise InvalidInput(f"a scope names at most {_MAX_COLLECTIONS} collections")
        for collection in self.collections:
            if not isinstance(collection, str) or not _NAME.fullmatch(collection):
                raise InvalidInput(f"collection {collection!r} is not a lowercase name")
        if not isinstance(self.fields, frozenset) or not self.fields:
            raise InvalidInput("a scope names at least one field, as collection.field")
        if len(self.fields) > _MAX_FIELDS:
            raise InvalidInput(f"a scope names at most {_MAX_FIELDS} fields")
        used: set[str] = set()
        for path in self.fields:
            collection, dot, name = path.partition(".") if isinstance(path, str) else ("", "", "")
            if not dot or not _NAME.fullmatch(collection) or not _NAME.fullmatch(name):
                raise InvalidInput(f"field {path!r} is not collection.field")
            if collection not in self.collections:
                raise InvalidInput(
                    f"field {path!r} is in collection {collection!r}, which the scope does not name"
                )
            used.add(collection)
        unused = self.collections - used
        if unused:
            raise InvalidInput(f"collection {sorted(unused)[0]!r} has no field in the scope")
        if not isinstance(self.subjects, tuple):
            raise InvalidInput("subjects must be a tuple of subject commitments")
        for subject in self.subjects:
            if not isinstance(subject, str) or not _COMMITMENT.fullmatch(subject):
                raise InvalidInput(
                    f"subject {subject!r} is not a subject commitment (64 lowercase hex digits); "
                    "subjects are named by their keyed commitment, never in clear"
                )
        if list(self.subjects) != sorted(set(self.subjects)):
            object.__setattr__(self, "subjects", tuple(sorted(set(self.subjects))))
        if self.bulk_limit is not None and (type(self.bulk_limit) is not int or self.bulk_limit < 1):
            raise InvalidInput("bulk_limit must be a whole number of at least 1")
        if bool(self.subjects) == (self.bulk_limit is not None):
            raise InvalidInput("a scope lists subjects or gives a bulk count limit, exactly one of the two")

    @property
    def is_bulk(self) -> bool:
        """More than one subject: a count limit, or several listed subjects."""
        return self.bulk_limit is not None or len(self.subjects) > 1

    def canonical(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "collections": sorted(self.collections),
            "fields": sorted(self.fields),
            "subjects": list(self.subjects),
            "bulk_limit": self.bulk_limit,
        }

    @classmethod
    def from_canonical(cls, data: Any) -> Scope:
        if not isinstance(data, dict):
            raise InvalidInput("scope must be a JSON object")
        try:
            return cls(
                data["region"],
                frozenset(_strings(data["collections"], "collections")),
                frozenset(_strings(data["fields"], "fields")),
                tuple(_strings(data["subjects"], "subjects")),
                data["bulk_limit"],
            )
        except KeyError as exc:
            raise InvalidInput(f"scope lacks {exc.args[0]!r}") from exc


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{what} must be a list of strings")
    return value


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """What was asked: who, which scope, why (purpose and ticket), for how long, from when.

    Times are kept to the microsecond in UTC, as the log writes them, so the
    canonical form re-parses to an equal value.
    """

    id: str
    requester: str
    requester_org: str
    scope: Scope
    purpose: str
    ticket: str
    duration: timedelta
    created_at: datetime
    start_at: datetime | None = None
    clock_mode: ClockMode = ClockMode.AT_APPROVAL
    break_glass: bool = False

    def __post_init__(self) -> None:
        check_request_id(self.id)
        check_principal_id(self.requester)
        if not isinstance(self.requester_org, str) or not self.requester_org:
            raise InvalidInput("requester_org must be the requester's org")
        if not isinstance(self.scope, Scope):
            raise InvalidInput("scope must be a Scope")
        check_purpose(self.purpose)
        if not isinstance(self.ticket, str) or not self.ticket.strip():
            raise InvalidInput("a request names its ticket reference (e.g. SUP-1234)")
        if len(self.ticket) > _MAX_TICKET or any(ord(c) < 0x20 or ord(c) == 0x7F for c in self.ticket):
            raise InvalidInput(
                f"ticket reference is at most {_MAX_TICKET} characters without control characters"
            )
        if not isinstance(self.duration, timedelta) or self.duration < timedelta(seconds=1):
            raise InvalidInput("duration must be at least one second")
        if self.duration % timedelta(seconds=1):
            raise InvalidInput("duration is a whole number of seconds")
        object.__setattr__(self, "created_at", _exact(_aware(self.created_at, "created_at")))
        if self.start_at is not None:
            object.__setattr__(self, "start_at", _exact(_aware(self.start_at, "start_at")))
        if not isinstance(self.clock_mode, ClockMode):
            raise InvalidInput(f"clock_mode must be one of: {', '.join(m.value for m in ClockMode)}")
        if type(self.break_glass) is not bool:
            raise InvalidInput("break_glass must be true or false")

    def canonical(self) -> dict[str, Any]:
        """The request as approvers sign it (see docs/approvers.md)."""
        return {
            "format": REQUEST_FORMAT,
            "id": self.id,
            "requester": self.requester,
            "requester_org": self.requester_org,
            "scope": self.scope.canonical(),
            "purpose": self.purpose,
            "ticket": self.ticket,
            "duration_seconds": int(self.duration.total_seconds()),
            "created_at": format_time(self.created_at),
            "start_at": None if self.start_at is None else format_time(self.start_at),
            "clock_mode": self.clock_mode.value,
            "break_glass": self.break_glass,
        }

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.canonical())

    def digest(self) -> str:
        """Hex SHA-256 of the canonical request: what approvals and log entries point at."""
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    @classmethod
    def from_canonical(cls, data: Any) -> AccessRequest:
        """Rebuild (and validate) a request from its canonical JSON object."""
        if not isinstance(data, dict):
            raise InvalidInput("request must be a JSON object")
        if data.get("format") != REQUEST_FORMAT:
            raise InvalidInput(f"request format is {data.get('format')!r}, expected {REQUEST_FORMAT}")
        try:
            seconds = data["duration_seconds"]
            if type(seconds) is not int:
                raise InvalidInput("duration_seconds must be a whole number")
            start = data["start_at"]
            mode = data["clock_mode"]
            if mode not in {m.value for m in ClockMode}:
                raise InvalidInput(f"clock_mode {mode!r} is not one of at_approval, at_first_use")
            request = cls(
                id=data["id"],
                requester=data["requester"],
                requester_org=data["requester_org"],
                scope=Scope.from_canonical(data["scope"]),
                purpose=data["purpose"],
                ticket=data["ticket"],
                duration=timedelta(seconds=seconds),
                created_at=_parse(data["created_at"], "created_at"),
                start_at=None if start is None else _parse(start, "start_at"),
                clock_mode=ClockMode(mode),
                break_glass=data["break_glass"],
            )
        except KeyError as exc:
            raise InvalidInput(f"request lacks {exc.args[0]!r}") from exc
        if request.canonical() != data:
            raise InvalidInput("request is not in canonical form (unknown keys or non-canonical values)")
        return request


def _parse(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be an RFC 3339 time string")
    try:
        return parse_time(value)
    except ValueError as exc:
        raise InvalidInput(f"{what} {value!r} is not an RFC 3339 time: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Approval:
    """A custodian approver's signed decision on a request, and whether it counts (and why not)."""

    approver: str
    decision: ApprovalDecision
    signed_at: datetime
    recorded_at: datetime
    note: str
    counted: bool
    reasons: tuple[str, ...] = ()
    policies: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "approver": self.approver,
            "decision": self.decision.value,
            "signed_at": format_time(self.signed_at),
            "recorded_at": format_time(self.recorded_at),
            "note": self.note,
            "counted": self.counted,
            "reasons": list(self.reasons),
            "policies": list(self.policies),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Approval:
        return cls(
            data["approver"],
            ApprovalDecision(data["decision"]),
            parse_time(data["signed_at"]),
            parse_time(data["recorded_at"]),
            data["note"],
            bool(data["counted"]),
            tuple(data["reasons"]),
            tuple(data["policies"]),
        )


@dataclass(frozen=True, slots=True)
class Review:
    """A custodian approver's signed review of a break-glass grant."""

    reviewer: str
    verdict: ReviewVerdict
    signed_at: datetime
    recorded_at: datetime
    note: str
    counted: bool
    reasons: tuple[str, ...] = ()
    policies: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "reviewer": self.reviewer,
            "verdict": self.verdict.value,
            "signed_at": format_time(self.signed_at),
            "recorded_at": format_time(self.recorded_at),
            "note": self.note,
            "counted": self.counted,
            "reasons": list(self.reasons),
            "policies": list(self.policies),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Review:
        return cls(
            data["reviewer"],
            ReviewVerdict(data["verdict"]),
            parse_time(data["signed_at"]),
            parse_time(data["recorded_at"]),
            data["note"],
            bool(data["counted"]),
            tuple(data["reasons"]),
            tuple(data["policies"]),
        )


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


def _opt_time(value: Any) -> datetime | None:
    return None if value is None else parse_time(value)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """A request and where it stands. ``version`` counts stored transitions (optimistic locking).

    ``state`` is the state last recorded; :meth:`state_at` is the state the
    times imply now (a pending request past ``decide_by`` has lapsed even
    before the sweep records it), and decisions always use the latter.
    """

    request: AccessRequest
    state: RequestState
    required_approvals: int
    decide_by: datetime | None
    approvals: tuple[Approval, ...] = ()
    approved_at: datetime | None = None
    starts_at: datetime | None = None
    expires_at: datetime | None = None
    use_by: datetime | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None
    end_reason: str | None = None
    review_due: datetime | None = None
    reviews: tuple[Review, ...] = ()
    version: int = 0

    @property
    def id(self) -> str:
        return self.request.id

    @property
    def counted_approvers(self) -> tuple[str, ...]:
        return tuple(
            a.approver for a in self.approvals if a.counted and a.decision is ApprovalDecision.APPROVE
        )

    @property
    def reviewed(self) -> bool:
        """A break-glass grant with a counted review."""
        return any(r.counted for r in self.reviews)

    @property
    def awaiting_first_use(self) -> bool:
        return self.state is RequestState.APPROVED and self.starts_at is None

    def state_at(self, now: datetime) -> RequestState:
        """The state the recorded state and the times imply at ``now``."""
        state = self.state
        if state is RequestState.PENDING:
            if self.decide_by is not None and now >= self.decide_by:
                return RequestState.LAPSED
            return state
        if state is RequestState.APPROVED:
            if self.starts_at is None:
                if self.use_by is not None and now >= self.use_by:
                    return RequestState.EXPIRED
                return state
            if self.expires_at is not None and now >= self.expires_at:
                return RequestState.EXPIRED
            return RequestState.ACTIVE if now >= self.starts_at else state
        if state is RequestState.ACTIVE and self.expires_at is not None and now >= self.expires_at:
            return RequestState.EXPIRED
        return state

    def grant(self, *, subjects: frozenset[str] | None = None) -> Grant:
        """The grant view of this record; ``subjects`` overrides the covered set (bulk look-ups)."""
        scope = self.request.scope
        return Grant(
            id=self.id,
            grantee=self.request.requester,
            region=scope.region,
            collections=scope.collections,
            fields=scope.fields,
            purpose=self.request.purpose,
            break_glass=self.request.break_glass,
            state=self.state,
            starts_at=self.starts_at,
            expires_at=self.expires_at,
            use_by=self.use_by,
            subjects=frozenset(scope.subjects) if subjects is None else subjects,
            bulk_limit=scope.bulk_limit,
            version=self.version,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "request": self.request.canonical(),
            "state": self.state.value,
            "required_approvals": self.required_approvals,
            "decide_by": _time(self.decide_by),
            "approvals": [a.to_json() for a in self.approvals],
            "approved_at": _time(self.approved_at),
            "starts_at": _time(self.starts_at),
            "expires_at": _time(self.expires_at),
            "use_by": _time(self.use_by),
            "ended_at": _time(self.ended_at),
            "ended_by": self.ended_by,
            "end_reason": self.end_reason,
            "review_due": _time(self.review_due),
            "reviews": [r.to_json() for r in self.reviews],
            "version": self.version,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RequestRecord:
        return cls(
            request=AccessRequest.from_canonical(data["request"]),
            state=RequestState(data["state"]),
            required_approvals=int(data["required_approvals"]),
            decide_by=_opt_time(data["decide_by"]),
            approvals=tuple(Approval.from_json(a) for a in data["approvals"]),
            approved_at=_opt_time(data["approved_at"]),
            starts_at=_opt_time(data["starts_at"]),
            expires_at=_opt_time(data["expires_at"]),
            use_by=_opt_time(data["use_by"]),
            ended_at=_opt_time(data["ended_at"]),
            ended_by=data["ended_by"],
            end_reason=data["end_reason"],
            review_due=_opt_time(data["review_due"]),
            reviews=tuple(Review.from_json(r) for r in data["reviews"]),
            version=int(data["version"]),
        )


@dataclass(frozen=True, slots=True)
class Grant:
    """An approved request as the gateway sees it, looked up for one subject.

    ``subjects`` is the set of subject commitments the grant covers *as far
    as this value knows*: every listed subject, or, for a bulk grant, the
    subject it was looked up for if that subject holds one of its slots.
    """

    id: str
    grantee: str
    region: str
    collections: frozenset[str]
    fields: frozenset[str]
    purpose: str
    break_glass: bool
    state: RequestState
    starts_at: datetime | None
    expires_at: datetime | None
    use_by: datetime | None
    subjects: frozenset[str]
    bulk_limit: int | None
    version: int

    def status_at(self, now: datetime) -> str:
        """The grant status a decision sees at ``now`` (the Cedar ``context.grant.status``)."""
        state = self.state
        if state is RequestState.APPROVED:
            if self.starts_at is None:
                if self.use_by is not None and now >= self.use_by:
                    return "expired"
                return "awaiting_first_use"
            if self.expires_at is not None and now >= self.expires_at:
                return "expired"
            return "active" if now >= self.starts_at else "not_started"
        if state is RequestState.ACTIVE:
            if self.expires_at is None or now >= self.expires_at:
                return "expired"
            if self.starts_at is not None and now < self.starts_at:
                return "not_started"
            return "active"
        return state.value

    def covers(self, subject: str) -> bool:
        return subject in self.subjects

    def context(self, subject: str, now: datetime) -> GrantContext:
        """The Cedar grant facts of an access to ``subject`` at ``now``."""
        return GrantContext(
            present=True,
            status=self.status_at(now),
            id=self.id,
            grantee=self.grantee,
            regions=frozenset({self.region}),
            collections=self.collections,
            fields=self.fields,
            covers_subject=subject in self.subjects,
            purpose=self.purpose,
            break_glass=self.break_glass,
        )


def grant_context(grant: Grant | None, subject: str, now: datetime) -> GrantContext:
    """The Cedar grant facts for an access under ``grant`` (or none) at ``now``."""
    return NO_GRANT if grant is None else grant.context(subject, now)
