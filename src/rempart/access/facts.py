"""Decision facts for a record access: what the gateway hands the policy engine.

Given who asks, the grant found for the access (or none), the collection and
its catalog fields, the subject's commitment, the purpose and the time,
:func:`field_requests` builds one :class:`~rempart.policy.DecisionRequest`
per field. Every time-dependent fact (is the grant active now?) is computed
here, from the grant's state and ``now``, so the decision itself is a pure
function of the request and can be memoized exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from rempart.store.catalog import FieldSpec

__all__ = ["field_requests"]


@lru_cache(maxsize=8192)
def _resource(region: str, collection: str, spec: FieldSpec) -> FieldResource:
    return FieldResource(region, collection, spec.name, spec.category.value, spec.purposes)


def field_requests(
    *,
    principal: Principal | PrincipalEntity,
    action: str,
    region: str,
    collection: str,
    fields: Sequence[FieldSpec],
    grant: Grant | None,
    subject: str,
    purpose: str,
    now: datetime,
) -> list[DecisionRequest]:
    """One decision request per field: ``principal`` does ``action`` on ``subject``'s record.

    ``fields`` are the catalog's :class:`~rempart.store.catalog.FieldSpec` of
    ``collection``; ``subject`` is the subject's keyed commitment; ``grant``
    is what :meth:`~rempart.access.AccessService.grant_for_use` found.
    """
    if action not in RECORD_ACTIONS:
        raise InvalidInput(
            f"action {action!r} is not a record action ({', '.join(sorted(RECORD_ACTIONS))})"
        )
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise InvalidInput("now must be a timezone-aware time")
    entity = principal.entity() if isinstance(principal, Principal) else principal
    context = RecordContext(purpose, grant_context(grant, subject, now))
    requests = []
    for spec in fields:
        if not isinstance(spec, FieldSpec):
            raise InvalidInput(f"fields are catalog FieldSpec values, got {type(spec).__name__}")
        requests.append(DecisionRequest(entity, action, _resource(region, collection, spec), context))
    return requests
