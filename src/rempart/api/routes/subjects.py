"""Subjects: create one in its home region, look one up, erase one (crypto-shredding)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from rempart.api._edge import SUBJECT_ID, acting, operations
from rempart.api.models import (
    ErasureBody,
    ErasureView,
    SubjectBody,
    SubjectCreatedView,
    SubjectReportView,
    SubjectTokenBody,
    SubjectTokenView,
    SubjectView,
)

router = APIRouter(tags=["subjects"])

SubjectId = Annotated[str, Path(pattern=SUBJECT_ID)]


@router.post("/subjects", response_model=SubjectCreatedView, status_code=201)
def create_subject(request: Request, body: SubjectBody) -> Any:
    """Give a new subject its home region and keys there (recorded in the log)."""
    principal = acting(request)
    return operations(request).create_subject(principal, body.subject_id, body.region)


@router.get("/subjects/{subject_id}", response_model=SubjectView)
def get_subject(request: Request, subject_id: SubjectId) -> Any:
    """The subject's home region and keyed commitment (no personal data)."""
    principal = acting(request)
    return operations(request).get_subject(principal, subject_id)


@router.post("/subjects/{subject_id}/erase", response_model=ErasureView)
def erase_subject(request: Request, subject_id: SubjectId, body: ErasureBody) -> Any:
    """Erase a subject: destroy their keys and records; answers the erasure receipt."""
    principal = acting(request)
    return operations(request).erase_subject(principal, subject_id, reason=body.reason, purpose=body.purpose)


@router.post("/subjects/{subject_id}/report-tokens", response_model=SubjectTokenView, status_code=201)
def issue_report_token(request: Request, subject_id: SubjectId, body: SubjectTokenBody) -> Any:
    """A data-subject request: a token (shown once) that lets the subject fetch their access report."""
    principal = acting(request)
    return operations(request).issue_subject_token(
        principal, subject_id, lifetime=timedelta(seconds=body.lifetime_seconds)
    )


@router.get("/subjects/{subject_id}/access-report", response_model=SubjectReportView)
def access_report(request: Request, subject_id: SubjectId) -> Any:
    """Who accessed this subject's data (support staff and the custodian), each line with its proof."""
    principal = acting(request)
    return operations(request).subject_report_for(principal, subject_id)


@router.get("/me/access-report", response_model=SubjectReportView)
def my_access_report(request: Request) -> Any:
    """For a data subject holding a subject token: every access to their data, with offline proofs."""
    ops = operations(request)
    subject_id = request.app.state.authenticator.subject(request, ops.d.subject_tokens)
    return ops.subject_report(subject_id)
