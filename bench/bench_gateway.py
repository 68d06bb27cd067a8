"""The gateway benchmark: an authorized protected read through the one door, side by side
with the store's read alone, with 1 and 16 concurrent callers, on SQLite and PostgreSQL.

Through the gateway each read: finds the subject's home region and commitment,
finds and uses the grant, decides every field with Cedar (memoized exactly),
appends the decision to the transparency log and waits until it is durable,
reads and decrypts the allowed fields, masks the rest.

``python -m bench gateway [--quick]``
"""

from __future__ import annotations

import asyncio
import random
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg

from bench.report import percentile, print_table, write_json
from rempart.access import ApprovalDecision, Principal, Scope, sign_approval
from rempart.clock import SystemClock
from rempart.config import Config, default_config
from rempart.deployment import Deployment
from rempart.store.records import Actor
from rempart.tlog.note import Signer

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SUBJECTS = 1000


@contextmanager
def deployment(kind: str) -> Iterator[Deployment]:
    folder = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    databases: list[str] = []
    config: Config = default_config(folder)
    if kind == "postgres":

        def fresh() -> str:
            name = f"bench_gw_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            databases.append(name)
            return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"

        config = replace(
            config,
            control_database=fresh(),
            log=replace(config.log, database=fresh()),
            regions={n: replace(r, store=fresh()) for n, r in config.regions.items()},
        )
    d = Deployment.open(config, clock=SystemClock())
    try:
        yield d
    finally:
        d.close()
        shutil.rmtree(folder, ignore_errors=True)
        for name in databases:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(d: Deployment) -> Principal:
    """Subjects with contact records, and alice holding a bulk grant approved by two custodians."""
    keys = {p: Signer.generate(f"bench/{p.replace(':', '-')}") for p in ("custodian:carol", "custodian:dan")}
    people = [
        ("operator:alice", "operator", {"support"}, None),
        ("operator:svc", "operator", {"service"}, None),
        *[(p, "custodian", {"approver"}, keys[p].vkey()) for p in keys],
    ]
    for pid, org, roles, vkey in people:
        d.principals.create(
            Principal.build(
                id=pid,
                display_name=pid.split(":")[1],
                org=org,
                location="US",
                screening="cleared",
                roles=roles,
                purposes={"customer_support"} if "service" in roles else set(),
                vkey=vkey,
            ),
            actor="bench",
        )
    service = Actor("operator:svc", "operator")
    for i in range(SUBJECTS):
        sid = f"user-{i:05d}"
        d.records.create_subject(service, sid, "us")
        d.records.write(
            service,
            sid,
            "contact",
            "main",
            {
                "email": f"{sid}@example.com",
                "phone": f"+1 555 {i:04d}",
                "postal_address": f"{i} Main Street, Springfield",
                "email_verified": True,
            },
        )
    alice = d.principals.get("operator:alice")
    scope = Scope(
        "us",
        frozenset({"contact"}),
        frozenset({"contact.email", "contact.phone", "contact.email_verified"}),
        (),
        SUBJECTS,
    )
    now = d.clock.now()
    from datetime import timedelta

    record = d.access.submit(
        requester=alice.id,
        scope=scope,
        purpose="customer_support",
        ticket="BENCH-1",
        duration=timedelta(hours=8),
        now=now,
    )
    for approver, signer in keys.items():
        note = sign_approval(
            signer, record.request, approver=approver, decision=ApprovalDecision.APPROVE, time=now
        )
        d.access.record_approval(record.request.id, note, now=d.clock.now())
    return alice


def run(callers: int, seconds: float, op: Callable[[int], Any]) -> dict[str, float]:
    stop = time.perf_counter() + seconds
    samples: list[list[float]] = [[] for _ in range(callers)]

    def worker(w: int) -> None:
        rng = random.Random(w)
        out = samples[w]
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            op(rng.randrange(SUBJECTS))
            out.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(callers)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    flat = [s for per in samples for s in per]
    return {
        "per_s": len(flat) / elapsed,
        "p50_ms": statistics.median(flat) * 1000,
        "p99_ms": percentile(flat, 99) * 1000,
    }


def run_async(callers: int, seconds: float, op: Callable[[int], Awaitable[Any]]) -> dict[str, float]:
    """``callers`` asyncio tasks in one event loop, each awaiting its read in turn."""

    async def main() -> tuple[list[float], float]:
        stop = time.perf_counter() + seconds
        samples: list[float] = []

        async def worker(w: int) -> None:
            rng = random.Random(w)
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                await op(rng.randrange(SUBJECTS))
                samples.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(callers)))
        return samples, time.perf_counter() - start

    samples, elapsed = asyncio.run(main())
    return {
        "per_s": len(samples) / elapsed,
        "p50_ms": statistics.median(samples) * 1000,
        "p99_ms": percentile(samples, 99) * 1000,
    }


def measure(kind: str, seconds: float, results: dict[str, Any], rows: list[list[Any]]) -> None:
    with deployment(kind) as d:
        alice = seed(d)
        gateway, records = d.gateway, d.records
        fields = ["email", "phone", "email_verified"]

        def through_gateway(i: int) -> None:
            got = gateway.read(
                alice,
                subject_id=f"user-{i:05d}",
                collection="contact",
                record_id="main",
                purpose="customer_support",
            )
            if "email" not in got.record.fields or "postal_address" in got.record.fields:
                raise AssertionError("masking is wrong")

        def store_alone(i: int) -> None:
            records.read(f"user-{i:05d}", "contact", "main", fields=fields)

        async def through_gateway_async(i: int) -> None:
            got = await gateway.read_async(
                alice,
                subject_id=f"user-{i:05d}",
                collection="contact",
                record_id="main",
                purpose="customer_support",
            )
            if "email" not in got.record.fields or "postal_address" in got.record.fields:
                raise AssertionError("masking is wrong")

        for i in range(SUBJECTS):  # claim every bulk slot and warm the caches
            through_gateway(i)
        for callers in (1, 16):
            for name, op in (
                ("store read alone (threads)", store_alone),
                ("through the gateway (threads)", through_gateway),
            ):
                r = run(callers, seconds, op)
                results[f"{kind}_{callers}_{name.split(' (')[0].replace(' ', '_')}_threads"] = r
                p50, p99 = f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}"
                rows.append([f"{kind}: {name}", callers, r["per_s"], p50, p99])
            r = run_async(callers, seconds, through_gateway_async)
            results[f"{kind}_{callers}_through_the_gateway_asyncio"] = r
            p50, p99 = f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}"
            rows.append([f"{kind}: through the gateway (asyncio tasks)", callers, r["per_s"], p50, p99])
        results[f"{kind}_log_size"] = d.log.size


def main(argv: list[str]) -> None:
    seconds = 2.0 if "--quick" in argv else 5.0
    results: dict[str, Any] = {}
    rows: list[list[Any]] = []
    for kind in ("sqlite", "postgres"):
        measure(kind, seconds, results, rows)
    print_table(
        "Authorized protected reads (decide + durable log + read + decrypt + mask)",
        ["what", "callers", "per second", "p50 ms", "p99 ms"],
        rows,
    )
    write_json("gateway", results)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
