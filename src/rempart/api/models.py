"""The API's request and response bodies as pydantic models: validation in, OpenAPI schemas out.

Request models forbid unknown fields (a typo is an error, not a silent
no-op). Response models describe exactly what :class:`~rempart.api.operations.Operations`
returns, so ``/openapi.json`` is accurate and schemathesis can hold the
server to it.
"""

from __future__ import annotations

from typing import Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from rempart.access.principals import ORGS, SCREENING_STATUSES

__all__ = [
    "PRINCIPAL_ID",
    "SUBJECT_ID",
    "AccessRequestBody",
    "AccessRequestList",
    "AccessRequestView",
    "BreakGlassBody",
    "ConsistencyProofView",
    "DeletedView",
    "EgressBody",
    "EgressView",
    "ErasureBody",
    "ErasureView",
    "HealthView",
    "InclusionProofView",
    "IssuedTokenView",
    "NoteBody",
    "Org",
    "PrincipalBody",
    "PrincipalChanges",
    "PrincipalList",
    "PrincipalView",
    "Problem",
    "ReadyView",
    "RecordDeletedView",
    "RecordPageView",
    "RecordView",
    "RecordWriteBody",
    "ReleaseStatusView",
    "RevokeBody",
    "Screening",
    "SubjectBody",
    "SubjectCreatedView",
    "SubjectReportLine",
    "SubjectReportView",
    "SubjectTokenBody",
    "SubjectTokenView",
    "SubjectView",
    "TokenBody",
    "TokenList",
    "TokenView",
    "WitnessingView",
]

SUBJECT_ID: Final = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
PRINCIPAL_ID: Final = r"^[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$"

Org = Literal["operator", "parent", "custodian", "board", "auditor"]
Screening = Literal["cleared", "pending", "none"]
if get_args(Org) != ORGS or get_args(Screening) != SCREENING_STATUSES:  # pragma: no cover - any import
    raise RuntimeError("Org and Screening must list exactly access.principals' ORGS and SCREENING_STATUSES")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- problems -----------------------------------------------------------------------------


