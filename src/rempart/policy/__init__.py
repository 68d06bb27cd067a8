"""Cedar policies: the schema, the default set that encodes the agreement, and ``decide()``.

>>> from rempart.policy import (CompiledPolicies, PolicySchema, PolicyEngine, DEFAULT_POLICIES,
...     DecisionRequest, PrincipalEntity, FieldResource, RecordContext)
>>> engine = PolicyEngine(CompiledPolicies.compile(DEFAULT_POLICIES, PolicySchema.default()))
>>> parent = PrincipalEntity("parent:bob", "parent", "CN", "cleared", frozenset({"engineer"}))
>>> email = FieldResource("us", "profile", "email", "protected")
>>> decision = engine.decide_one(DecisionRequest(parent, "read", email, RecordContext("customer_support")))
>>> decision.allowed, decision.policies
(False, ('parent-never-touches-protected', 'protected-read-needs-grant'))
"""

from rempart.policy.batcher import DecisionBatcher
from rempart.policy.engine import CacheStats, PolicyEngine
from rempart.policy.model import (
    ACTIONS,
    GRANT_STATUSES,
    NO_GRANT,
    RECORD_ACTIONS,
    REQUEST_ACTIONS,
    AccessRequestResource,
    Decision,
    DecisionRequest,
    FieldResource,
    GrantContext,
    LogResource,
    PrincipalEntity,
    RecordContext,
)
from rempart.policy.policy_set import (
    DEFAULT_POLICIES,
    MAX_POLICY_TEXT,
    SCHEMA_TEXT,
    CompiledPolicies,
    PolicyInfo,
    PolicySchema,
)
from rempart.policy.store import PolicyActivation, PolicyStore

__all__ = [
    "ACTIONS",
    "DEFAULT_POLICIES",
    "GRANT_STATUSES",
    "MAX_POLICY_TEXT",
    "NO_GRANT",
    "RECORD_ACTIONS",
    "REQUEST_ACTIONS",
    "SCHEMA_TEXT",
    "AccessRequestResource",
    "CacheStats",
    "CompiledPolicies",
    "Decision",
    "DecisionBatcher",
    "DecisionRequest",
    "FieldResource",
    "GrantContext",
    "LogResource",
    "PolicyActivation",
    "PolicyEngine",
    "PolicyInfo",
    "PolicySchema",
    "PolicyStore",
    "PrincipalEntity",
    "RecordContext",
]
