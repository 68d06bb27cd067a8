"""The fixed list of purpose codes an access may be for.

The record-store room owns this list in ``rempart.store.catalog.PURPOSES``;
until that module exists this copy holds the same tuple (to be unified: the
access room will then import it from there).
"""

from __future__ import annotations

from typing import Final

from rempart.errors import InvalidInput

__all__ = ["PURPOSES", "check_purpose"]

PURPOSES: Final = (
    "customer_support",
    "legal_request",
    "security_incident",
    "service_debugging",
    "data_subject_request",
    "interoperability",
    "business_metrics",
    "safety_moderation",
)


def check_purpose(value: object, what: str = "purpose") -> str:
    """Return ``value`` if it is one of :data:`PURPOSES`, else raise InvalidInput naming them."""
    if not isinstance(value, str) or value not in PURPOSES:
        raise InvalidInput(f"{what} {value!r} is not a purpose code; use one of: {', '.join(PURPOSES)}")
    return value
