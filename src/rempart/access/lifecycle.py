"""The access-request state machine, as pure functions: a record and the time in, a new record and events out.

States::

    pending ─► approved ─► active ─► expired
       │          │          └─────► revoked
       │          ├────────────────► revoked / expired (first-use grant never used)
       ├─► denied   (a counted custodian denial)
       ├─► withdrawn (by the requester)
       └─► lapsed   (not decided by decide_by)

Break-glass requests open straight into ``active``. Each function checks that
the transition is allowed at ``now`` (after the time-driven ones, see
:func:`advance`) and returns a :class:`Transition` whose events describe every
state change; the service records those events in the log before it commits
the new record, so no transition exists that the log does not show.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from rempart.access.model import (
    AccessRequest,
    Approval,
    ApprovalDecision,
    ClockMode,
    RequestRecord,
    RequestState,
    Review,
    ReviewVerdict,
)
from rempart.access.rules import AccessRules
from rempart.clock import format_time
from rempart.errors import Conflict, InvalidInput
from rempart.events import Event

__all__ = [
    "Transition",
    "add_approval",
    "add_review",
    "advance",
    "begin_use",
    "open_break_glass",
    "revoke",
    "submit",
    "withdraw",
]


@dataclass(frozen=True, slots=True)
class Transition:
    """The new record and the events that say how it got there (possibly none)."""

    record: RequestRecord
    events: tuple[Event, ...]

    @property
    def changed(self) -> bool:
        return bool(self.events)


def _event(kind: str, now: datetime, record: RequestRecord, **body: Any) -> Event:
    return Event(kind, now, {"request_id": record.id, **body})


def _check_times(request: AccessRequest, now: datetime) -> None:
    if request.created_at != now:
        raise InvalidInput("a request is created at the time it is submitted or opened")


def submit(request: AccessRequest, *, rules: AccessRules, now: datetime) -> Transition:
    """A new request, pending custodian approval until ``now + decision_timeout``."""
    if request.break_glass:
        raise InvalidInput("a break-glass request is opened with open_break_glass, not submitted")
    _check_times(request, now)
    _check_scope_caps(request, rules)
    if request.duration > rules.max_duration:
        raise InvalidInput(
            f"duration {int(request.duration.total_seconds())} s is longer than the "
            f"{int(rules.max_duration.total_seconds())} s allowed"
        )
    if request.start_at is not None:
        if request.clock_mode is ClockMode.AT_FIRST_USE:
            raise InvalidInput("a first-use grant starts at its first use: leave start_at empty")
        if request.start_at < request.created_at:
            raise InvalidInput("start_at is in the past")
        if request.start_at - request.created_at > rules.max_start_delay:
            raise InvalidInput(
                f"start_at is more than {int(rules.max_start_delay.total_seconds())} s ahead"
            )
    required = rules.required_approvals(request.scope)
    record = RequestRecord(
        request=request,
        state=RequestState.PENDING,
        required_approvals=required,
        decide_by=request.created_at + rules.decision_timeout,
    )
    return Transition(
        record,
        (
            _event(
                "access.request.submitted",
                now,
                record,
                request=request.canonical(),
                request_digest=request.digest(),
                required_approvals=required,
                decide_by=format_time(record.decide_by) if record.decide_by else None,
            ),
        ),
    )


def _check_scope_caps(request: AccessRequest, rules: AccessRules) -> None:
    scope = request.scope
    if len(scope.subjects) > rules.max_subjects:
        raise InvalidInput(
            f"a request lists at most {rules.max_subjects} subjects; use a bulk count limit"
        )
    if scope.bulk_limit is not None and scope.bulk_limit > rules.max_bulk_limit:
        raise InvalidInput(f"bulk_limit is at most {rules.max_bulk_limit}")


def open_break_glass(request: AccessRequest, *, rules: AccessRules, now: datetime) -> Transition:
    """An emergency grant, active at once, capped, to be reviewed within the review window."""
    if not request.break_glass:
        raise InvalidInput("open_break_glass takes a request marked break_glass")
    _check_times(request, now)
    _check_scope_caps(request, rules)
    if request.duration > rules.break_glass_max_duration:
        raise InvalidInput(
            f"a break-glass grant lasts at most {int(rules.break_glass_max_duration.total_seconds())} s, "
            f"{int(request.duration.total_seconds())} s were asked"
        )
    if request.start_at is not None or request.clock_mode is not ClockMode.AT_APPROVAL:
        raise InvalidInput("a break-glass grant starts at once: no start_at, clock at approval")
    record = RequestRecord(
        request=request,
        state=RequestState.ACTIVE,
        required_approvals=0,
        decide_by=None,
        approved_at=now,
        starts_at=now,
        expires_at=now + request.duration,
        review_due=now + rules.break_glass_review_window,
    )
    return Transition(
        record,
        (
            _event(
                "access.break_glass.opened",
                now,
                record,
                request=request.canonical(),
                request_digest=request.digest(),
                starts_at=format_time(now),
                expires_at=format_time(now + request.duration),
                review_due=format_time(now + rules.break_glass_review_window),
            ),
        ),
    )


def advance(record: RequestRecord, *, now: datetime) -> Transition:
    """Record the transitions that time alone brings: lapse, start, expiry."""
    events: list[Event] = []
    current = record
    target = record.state_at(now)
    if target is current.state:
        return Transition(record, ())
    if current.state is RequestState.PENDING:  # only one way out by time
        current = replace(current, state=RequestState.LAPSED, ended_at=current.decide_by)
        events.append(
            _event("access.request.lapsed", now, current, decide_by=_fmt(record.decide_by))
        )
        return Transition(current, tuple(events))
    if current.state is RequestState.APPROVED and current.starts_at is not None:
        current = replace(current, state=RequestState.ACTIVE)
        events.append(
            _event(
                "access.grant.activated",
                now,
                current,
                trigger="start_time",
                starts_at=_fmt(current.starts_at),
                expires_at=_fmt(current.expires_at),
            )
        )
    if target is RequestState.EXPIRED:
        unused = current.starts_at is None
        ended = current.use_by if unused else current.expires_at
        current = replace(current, state=RequestState.EXPIRED, ended_at=ended)
        events.append(
            _event(
                "access.grant.expired",
                now,
                current,
                expired_at=_fmt(ended),
                unused=unused,
            )
        )
    return Transition(current, tuple(events))


def _fmt(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


def _require(record: RequestRecord, now: datetime, *states: RequestState, doing: str) -> None:
    state = record.state_at(now)
    if state is not record.state:
        raise Conflict(
            f"request {record.id} is {state.value} by now (recorded {record.state.value}); "
            "advance it first",
            request=record.id,
        )
    if state not in states:
        raise Conflict(f"cannot {doing} request {record.id}: it is {state.value}", request=record.id)


def add_approval(
    record: RequestRecord, approval: Approval, *, rules: AccessRules, now: datetime
) -> Transition:
    """Record a verified, signed decision; approve or deny once enough counted ones are in.

    ``approval.counted`` and ``reasons`` say whether the signer may decide
    (the service asks the roster and the policies); here a second decision by
    the same signer is also marked as not counting.
    """
    _require(record, now, RequestState.PENDING, doing="decide on")
    if any(a.approver == approval.approver and a.counted for a in record.approvals) and approval.counted:
        approval = replace(
            approval,
            counted=False,
            reasons=(*approval.reasons, f"{approval.approver} already signed a decision on this request"),
        )
    current = replace(record, approvals=(*record.approvals, approval))
    counted = current.counted_approvers
    events = [
        _event(
            "access.approval.recorded",
            now,
            current,
            request_digest=record.request.digest(),
            approver=approval.approver,
            decision=approval.decision.value,
            signed_at=format_time(approval.signed_at),
            counted=approval.counted,
            reasons=list(approval.reasons),
            policies=list(approval.policies),
            note=approval.note,
            approvals_counted=len(counted),
            approvals_required=record.required_approvals,
        )
    ]
    if approval.counted and approval.decision is ApprovalDecision.DENY:
        current = replace(
            current, state=RequestState.DENIED, ended_at=now, ended_by=approval.approver
        )
        events.append(_event("access.request.denied", now, current, by=approval.approver))
        return Transition(current, tuple(events))
    if len(counted) < record.required_approvals:
        return Transition(current, tuple(events))
    request = record.request
    if request.clock_mode is ClockMode.AT_FIRST_USE:
        current = replace(
            current,
            state=RequestState.APPROVED,
            approved_at=now,
            use_by=now + rules.first_use_window,
        )
    else:
        starts = max(now, request.start_at) if request.start_at is not None else now
        current = replace(
            current,
            state=RequestState.APPROVED,
            approved_at=now,
            starts_at=starts,
            expires_at=starts + request.duration,
        )
    events.append(
        _event(
            "access.request.approved",
            now,
            current,
            approvers=list(counted),
            clock_mode=request.clock_mode.value,
            starts_at=_fmt(current.starts_at),
            expires_at=_fmt(current.expires_at),
            use_by=_fmt(current.use_by),
        )
    )
    if current.starts_at is not None and current.starts_at <= now:
        current = replace(current, state=RequestState.ACTIVE)
        events.append(
            _event(
                "access.grant.activated",
                now,
                current,
                trigger="approval",
                starts_at=_fmt(current.starts_at),
                expires_at=_fmt(current.expires_at),
            )
        )
    return Transition(current, tuple(events))


def withdraw(record: RequestRecord, *, by: str, now: datetime) -> Transition:
    """The requester takes back a request nobody has decided yet."""
    _require(record, now, RequestState.PENDING, doing="withdraw")
    if by != record.request.requester:
        raise Conflict(f"only the requester ({record.request.requester}) withdraws request {record.id}")
    current = replace(record, state=RequestState.WITHDRAWN, ended_at=now, ended_by=by)
    return Transition(current, (_event("access.request.withdrawn", now, current, by=by),))


def revoke(record: RequestRecord, *, by: str, reason: str, now: datetime) -> Transition:
    """End an approved or active grant before its time (who may is the service's business)."""
    _require(record, now, RequestState.APPROVED, RequestState.ACTIVE, doing="revoke")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("a revocation says why")
    current = replace(
        record, state=RequestState.REVOKED, ended_at=now, ended_by=by, end_reason=reason
    )
    return Transition(current, (_event("access.grant.revoked", now, current, by=by, reason=reason),))


def begin_use(record: RequestRecord, *, now: datetime) -> Transition:
    """First use of a first-use grant: its clock starts now. Anything else: no change."""
    _require(record, now, RequestState.APPROVED, RequestState.ACTIVE, doing="use")
    if not record.awaiting_first_use:
        return Transition(record, ())
    current = replace(
        record,
        state=RequestState.ACTIVE,
        starts_at=now,
        expires_at=now + record.request.duration,
    )
    return Transition(
        current,
        (
            _event(
                "access.grant.activated",
                now,
                current,
                trigger="first_use",
                starts_at=_fmt(current.starts_at),
                expires_at=_fmt(current.expires_at),
            ),
        ),
    )


def add_review(record: RequestRecord, review: Review, *, now: datetime) -> Transition:
    """Record a signed break-glass review; a counted rejection revokes a grant still running."""
    if not record.request.break_glass:
        raise Conflict(f"request {record.id} is not a break-glass grant; there is nothing to review")
    if review.counted and record.reviewed:
        review = replace(
            review,
            counted=False,
            reasons=(*review.reasons, f"break-glass grant {record.id} was already reviewed"),
        )
    current = replace(record, reviews=(*record.reviews, review))
    late = record.review_due is not None and now > record.review_due
    events = [
        _event(
            "access.break_glass.reviewed",
            now,
            current,
            request_digest=record.request.digest(),
            reviewer=review.reviewer,
            verdict=review.verdict.value,
            signed_at=format_time(review.signed_at),
            counted=review.counted,
            reasons=list(review.reasons),
            policies=list(review.policies),
            note=review.note,
            late=late,
        )
    ]
    running = record.state in (RequestState.ACTIVE, RequestState.APPROVED)
    if (
        review.counted
        and review.verdict is ReviewVerdict.REJECTED
        and running
        and record.state_at(now) is record.state
    ):
        reason = "break-glass review rejected the emergency access"
        current = replace(
            current,
            state=RequestState.REVOKED,
            ended_at=now,
            ended_by=review.reviewer,
            end_reason=reason,
        )
        events.append(_event("access.grant.revoked", now, current, by=review.reviewer, reason=reason))
    return Transition(current, tuple(events))
