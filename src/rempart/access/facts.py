"""Decision facts for a record access: what the gateway hands the policy engine.

Given who asks, the grant found for the access (or none), the record's
fields with their catalog categories, the subject's commitment, the purpose
and the time, :func:`field_requests` builds one
:class:`~rempart.policy.DecisionRequest` per field. Every time-dependent fact
(is the grant active now?) is computed here, from the grant's state and
``now``, so the decision itself is a pure function of the request and can be
memoized exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from rempart.access.model import Grant, grant_context
from rempart.access.principals import Principal
from rempart.errors import InvalidInput
from rempart.policy.model import (
    RECORD_ACTIONS,
    DecisionRequest,
    FieldResource,
    PrincipalEntity,
    RecordContext,
)

__all__ = ["RecordField", "field_requests"]


@dataclass(frozen=True, slots=True)
class RecordField:
    """A field of a collection as the catalog describes it (category, and purposes if excepted)."""

    collection: str
    field: str
    category: str
    purposes: frozenset[str] = frozenset()


@lru_cache(maxsize=8192)
def _resource(region: str, spec: RecordField) -> FieldResource:
    return FieldResource(region, spec.collection, spec.field, spec.category, spec.purposes)


def field_requests(
    *,
    principal: Principal | PrincipalEntity,
    action: str,
    region: str,
    fields: Sequence[RecordField],
    grant: Grant | None,
    subject: str,
    purpose: str,
    now: datetime,
) -> list[DecisionRequest]:
    """One decision request per field: ``principal`` does ``action`` on ``subject``'s record in ``region``."""
    if action not in RECORD_ACTIONS:
        raise InvalidInput(f"action {action!r} is not a record action ({', '.join(sorted(RECORD_ACTIONS))})")
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware")
    entity = principal.entity() if isinstance(principal, Principal) else principal
    context = RecordContext(purpose, grant_context(grant, subject, now))
    requests = []
    for spec in fields:
        if not isinstance(spec, RecordField):
            raise InvalidInput(f"fields are RecordField values, got {type(spec).__name__}")
        requests.append(DecisionRequest(entity, action, _resource(region, spec), context))
    return requests
