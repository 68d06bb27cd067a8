"""Access requests: file, list, read, approve or deny (signed notes), withdraw, revoke, break-glass."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from rempart.api._edge import PRINCIPAL_ID, PurposeCode, acting, operations
from rempart.api.models import (
    AccessRequestBody,
    AccessRequestList,
    AccessRequestView,
    BreakGlassBody,
    NoteBody,
    RevokeBody,
)
from rempart.errors import InvalidInput

router = APIRouter(tags=["access"])

RequestId = Annotated[str, Path(pattern=r"^req_[0-9a-f]{16}$")]


def _purpose(value: str) -> PurposeCode:
    from rempart.store.catalog import check_purpose

    return check_purpose(value)  # type: ignore[return-value]


@router.post("/access/requests", response_model=AccessRequestView, status_code=201)
def create_request(request: Request, body: AccessRequestBody) -> Any:
    """File a just-in-time access request; custodian approvers then sign their decisions."""
    principal = acting(request)
    return operations(request).request_access(
        principal,
        region=body.region,
        fields=body.fields,
        subjects=body.subjects,
        bulk_limit=body.bulk_limit,
        purpose=_purpose(body.purpose),
        ticket=body.ticket,
        duration_seconds=body.duration_seconds,
        start_at=body.start_at,
        clock_mode=body.clock_mode,
    )


@router.post("/access/break-glass", response_model=AccessRequestView, status_code=201)
def break_glass(request: Request, body: BreakGlassBody) -> Any:
    """Open an emergency grant at once: capped, flagged, and to be reviewed by a custodian approver."""
    principal = acting(request)
    return operations(request).request_access(
        principal,
        region=body.region,
        fields=body.fields,
        subjects=body.subjects,
        bulk_limit=body.bulk_limit,
        purpose=_purpose(body.purpose),
        ticket=body.ticket,
        duration_seconds=body.duration_seconds,
        break_glass=True,
    )


@router.get("/access/requests", response_model=AccessRequestList)
def list_requests(
    request: Request,
    state: Annotated[
        str | None, Query(pattern=r"^[a-z]+$", description="Only requests recorded in this state.")
    ] = None,
    requester: Annotated[str | None, Query(pattern=PRINCIPAL_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Requests, newest first: your own, or all of them for admins and oversight orgs."""
    principal = acting(request)
    return operations(request).list_access_requests(principal, state=state, requester=requester, limit=limit)


@router.get("/access/requests/{request_id}", response_model=AccessRequestView)
def get_request(request: Request, request_id: RequestId) -> Any:
    """One request, with the exact canonical request approvers sign."""
    principal = acting(request)
    return operations(request).get_access_request(principal, request_id)


@router.post("/access/requests/{request_id}/approvals", response_model=AccessRequestView)
def add_approval(request: Request, request_id: RequestId, body: NoteBody) -> Any:
    """Record your signed approval or denial (``decision`` in the note: approve or deny)."""
    principal = acting(request)
    return operations(request).add_approval(principal, request_id, body.note)


@router.post("/access/requests/{request_id}/reviews", response_model=AccessRequestView)
def add_review(request: Request, request_id: RequestId, body: NoteBody) -> Any:
    """Record your signed review of a break-glass grant (upheld or rejected)."""
    principal = acting(request)
    return operations(request).add_review(principal, request_id, body.note)


@router.post("/access/requests/{request_id}/withdraw", response_model=AccessRequestView)
def withdraw(request: Request, request_id: RequestId) -> Any:
    """Withdraw your own pending request."""
    principal = acting(request)
    return operations(request).withdraw(principal, request_id)


@router.post("/access/requests/{request_id}/revoke", response_model=AccessRequestView)
def revoke(request: Request, request_id: RequestId, body: RevokeBody) -> Any:
    """End a grant early: its grantee gives it up, or a custodian approver takes it away."""
    principal = acting(request)
    if not body.reason.strip():
        raise InvalidInput("reason must say why the grant ends")
    return operations(request).revoke(principal, request_id, reason=body.reason)
