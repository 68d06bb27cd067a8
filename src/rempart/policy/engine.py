"""Decide with Cedar: batched, memoized exactly, fail closed.

One cedarpy call costs tens to hundreds of microseconds, most of it spent
carrying the request across into Rust; evaluating a policy takes a few. The
engine therefore:

1. evaluates every request of a call (one per field of a record, or the
   requests of many concurrent callers gathered by
   :class:`~rempart.policy.batcher.DecisionBatcher`) in **one**
   ``is_authorized_batch`` call, against one entity set holding each distinct
   principal and resource once;
2. **memoizes** decisions in a bounded LRU cache keyed on the policy set's
   content hash, the schema's hash, and the :class:`DecisionRequest` value
   itself, which holds every input Cedar sees (principal attributes, action,
   resource attributes, context with the grant facts computed from state and
   time). A hit returns exactly what Cedar would return; any change of policy
   set, principal attributes, grant state or time-derived fact is a new key.

Exactness rests on two facts: the request value is the whole input (no
``now`` inside Cedar, no entity hierarchy), and policies may not read
attributes of entity literals (checked by
:class:`~rempart.policy.policy_set.CompiledPolicies`), so other requests'
entities in a batch can never change an answer.

Fail closed: a request Cedar cannot evaluate is denied with Cedar's message;
such error decisions are never cached.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cedarpy

from rempart.errors import InvalidInput
from rempart.policy.model import Decision, DecisionRequest
from rempart.policy.policy_set import CompiledPolicies

__all__ = ["CacheStats", "PolicyEngine"]


@dataclass(frozen=True, slots=True)
class CacheStats:
    """How the decision cache is doing: for metrics and benchmarks."""

    hits: int
    misses: int
    size: int
    capacity: int
    evaluations: int
    cedar_calls: int


_CacheKey = tuple[str, bool, DecisionRequest]


class PolicyEngine:
    """Cedar decisions for :class:`DecisionRequest` batches, with an exact LRU memo.

    ``validate_requests`` passes the schema to every evaluation, so Cedar also
    type-checks each request (the facts are typed by construction; the check
    is a second lock, at some cost per miss). ``cache_size=0`` disables memoization.
    """

    def __init__(
        self,
        policies: CompiledPolicies,
        *,
        cache_size: int = 65_536,
        validate_requests: bool = True,
    ) -> None:
        if not isinstance(policies, CompiledPolicies):
            raise InvalidInput("PolicyEngine needs CompiledPolicies (use CompiledPolicies.compile)")
        if cache_size < 0:
            raise InvalidInput("cache_size must be zero or positive")
        self._policies = policies
        self._capacity = cache_size
        self._validate = validate_requests
        self._cache: OrderedDict[_CacheKey, Decision] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._evaluations = 0
        self._cedar_calls = 0

    # -- policy set --------------------------------------------------------------

    @property
    def policies(self) -> CompiledPolicies:
        """The policy set in force now."""
        return self._policies

    def install(self, policies: CompiledPolicies) -> None:
        """Put a new, already validated policy set in force; cached decisions of the old one go."""
        if not isinstance(policies, CompiledPolicies):
            raise InvalidInput("install needs CompiledPolicies (use CompiledPolicies.compile)")
        with self._lock:
            self._policies = policies
            self._cache.clear()

    # -- deciding ----------------------------------------------------------------

    def decide(self, requests: Sequence[DecisionRequest]) -> list[Decision]:
        """Decide every request against the policy set in force, in one Cedar call for the misses."""
        policies = self._policies
        found = self.lookup(policies, requests)
        missing = [r for r, d in zip(requests, found, strict=True) if d is None]
        if not missing:
            return [d for d in found if d is not None]
        unique = list(dict.fromkeys(missing))
        evaluated = dict(zip(unique, self.evaluate(policies, unique), strict=True))
        self.remember(policies, evaluated)
        return [d if d is not None else evaluated[r] for r, d in zip(requests, found, strict=True)]

    def decide_one(self, request: DecisionRequest) -> Decision:
        return self.decide([request])[0]

    def lookup(
        self, policies: CompiledPolicies, requests: Sequence[DecisionRequest]
    ) -> list[Decision | None]:
        """Cached decisions for ``requests`` under ``policies`` (``None`` where not cached)."""
        found: list[Decision | None] = []
        if self._capacity == 0:
            with self._lock:
                self._misses += len(requests)
            return [None] * len(requests)
        key = policies.key
        validate = self._validate
        with self._lock:
            cache = self._cache
            for request in requests:
                if type(request) is not DecisionRequest:
                    raise InvalidInput(f"expected a DecisionRequest, got {type(request).__name__}")
                cache_key = (key, validate, request)
                decision = cache.get(cache_key)
                if decision is None:
                    self._misses += 1
                else:
                    self._hits += 1
                    cache.move_to_end(cache_key)
                found.append(decision)
        return found

    def remember(
        self, policies: CompiledPolicies, decisions: dict[DecisionRequest, Decision]
    ) -> None:
        """Cache evaluated decisions (those without evaluation errors) under ``policies``."""
        if self._capacity == 0:
            return
        key = policies.key
        with self._lock:
            if policies is not self._policies:
                return  # a new set went into force meanwhile: do not refill with the old one
            cache = self._cache
            for request, decision in decisions.items():
                if decision.errors:
                    continue
                cache[(key, self._validate, request)] = decision
            while len(cache) > self._capacity:
                cache.popitem(last=False)

    def evaluate(
        self, policies: CompiledPolicies, requests: Sequence[DecisionRequest]
    ) -> list[Decision]:
        """Evaluate with Cedar, bypassing the cache: one ``is_authorized_batch`` call per group.

        Requests are grouped so that no two in a group name the same entity
        with different attributes (the same principal seen before and after an
        update, say); normally there is one group.
        """
        for request in requests:
            if type(request) is not DecisionRequest:
                raise InvalidInput(f"expected a DecisionRequest, got {type(request).__name__}")
        groups: list[tuple[dict[tuple[str, str], dict[str, Any]], list[int]]] = []
        for index, request in enumerate(requests):
            mine = (request.principal.entity(), request.resource.entity())
            group = next(
                (
                    g
                    for g in groups
                    if all(g[0].get((e["uid"]["type"], e["uid"]["id"]), e) == e for e in mine)
                ),
                None,
            )
            if group is None:
                group = ({}, [])
                groups.append(group)
            for e in mine:
                group[0][(e["uid"]["type"], e["uid"]["id"])] = e
            group[1].append(index)
        decisions: list[Decision | None] = [None] * len(requests)
        for entities, members in groups:
            batch = [requests[i] for i in members]
            for i, decision in zip(members, self._run(policies, batch, list(entities.values())), strict=True):
                decisions[i] = decision
        self._evaluations += len(requests)
        return [d for d in decisions if d is not None]

    def _run(
        self,
        policies: CompiledPolicies,
        batch: list[DecisionRequest],
        entities: list[dict[str, Any]],
    ) -> list[Decision]:
        schema = policies.schema.handle if self._validate else None
        self._cedar_calls += 1
        try:
            results = cedarpy.is_authorized_batch(
                [r.cedar() for r in batch], policies.handle, entities, schema=schema
            )
        except Exception as exc:  # cedarpy raises ValueError and friends on input it cannot take
            if len(batch) == 1:
                return [_failed(policies, f"policy evaluation failed: {exc}")]
            # Evaluate one by one so one bad request cannot take the others down with it.
            return [
                self._run(policies, [r], [r.principal.entity(), r.resource.entity()])[0]
                for r in batch
            ]
        if len(results) != len(batch):  # pragma: no cover - cedarpy answers one per request
            return [_failed(policies, "Cedar returned a wrong number of answers") for _ in batch]
        return [_decision(policies, r, result) for r, result in zip(batch, results, strict=True)]

    # -- observing ------------------------------------------------------------------

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                size=len(self._cache),
                capacity=self._capacity,
                evaluations=self._evaluations,
                cedar_calls=self._cedar_calls,
            )

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()


def _failed(policies: CompiledPolicies, message: str) -> Decision:
    return Decision(
        allowed=False,
        policies=(),
        reasons=(f"denied: {message}",),
        errors=(message,),
        policy_version=policies.version,
    )


def _decision(
    policies: CompiledPolicies, request: DecisionRequest, result: cedarpy.AuthzResult
) -> Decision:
    diagnostics = result.diagnostics
    # Cedar reports determining policies as a set; list them in the order of the text.
    infos = [policies.info(c) for c in sorted(diagnostics.reasons, key=policies.position)]
    errors: list[str] = []
    for error in diagnostics.errors:
        text = str(error)
        for cedar_id, info in policies.infos.items():
            text = text.replace(f"`{cedar_id}`", f"`{info.id}`")
        errors.append(text)
    allowed = result.decision == cedarpy.Decision.Allow
    reasons = [info.reason for info in infos if info.reason]
    if not allowed and not infos:
        reasons.append(f"no policy permits {request.describe()}")
    reasons.extend(f"evaluation error: {e}" for e in errors)
    return Decision(
        allowed=allowed,
        policies=tuple(info.id for info in infos),
        reasons=tuple(reasons),
        errors=tuple(errors),
        policy_version=policies.version,
    )
