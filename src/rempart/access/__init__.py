"""Principals, tokens, access requests, signed approvals, grants and break-glass.

The pure state machine lives in :mod:`rempart.access.lifecycle`; the
:class:`AccessService` persists its transitions (:class:`GrantStore`) and
records every one in the log. The gateway needs three things from here:
:meth:`TokenStore.authenticate`, :meth:`AccessService.grant_for_use` and
:func:`field_requests`.
"""

from rempart.access.approvals import (
    APPROVAL_HEADER,
    REVIEW_HEADER,
    ApproverRoster,
    PrincipalRoster,
    RosterEntry,
    SignedStatement,
    approval_text,
    read_statement,
    review_text,
    sign_approval,
    sign_review,
    verify_statement,
)
from rempart.access.facts import field_requests
from rempart.access.grants import GrantStore, StaleRecord
from rempart.access.lifecycle import Transition
from rempart.access.model import (
    AccessRequest,
    Approval,
    ApprovalDecision,
    ClockMode,
    Grant,
    RequestRecord,
    RequestState,
    Review,
    ReviewVerdict,
    Scope,
    grant_context,
)
from rempart.access.principals import ORGS, SCREENING_STATUSES, Principal, PrincipalStore
from rempart.access.rules import AccessRules
from rempart.access.service import AccessService, BreakGlassViolation
from rempart.access.tokens import IssuedToken, TokenInfo, TokenStore

__all__ = [
    "APPROVAL_HEADER",
    "ORGS",
    "REVIEW_HEADER",
    "SCREENING_STATUSES",
    "AccessRequest",
    "AccessRules",
    "AccessService",
    "Approval",
    "ApprovalDecision",
    "ApproverRoster",
    "BreakGlassViolation",
    "ClockMode",
    "Grant",
    "GrantStore",
    "IssuedToken",
    "Principal",
    "PrincipalRoster",
    "PrincipalStore",
    "RequestRecord",
    "RequestState",
    "Review",
    "ReviewVerdict",
    "RosterEntry",
    "Scope",
    "SignedStatement",
    "StaleRecord",
    "TokenInfo",
    "TokenStore",
    "Transition",
    "approval_text",
    "field_requests",
    "grant_context",
    "read_statement",
    "review_text",
    "sign_approval",
    "sign_review",
    "verify_statement",
]
