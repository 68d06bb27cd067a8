"""What every route needs from the app: the operations, and the principal behind a token."""

from __future__ import annotations

from typing import Final, Literal, get_args

from fastapi import Request

from rempart.access import Principal
from rempart.api.models import PRINCIPAL_ID, SUBJECT_ID
from rempart.api.operations import Operations
from rempart.store.catalog import PURPOSES

__all__ = ["COLLECTION", "PRINCIPAL_ID", "SUBJECT_ID", "PurposeCode", "acting", "operations"]

PurposeCode = Literal[
    "customer_support",
    "legal_request",
    "security_incident",
    "service_debugging",
    "data_subject_request",
    "interoperability",
    "business_metrics",
    "safety_moderation",
]
if set(get_args(PurposeCode)) != set(PURPOSES):  # pragma: no cover - caught by any import
    raise RuntimeError("PurposeCode must list exactly rempart.store.catalog.PURPOSES")

COLLECTION: Final = r"^[a-z][a-z0-9_]{0,62}$"


def operations(request: Request) -> Operations:
    ops: Operations = request.app.state.operations
    return ops


def acting(request: Request) -> Principal:
    """The authenticated principal (runs in the route's worker thread: it reads the database)."""
    principal: Principal = request.app.state.authenticator.principal(request)
    return principal
