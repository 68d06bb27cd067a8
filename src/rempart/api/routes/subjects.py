"""Subjects: create one in its home region, look one up, erase one (crypto-shredding)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from rempart.api._edge import SUBJECT_ID, acting, operations
from rempart.api.models import ErasureBody, ErasureView, SubjectBody, SubjectCreatedView, SubjectView

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
