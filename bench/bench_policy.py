"""Micro-benchmark of policy decisions, side by side in one run: cedarpy alone vs the engine.

    .venv/bin/python bench/bench_policy.py [--seconds 1.0] [--json-only]

Rows (decisions per second and microseconds per decision, for a record read
of 5 fields by one principal under an active grant):

* ``cedarpy is_authorized``: one cedarpy call per decision (pre-parsed
  policies and schema, entities as a list), the baseline;
* ``cedarpy is_authorized_batch``: the 5 fields in one call;
* ``engine, cache off``: PolicyEngine.decide with memoization disabled
  (one batch call per read, plus building the Cedar inputs);
* ``engine, cache off, no request validation``: the same without the schema
  at evaluation time;
* ``engine, memoized``: PolicyEngine.decide with a warm cache (the steady
  state: same principal, grant facts and fields);
* ``facts + memoized decide``: field_requests() then decide(), what the
  gateway does per read;
* ``batcher, 16 threads, misses``/``hits``: DecisionBatcher with 16 caller
  threads, every read a cache miss (distinct principals) or a hit.

Prints a table, then one JSON object. Timing only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import cedarpy

from rempart.access import Principal, RequestState, field_requests
from rempart.access.model import Grant
from rempart.policy import (
    DEFAULT_POLICIES,
    CompiledPolicies,
    DecisionBatcher,
    DecisionRequest,
    PolicyEngine,
    PolicySchema,
)
from rempart.store.catalog import default_catalog

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SUBJECT = "ab" * 32


def principal(i: int = 0) -> Principal:
    return Principal.build(
        id=f"operator:user{i}", display_name="User", org="operator", location="US",
        screening="cleared", roles={"support"},
    )


def grant(i: int = 0) -> Grant:
    return Grant(
        id="req_0000000000000001", grantee=f"operator:user{i}", region="us",
        collections=frozenset({"contact"}),
        fields=frozenset({"contact.email", "contact.phone", "contact.email_verified"}),
        purpose="customer_support", break_glass=False, state=RequestState.ACTIVE,
        starts_at=NOW - timedelta(minutes=5), expires_at=NOW + timedelta(hours=1), use_by=None,
        subjects=frozenset({SUBJECT}), bulk_limit=None, version=2,
    )


CATALOG = default_catalog()
SPECS = [CATALOG.collection("contact").field(name) for name in
         ("email", "phone", "postal_address", "email_verified", "phone")]


def read_requests(i: int = 0) -> list[DecisionRequest]:
    return field_requests(
        principal=principal(i), action="read", region="us", collection="contact", fields=SPECS,
        grant=grant(i), subject=SUBJECT, purpose="customer_support", now=NOW,
    )


def measure(
    name: str, seconds: float, decisions_per_call: int, fn: Callable[[], object]
) -> dict[str, object]:
    fn()  # warm up
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        fn()
        calls += 1
        now = time.perf_counter()
        if now >= deadline:
            break
    elapsed = now - start
    decisions = calls * decisions_per_call
    return {
        "name": name,
        "decisions": decisions,
        "seconds": round(elapsed, 4),
        "decisions_per_second": round(decisions / elapsed),
        "us_per_decision": round(elapsed / decisions * 1e6, 2),
    }


def threaded(
    name: str, seconds: float, make: Callable[[int], Callable[[], int]], threads: int = 16
) -> dict[str, object]:
    counts = [0] * threads
    stop = threading.Event()
    start_gate = threading.Barrier(threads + 1)

    def worker(k: int) -> None:
        step = make(k)
        start_gate.wait()
        while not stop.is_set():
            counts[k] += step()

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    start_gate.wait()
    begin = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - begin
    total = sum(counts)
    return {
        "name": name,
        "decisions": total,
        "seconds": round(elapsed, 4),
        "decisions_per_second": round(total / elapsed),
        "us_per_decision": round(elapsed / total * 1e6, 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per row")
    parser.add_argument("--json-only", action="store_true")
    parser.add_argument("--quick", action="store_true", help="shorter rows (as python -m bench --quick)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = min(args.seconds, 0.5)
    seconds = args.seconds

    schema = PolicySchema.default()
    policies = CompiledPolicies.compile(DEFAULT_POLICIES, schema)
    requests = read_requests()
    cedar_requests = [r.cedar() for r in requests]
    entities = [requests[0].principal.entity(), *(r.resource.entity() for r in requests)]
    handle = policies.handle

    rows = [
        measure("cedarpy is_authorized (1 call per decision)", seconds, 1,
                lambda: cedarpy.is_authorized(cedar_requests[0], handle, entities, schema=schema.handle)),
        measure("cedarpy is_authorized_batch (5 per call)", seconds, 5,
                lambda: cedarpy.is_authorized_batch(cedar_requests, handle, entities, schema=schema.handle)),
    ]
    cold = PolicyEngine(policies, cache_size=0)
    rows.append(measure("engine.decide, cache off", seconds, 5, lambda: cold.decide(requests)))
    loose = PolicyEngine(policies, cache_size=0, validate_requests=False)
    rows.append(measure("engine.decide, cache off, no request validation", seconds, 5,
                        lambda: loose.decide(requests)))
    warm = PolicyEngine(policies)
    rows.append(measure("engine.decide, memoized (warm)", seconds, 5, lambda: warm.decide(requests)))
    the_principal, the_grant = principal(), grant()
    rows.append(measure(
        "field_requests + memoized decide (per read)", seconds, 5,
        lambda: warm.decide(field_requests(
            principal=the_principal, action="read", region="us", collection="contact", fields=SPECS,
            grant=the_grant, subject=SUBJECT, purpose="customer_support", now=NOW,
        )),
    ))

    miss_engine = PolicyEngine(policies, cache_size=0)
    with DecisionBatcher(miss_engine) as batcher:
        def make_miss(k: int) -> Callable[[], int]:
            batch = read_requests(k)
            return lambda: len(batcher.decide(batch))
        rows.append(threaded("batcher, 16 threads, every read a miss", seconds, make_miss))
        miss_rounds = batcher.rounds
    hit_engine = PolicyEngine(policies)
    with DecisionBatcher(hit_engine) as batcher:
        def make_hit(k: int) -> Callable[[], int]:
            batch = read_requests(k)
            batcher.decide(batch)
            return lambda: len(batcher.decide(batch))
        rows.append(threaded("batcher, 16 threads, memo hits", seconds, make_hit))

    stats = miss_engine.stats()
    summary = {
        "benchmark": "policy decisions",
        "fields_per_read": 5,
        "seconds_per_row": seconds,
        "rows": rows,
        "batcher_miss_rounds": miss_rounds,
        "batcher_miss_cedar_calls": stats.cedar_calls,
        "batcher_miss_decisions_per_cedar_call": round(stats.evaluations / max(stats.cedar_calls, 1), 1),
    }
    if not args.json_only:
        width = max(len(str(r["name"])) for r in rows)
        print(f"{'row':<{width}}  {'decisions/s':>12}  {'µs/decision':>12}")
        for r in rows:
            print(f"{r['name']!s:<{width}}  {r['decisions_per_second']:>12,}  {r['us_per_decision']:>12}")
        print(
            f"batcher (misses): {stats.evaluations} decisions in {stats.cedar_calls} cedar calls, "
            f"{summary['batcher_miss_decisions_per_cedar_call']} per call"
        )
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1:])
