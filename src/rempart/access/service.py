"""The access service: requests, signed approvals, grants and break-glass, persisted and on the record.

Each operation reads the record, lets time do its part first
(:func:`~rempart.access.lifecycle.advance`), applies one pure transition, and
stores it with its events through :meth:`GrantStore.commit` (the log records
every event before the database commits; if it cannot, the operation is
refused with :class:`~rempart.errors.AuditUnavailable` and nothing changes).
Who may ask, approve and review is decided by the Cedar policies
(``request_access``, ``break_glass``, ``approve``) and, for approvers, by the
:class:`~rempart.access.approvals.ApproverRoster` as well.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from rempart.access import lifecycle
from rempart.access.approvals import (
    APPROVAL_HEADER,
    REVIEW_HEADER,
    ApproverRoster,
    RosterEntry,
    SignedStatement,
    read_statement,
    verify_statement,
)
from rempart.access.grants import GrantStore, StaleRecord
from rempart.access.lifecycle import Transition
from rempart.access.model import (
    AccessRequest,
    Approval,
    ApprovalDecision,
    ClockMode,
    Grant,
    RequestRecord,
    Review,
    ReviewVerdict,
    Scope,
)
from rempart.access.principals import Principal, PrincipalStore
from rempart.access.rules import AccessRules
from rempart.errors import InvalidInput, PermissionDenied, VerificationFailed
from rempart.policy.engine import PolicyEngine
from rempart.policy.model import AccessRequestResource, DecisionRequest

__all__ = ["AccessService", "BreakGlassViolation"]

_RETRIES = 5


@dataclass(frozen=True, slots=True)
class BreakGlassViolation:
    """A break-glass grant that no custodian approver reviewed within its review window."""

    request_id: str
    requester: str
    opened_at: datetime
    review_due: datetime
    overdue_by: timedelta


class AccessService:
    """Access requests from submission to expiry, for the API, the CLI and the gateway."""

    def __init__(
        self,
        *,
        principals: PrincipalStore,
        grants: GrantStore,
        engine: PolicyEngine,
        roster: ApproverRoster,
        rules: AccessRules,
    ) -> None:
        self.principals = principals
        self.grants = grants
        self.engine = engine
        self.roster = roster
        self.rules = rules

    # -- helpers ------------------------------------------------------------------

    def _enabled(self, principal_id: str) -> Principal:
        principal = self.principals.get(principal_id)
        if principal.disabled:
            raise PermissionDenied(f"principal {principal_id} is disabled")
        return principal

    def _allowed(self, principal: Principal, action: str, request: AccessRequest) -> None:
        resource = AccessRequestResource(request.id, request.requester, request.requester_org)
        decision = self.engine.decide_one(DecisionRequest(principal.entity(), action, resource))
        if not decision.allowed:
            raise PermissionDenied(
                f"{principal.id} may not {action.replace('_', ' ')}: " + "; ".join(decision.reasons),
                policies=list(decision.policies),
            )

    def _current(self, request_id: str, now: datetime) -> RequestRecord:
        """The record with every time-driven transition up to ``now`` recorded."""
        for _ in range(_RETRIES):
            record = self.grants.get(request_id)
            moved = lifecycle.advance(record, now=now)
            if not moved.changed:
                return record
            try:
                return self.grants.commit(moved, expected_version=record.version)
            except StaleRecord:
                continue
        raise StaleRecord(f"access request {request_id} keeps changing; try again", request=request_id)

    def _apply(
        self, request_id: str, now: datetime, step: Callable[[RequestRecord], Transition]
    ) -> RequestRecord:
        for _ in range(_RETRIES):
            record = self._current(request_id, now)
            try:
                return self.grants.commit(step(record), expected_version=record.version)
            except StaleRecord:
                continue
        raise StaleRecord(f"access request {request_id} keeps changing; try again", request=request_id)

    def _new_request(
        self,
        *,
        requester: Principal,
        scope: Scope,
        purpose: str,
        ticket: str,
        duration: timedelta,
        now: datetime,
        start_at: datetime | None,
        clock_mode: ClockMode,
        break_glass: bool,
    ) -> AccessRequest:
        if not isinstance(duration, timedelta):
            raise InvalidInput("duration must be a timedelta")
        return AccessRequest(
            id=f"req_{secrets.token_hex(8)}",
            requester=requester.id,
            requester_org=requester.org,
            scope=scope,
            purpose=purpose,
            ticket=ticket,
            duration=duration,
            created_at=now,
            start_at=start_at,
            clock_mode=clock_mode,
            break_glass=break_glass,
        )

    # -- requests -------------------------------------------------------------------

    def submit(
        self,
        *,
        requester: str,
        scope: Scope,
        purpose: str,
        ticket: str,
        duration: timedelta,
        now: datetime,
        start_at: datetime | None = None,
        clock_mode: ClockMode = ClockMode.AT_APPROVAL,
    ) -> RequestRecord:
        """File a request; it waits for custodian approvals until its decision deadline."""
        principal = self._enabled(requester)
        request = self._new_request(
            requester=principal,
            scope=scope,
            purpose=purpose,
            ticket=ticket,
            duration=duration,
            now=now,
            start_at=start_at,
            clock_mode=clock_mode,
            break_glass=False,
        )
        self._allowed(principal, "request_access", request)
        return self.grants.commit(
            lifecycle.submit(request, rules=self.rules, now=now), expected_version=None
        )

    def open_break_glass(
        self,
        *,
        requester: str,
        scope: Scope,
        purpose: str,
        ticket: str,
        duration: timedelta,
        now: datetime,
    ) -> RequestRecord:
        """Open an emergency grant at once; a custodian approver must review it within the window."""
        principal = self._enabled(requester)
        request = self._new_request(
            requester=principal,
            scope=scope,
            purpose=purpose,
            ticket=ticket,
            duration=duration,
            now=now,
            start_at=None,
            clock_mode=ClockMode.AT_APPROVAL,
            break_glass=True,
        )
        self._allowed(principal, "break_glass", request)
        return self.grants.commit(
            lifecycle.open_break_glass(request, rules=self.rules, now=now), expected_version=None
        )

    def get(self, request_id: str, *, now: datetime) -> RequestRecord:
        """The record as of ``now`` (time-driven transitions recorded first)."""
        return self._current(request_id, now)

    def withdraw(self, request_id: str, *, by: str, now: datetime) -> RequestRecord:
        return self._apply(request_id, now, lambda r: lifecycle.withdraw(r, by=by, now=now))

    def revoke(self, request_id: str, *, by: str, reason: str, now: datetime) -> RequestRecord:
        """End a grant early: its grantee may give it up; a custodian approver may take it away."""
        record = self.grants.get(request_id)
        if by != record.request.requester and self.roster.lookup(by) is None:
            raise PermissionDenied(
                f"{by} may not revoke {request_id}: only its grantee or a custodian approver may"
            )
        return self._apply(
            request_id, now, lambda r: lifecycle.revoke(r, by=by, reason=reason, now=now)
        )

    def advance(self, now: datetime) -> list[RequestRecord]:
        """The sweep: record every lapse, start and expiry due by ``now``; returns the changed records."""
        changed: list[RequestRecord] = []
        for record in self.grants.due(now):
            current = self._current(record.id, now)
            if current.version != record.version:
                changed.append(current)
        return changed

    # -- approvals and reviews ----------------------------------------------------------

    def _verified(
        self, note: bytes | str, header: str
    ) -> tuple[SignedStatement, RosterEntry | None, Principal | None]:
        claimed = read_statement(note, expect=header)
        entry = self.roster.lookup(claimed.signer)
        principal = self.principals.find(claimed.signer)
        verifier = entry.verifier if entry is not None else None
        if verifier is None and principal is not None:
            verifier = principal.verifier()
        if verifier is None:
            raise VerificationFailed(
                f"cannot verify the signature of {claimed.signer}: no key is registered for them"
            )
        return verify_statement(note, verifier, expect=header), entry, principal

    def _standing(
        self, record: RequestRecord, signer: str, entry: RosterEntry | None, principal: Principal | None
    ) -> tuple[bool, tuple[str, ...], tuple[str, ...]]:
        """Does ``signer``'s decision count? The roster and the ``approve`` policies say."""
        reasons: list[str] = []
        policies: tuple[str, ...] = ()
        if entry is None:
            reasons.append(f"{signer} is not a custodian approver in the roster")
        if principal is None:
            reasons.append(f"{signer} is not a known principal")
        elif principal.disabled:
            reasons.append(f"{signer} is disabled")
        else:
            request = record.request
            resource = AccessRequestResource(request.id, request.requester, request.requester_org)
            decision = self.engine.decide_one(DecisionRequest(principal.entity(), "approve", resource))
            policies = decision.policies
            if not decision.allowed:
                reasons.extend(decision.reasons)
        return not reasons, tuple(reasons), policies

    def _check_statement(self, statement: SignedStatement, record: RequestRecord, now: datetime) -> None:
        if statement.request.id != record.id:
            raise InvalidInput(f"the signed note is about {statement.request.id}, not {record.id}")
        if statement.request_digest != record.request.digest():
            raise InvalidInput(
                f"the signed request (digest {statement.request_digest}) is not request {record.id} "
                f"as submitted (digest {record.request.digest()})"
            )
        if statement.time > now + self.rules.clock_skew:
            raise InvalidInput("the signed time is in the future")
        if statement.time < record.request.created_at:
            raise InvalidInput("the signed time is before the request was made")

    def record_approval(self, request_id: str, note: bytes | str, *, now: datetime) -> RequestRecord:
        """Record an approver's signed decision (approve or deny); it may not count, and then says why.

        Raises VerificationFailed if the signature does not verify with the
        signer's registered key, InvalidInput if the note is not about this
        exact request, Conflict if the request is no longer pending.
        """
        statement, entry, principal = self._verified(note, APPROVAL_HEADER)

        def step(record: RequestRecord) -> Transition:
            self._check_statement(statement, record, now)
            counted, reasons, policies = self._standing(record, statement.signer, entry, principal)
            approval = Approval(
                approver=statement.signer,
                decision=ApprovalDecision(statement.verdict),
                signed_at=statement.time,
                recorded_at=now,
                note=statement.note,
                counted=counted,
                reasons=reasons,
                policies=policies,
            )
            return lifecycle.add_approval(record, approval, rules=self.rules, now=now)

        return self._apply(request_id, now, step)

    def record_review(self, request_id: str, note: bytes | str, *, now: datetime) -> RequestRecord:
        """Record a signed break-glass review; a counted rejection revokes the grant if still running."""
        statement, entry, principal = self._verified(note, REVIEW_HEADER)

        def step(record: RequestRecord) -> Transition:
            self._check_statement(statement, record, now)
            counted, reasons, policies = self._standing(record, statement.signer, entry, principal)
            review = Review(
                reviewer=statement.signer,
                verdict=ReviewVerdict(statement.verdict),
                signed_at=statement.time,
                recorded_at=now,
                note=statement.note,
                counted=counted,
                reasons=reasons,
                policies=policies,
            )
            return lifecycle.add_review(record, review, now=now)

        return self._apply(request_id, now, step)

    def overdue_break_glass_reviews(self, now: datetime) -> list[BreakGlassViolation]:
        """Break-glass grants whose review window passed with no counted review: violations."""
        return [
            BreakGlassViolation(
                request_id=record.id,
                requester=record.request.requester,
                opened_at=record.request.created_at,
                review_due=record.review_due,
                overdue_by=now - record.review_due,
            )
            for record in self.grants.overdue_reviews(now)
            if record.review_due is not None
        ]

    # -- the gateway's side ------------------------------------------------------------

    def grant_for_use(
        self,
        principal_id: str,
        region: str,
        collection: str,
        subject: str,
        purpose: str,
        now: datetime,
    ) -> Grant | None:
        """The grant for an access about to be decided, put to use.

        Looks the grant up (:meth:`GrantStore.find_active`); if it waits for
        its first use and covers the subject, its clock starts now (recorded:
        ``access.grant.activated``); if it is a bulk grant, the subject takes
        one of its slots if one is left. The result feeds
        :func:`~rempart.access.facts.field_requests`; the decision then says
        whether the grant allows the access.
        """
        grant = self.grants.find_active(principal_id, region, collection, subject, purpose, now)
        if grant is None:
            return None
        bulk = grant.bulk_limit is not None
        if grant.status_at(now) == "awaiting_first_use" and (bulk or grant.covers(subject)):
            record = self._apply(grant.id, now, lambda r: lifecycle.begin_use(r, now=now))
            grant = record.grant(subjects=grant.subjects if bulk else None)
        if (
            bulk
            and not grant.covers(subject)
            and grant.status_at(now) == "active"
            and self.grants.claim(grant.id, subject, now)
        ):
            grant = replace(grant, subjects=frozenset({subject}))
        return grant
