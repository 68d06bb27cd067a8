"""The decision batcher: concurrent callers' misses go to Cedar together; answers stay exact."""

from __future__ import annotations

import asyncio
import threading

import pytest

from rempart.errors import Overloaded
from rempart.policy import (
    DEFAULT_POLICIES,
    CompiledPolicies,
    DecisionBatcher,
    DecisionRequest,
    FieldResource,
    PolicyEngine,
    PolicySchema,
    PrincipalEntity,
    RecordContext,
)

POLICIES = CompiledPolicies.compile(DEFAULT_POLICIES, PolicySchema.default())


def requests_for(n: int) -> list[DecisionRequest]:
    """n distinct principals reading a public and a protected field (no grant)."""
    out = []
    for i in range(n):
        who = PrincipalEntity(f"operator:u{i}", "operator", "US", "cleared", frozenset({"support"}))
        out.append(DecisionRequest(who, "read", FieldResource("us", "profile", "handle", "public"),
                                   RecordContext("customer_support")))
        out.append(DecisionRequest(who, "read", FieldResource("us", "contact", "email", "protected"),
                                   RecordContext("customer_support")))
    return out


def expected(requests: list[DecisionRequest]) -> list[tuple[bool, tuple[str, ...]]]:
    reference = PolicyEngine(POLICIES, cache_size=0)
    return [(d.allowed, d.policies) for d in reference.decide(requests)]


def test_threads_get_exact_answers() -> None:
    engine = PolicyEngine(POLICIES)
    per_caller = [requests_for(40)[2 * i : 2 * i + 2] for i in range(16)]
    results: dict[int, list[tuple[bool, tuple[str, ...]]]] = {}
    start = threading.Barrier(16)
    with DecisionBatcher(engine, max_wait=0.002) as batcher:

        def call(i: int) -> None:
            start.wait()
            results[i] = [(d.allowed, d.policies) for d in batcher.decide(per_caller[i])]

        threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rounds = batcher.rounds
        assert 1 <= rounds <= 16
        # Everything is cached now: answered in the callers' threads, the worker is not woken.
        for i in range(16):
            assert [(d.allowed, d.policies) for d in batcher.decide(per_caller[i])] == results[i]
        assert batcher.rounds == rounds
    for i in range(16):
        assert results[i] == expected(per_caller[i])
        assert results[i] == [(True, ("public-for-all",)), (False, ("protected-read-needs-grant",))]
    assert engine.stats().evaluations == 32


def test_asyncio_callers() -> None:
    engine = PolicyEngine(POLICIES)
    batch = requests_for(10)

    async def main() -> list[list[tuple[bool, tuple[str, ...]]]]:
        with DecisionBatcher(engine) as batcher:
            answers = await asyncio.gather(
                *(batcher.decide_async(batch[i : i + 2]) for i in range(0, 20, 2))
            )
        return [[(d.allowed, d.policies) for d in a] for a in answers]

    answers = asyncio.run(main())
    assert [pair for a in answers for pair in a] == expected(batch)


def test_mixed_hits_and_misses_keep_their_order() -> None:
    engine = PolicyEngine(POLICIES)
    batch = requests_for(3)
    engine.decide(batch[1:3])  # cache the middle two
    with DecisionBatcher(engine) as batcher:
        got = [(d.allowed, d.policies) for d in batcher.decide(batch)]
    assert got == expected(batch)


def test_closed_batcher_refuses() -> None:
    batcher = DecisionBatcher(PolicyEngine(POLICIES))
    batcher.close()
    with pytest.raises(Overloaded) as caught:
        batcher.decide(requests_for(1))
    assert str(caught.value) == "the decision batcher is closed"


def test_bounds_are_checked() -> None:
    from rempart.errors import InvalidInput

    with pytest.raises(InvalidInput) as caught:
        DecisionBatcher(PolicyEngine(POLICIES), max_wait=0.5)
    assert str(caught.value) == "max_wait is between 0 and 0.01 seconds (a few hundred microseconds)"