class Problem(BaseModel):
    """RFC 9457 problem details; ``code`` is Rempart's stable error code, other members are facts."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    instance: str
    code: str


# -- principals and tokens -----------------------------------------------------------------


class PrincipalBody(_In):
    id: str = Field(pattern=PRINCIPAL_ID, examples=["operator:alice"])
    display_name: str = Field(min_length=1, max_length=200)
    org: Org
    location: str = Field(pattern=r"^[A-Z]{2}$", examples=["US"])
    screening: Screening
    roles: list[str] = Field(default_factory=list, max_length=32)
    purposes: list[str] = Field(default_factory=list, max_length=8)
    vkey: str | None = Field(default=None, max_length=300)
    disabled: bool = False


class PrincipalChanges(_In):
    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    location: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    screening: Screening | None = None
    roles: list[str] | None = Field(default=None, max_length=32)
    purposes: list[str] | None = Field(default=None, max_length=8)
    vkey: str | None = Field(default=None, max_length=300)
    disabled: bool | None = None


class PrincipalView(_Out):
    id: str
    display_name: str
    org: str
    location: str
    screening: str
    roles: list[str]
    purposes: list[str]
    vkey: str | None
    disabled: bool


class PrincipalList(_Out):
    items: list[PrincipalView]


class DeletedView(_Out):
    deleted: str


class TokenBody(_In):
    label: str = Field(min_length=1, max_length=100)
    principal: str | None = Field(default=None, pattern=PRINCIPAL_ID, description="Default: yourself.")
    lifetime_seconds: int | None = Field(default=None, ge=60, le=90 * 86400)


class IssuedTokenView(_Out):
    id: str
    principal: str
    label: str
    expires_at: str
    token: str = Field(description="The bearer token: shown this once, stored only as a hash.")


class TokenView(_Out):
    id: str
    principal: str
    label: str
    created_at: str
    expires_at: str
    revoked_at: str | None
    status: Literal["active", "expired", "revoked"]


class TokenList(_Out):
    items: list[TokenView]


# -- subjects and records --------------------------------------------------------------------


class SubjectBody(_In):
    subject_id: str = Field(pattern=SUBJECT_ID)
    region: str = Field(min_length=1, max_length=32)


class SubjectCreatedView(_Out):
    subject_id: str
    region: str
    commitment: str
    created_at: str
    log_index: int


class SubjectView(_Out):
    subject_id: str
    region: str
    commitment: str


class SubjectTokenBody(_In):
    lifetime_seconds: int = Field(default=7 * 24 * 3600, ge=60, le=90 * 24 * 3600)


class SubjectTokenView(_Out):
    token: str
    token_id: str
    subject_id: str
    expires_at: str


class SubjectReportLine(_Out):
    index: int
    time: str
    kind: str
    type: str
    org: str | None
    principal: str | None
    purpose: str | None
    action: str | None
    decision: str | None
    collection: str | None
    fields_allowed: list[str]
    fields_denied: list[str]
    grant: str | None
    break_glass: bool | None
    reasons: list[str]
    summary: str
    leaf_hash: str
    proof_file: str
    proof: str


class SubjectReportView(_Out):
    commitment: str
    scanned: int
    accesses: int
    entries: list[SubjectReportLine]
    checkpoint: str
    tree_size: int


class ErasureBody(_In):
    reason: str = Field(min_length=1, max_length=500)
    purpose: Literal["data_subject_request", "legal_request"] = "data_subject_request"


class ErasureView(_Out):
    subject: str | None
    region: str
    destroyed: list[str]
    wrapped_keys: list[str]
    records: int
    collections: dict[str, int]
    reason: str
    erased_at: str
    log_index: int


class RecordWriteBody(_In):
    values: dict[str, Any] = Field(min_length=1)
    expected_version: int | None = Field(default=None, ge=0)
    region: str | None = Field(default=None, min_length=1, max_length=32)


class RecordView(_Out):
    subject_id: str
    collection: str
    record_id: str
    version: int
    updated_at: str
    fields: dict[str, Any]
    masked: list[str] = Field(description="Fields the decision did not allow: left out.")
    log_index: int = Field(description="The decision's entry in the transparency log.")


class RecordPageView(_Out):
    items: list[RecordView]
    next_cursor: str | None
    masked: list[str]
    log_index: int


class RecordDeletedView(_Out):
    subject_id: str
    collection: str
    record_id: str
    deleted: bool
    log_index: int


# -- access requests -------------------------------------------------------------------------


class BreakGlassBody(_In):
    region: str = Field(min_length=1, max_length=32)
    fields: list[str] = Field(min_length=1, max_length=512, examples=[["contact.email"]])
    subjects: list[str] = Field(default_factory=list, max_length=1000)
    bulk_limit: int | None = Field(default=None, ge=1)
    purpose: str
    ticket: str = Field(min_length=1, max_length=200)
    duration_seconds: int = Field(ge=1, le=366 * 86400)


class AccessRequestBody(BreakGlassBody):
    start_at: str | None = None
    clock_mode: Literal["at_approval", "at_first_use"] = "at_approval"


class NoteBody(_In):
    note: str = Field(
        min_length=1,
        max_length=65536,
        description="The C2SP signed note, signed with your own key (the server holds none).",
    )


class RevokeBody(_In):
    reason: str = Field(min_length=1, max_length=500)


class ScopeView(_Out):
    region: str
    collections: list[str]
    fields: list[str]
    subjects: list[str]
    bulk_limit: int | None


class CanonicalRequestView(_Out):
    format: int
    id: str
    requester: str
    requester_org: str
    scope: ScopeView
    purpose: str
    ticket: str
    duration_seconds: int
    created_at: str
    start_at: str | None
    clock_mode: str
    break_glass: bool


class ApprovalView(_Out):
    approver: str
    decision: Literal["approve", "deny"]
    signed_at: str
    recorded_at: str
    note: str
    counted: bool
    reasons: list[str]
    policies: list[str]


class ReviewView(_Out):
    reviewer: str
    verdict: Literal["upheld", "rejected"]
    signed_at: str
    recorded_at: str
    note: str
    counted: bool
    reasons: list[str]
    policies: list[str]


class AccessRequestView(_Out):
    id: str
    request: CanonicalRequestView = Field(description="The exact request approvers sign.")
    state: str
    current_state: str
    required_approvals: int
    decide_by: str | None
    approvals: list[ApprovalView]
    approved_at: str | None
    starts_at: str | None
    expires_at: str | None
    use_by: str | None
    ended_at: str | None
    ended_by: str | None
    end_reason: str | None
    review_due: str | None
    reviews: list[ReviewView]
    version: int


class AccessRequestList(_Out):
    items: list[AccessRequestView]


# -- egress and releases ---------------------------------------------------------------------


class EgressBody(_In):
    region: str = Field(min_length=1, max_length=32)
    collection: str = Field(min_length=1, max_length=63)
    fields: list[str] = Field(min_length=1, max_length=512)
    purpose: str
    destination: str = Field(min_length=1, max_length=128)
    subject_ids: list[str] | None = Field(default=None, max_length=10_000)
    where: dict[str, Any] = Field(default_factory=dict)
    limit: int = Field(default=10_000, ge=1, le=100_000)


class EgressView(_Out):
    count: int
    digest: str = Field(description="Hex SHA-256 of payload's UTF-8 bytes: exactly what left.")
    log_index: int
    exception: str | None
    payload: str


class ReleaseStatusView(_Out):
    state: Literal["approved", "pending", "revoked", "unknown"]
    digest: str
    region: str
    release: str | None
    name: str | None
    kind: str | None
    submitter: str | None
    reviewers: list[str]
    threshold: int | None
    revoked_by: str | None
    reason: str | None


# -- log, health -----------------------------------------------------------------------------


class InclusionProofView(_Out):
    index: int
    size: int
    leaf_hash: str
    hashes: list[str]


class ConsistencyProofView(_Out):
    old: int
    new: int
    hashes: list[str]


class WitnessHealthView(_Out):
    name: str
    url: str
    known_size: int | None
    last_success_size: int | None
    last_success_at: str | None
    last_error: str | None
    last_error_at: str | None


class WitnessingView(_Out):
    configured: bool
    size: int | None
    cosigned_by: list[str]
    threshold: int
    below_threshold: bool
    witnesses: list[WitnessHealthView]


class HealthView(_Out):
    status: Literal["ok"]


class ReadyView(_Out):
    ready: bool
    checks: dict[str, str]
