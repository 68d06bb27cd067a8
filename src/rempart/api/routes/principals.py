"""Principals and tokens: who may act, and their bearer tokens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from rempart.api._edge import PRINCIPAL_ID, acting, operations
from rempart.api.models import (
    DeletedView,
    IssuedTokenView,
    Org,
    PrincipalBody,
    PrincipalChanges,
    PrincipalList,
    PrincipalView,
    TokenBody,
    TokenList,
    TokenView,
)

router = APIRouter()

PrincipalId = Annotated[str, Path(pattern=PRINCIPAL_ID)]


@router.get("/me", response_model=PrincipalView, tags=["principals"])
def whoami(request: Request) -> Any:
    """The principal this token stands for."""
    return operations(request).whoami(acting(request))


@router.get("/principals", response_model=PrincipalList, tags=["principals"])
def list_principals(
    request: Request,
    org: Annotated[Org | None, Query()] = None,
) -> Any:
    """Every principal (admins and the custodian, auditor and board orgs)."""
    return operations(request).list_principals(acting(request), org=org)


@router.post("/principals", response_model=PrincipalView, status_code=201, tags=["principals"])
def create_principal(request: Request, body: PrincipalBody) -> Any:
    """Add a principal (operator admins only); recorded in the log."""
    return operations(request).create_principal(acting(request), body.model_dump())


@router.get("/principals/{principal_id}", response_model=PrincipalView, tags=["principals"])
def get_principal(request: Request, principal_id: PrincipalId) -> Any:
    return operations(request).get_principal(acting(request), principal_id)


@router.patch("/principals/{principal_id}", response_model=PrincipalView, tags=["principals"])
def update_principal(request: Request, principal_id: PrincipalId, body: PrincipalChanges) -> Any:
    """Change attributes (not id or org); ``disabled: true`` stops their tokens at once."""
    changes = body.model_dump(exclude_unset=True)
    return operations(request).update_principal(acting(request), principal_id, changes)


@router.delete("/principals/{principal_id}", response_model=DeletedView, tags=["principals"])
def delete_principal(request: Request, principal_id: PrincipalId) -> Any:
    """Remove a principal nothing refers to (one with tokens or requests: disable it instead)."""
    return operations(request).delete_principal(acting(request), principal_id)


@router.post("/tokens", response_model=IssuedTokenView, status_code=201, tags=["tokens"])
def issue_token(request: Request, body: TokenBody) -> Any:
    """Issue a token for yourself (or, as an admin, for another principal); shown once."""
    return operations(request).issue_token(
        acting(request),
        label=body.label,
        for_principal=body.principal,
        lifetime_seconds=body.lifetime_seconds,
    )


@router.get("/tokens", response_model=TokenList, tags=["tokens"])
def list_tokens(
    request: Request,
    principal: Annotated[str | None, Query(pattern=PRINCIPAL_ID, description="Default: yours.")] = None,
) -> Any:
    """Tokens (without secrets): yours, or another principal's for admins."""
    return operations(request).list_tokens(acting(request), of=principal)


@router.delete("/tokens/{token_id}", response_model=TokenView, tags=["tokens"])
def revoke_token(request: Request, token_id: Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")]) -> Any:
    """Revoke a token at once (yours, or any for admins)."""
    return operations(request).revoke_token(acting(request), token_id)
