"""Transparency log benchmark, side by side in one run.

* durable appends per second: bulk, and 1 / 8 / 64 concurrent appenders each
  acknowledged on its own (threads and asyncio tasks), on SQLite and PostgreSQL;
  pymerkle's SQLite tree doing the same bulk append;
* inclusion and consistency proof generation (from storage) and verification
  at N entries, against pymerkle at the same size;
* full verification of the N-entry log from its exported tiles, against the
  floor of two SHA-256 per entry with hashlib.

``python -m bench log [--quick]``; ``REMPART_BENCH_PG`` sets the PostgreSQL
server (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from bench.report import percentile, print_table, write_json
from rempart.log import open_log, open_storage
from rempart.log.export import export_tiles
from rempart.log.serving import LogReadPath
from rempart.log.source import DirectorySource
from rempart.tlog.merkle import (
    NodeId,
    consistency_proof,
    inclusion_proof,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from rempart.tlog.note import Signer
from rempart.tlog.verify import verify_tiles

PG_ADMIN = os.environ.get("REMPART_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SIGNER = Signer.generate("bench.example/log")


def entry(i: int) -> bytes:
    return b'{"type":"access.decision","i":%d,"who":"operator:alice","allowed":true}' % i


@contextmanager
def backend(kind: str) -> Iterator[str]:
    """A fresh database URL for ``kind`` (sqlite or postgres), removed afterwards."""
    if kind == "sqlite":
        folder = tempfile.mkdtemp(prefix="bench-log-")
        try:
            yield f"sqlite:///{folder}/log.db"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    name = f"bench_log_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bulk_append(url: str, n: int, batch: int = 10_000) -> float:
    batches = [[entry(i) for i in range(f, min(n, f + batch))] for f in range(0, n, batch)]
    with open_log(url, SIGNER) as log:
        start = time.perf_counter()
        for b in batches:
            log.append_many(b)
        elapsed = time.perf_counter() - start
    return n / elapsed


def threaded_appends(url: str, appenders: int, seconds: float) -> float:
    with open_log(url, SIGNER) as log:
        stop = time.perf_counter() + seconds
        counts = [0] * appenders

        def worker(w: int) -> None:
            i = 0
            while time.perf_counter() < stop:
                log.append(entry(w * 10_000_000 + i))
                i += 1
            counts[w] = i

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(appenders)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(counts) / (time.perf_counter() - start)


def async_appends(url: str, appenders: int, seconds: float) -> float:
    with open_log(url, SIGNER) as log:

        async def run() -> int:
            stop = time.perf_counter() + seconds

            async def worker(w: int) -> int:
                i = 0
                while time.perf_counter() < stop:
                    await log.append_async(entry(w * 10_000_000 + i))
                    i += 1
                return i

            return sum(await asyncio.gather(*(worker(w) for w in range(appenders))))

        start = time.perf_counter()
        total = asyncio.run(run())
        return total / (time.perf_counter() - start)


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """(mean ms, p99 ms) of ``fn`` over ``repeats`` calls."""
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.fmean(samples), percentile(samples, 99)


def proof_timings(url: str, n: int, repeats: int) -> dict[str, tuple[float, float]]:
    storage = open_storage(url)
    try:
        rng = random.Random(7)
        root = tree_root(n, storage)
        old = n // 3
        old_root = tree_root(old, storage)
        indexes = [rng.randrange(n) for _ in range(repeats)]
        it = iter(indexes)
        incl = timed(lambda: inclusion_proof(next(it), n, storage), repeats)
        proof = inclusion_proof(indexes[0], n, storage)
        leaf = storage.read_hashes([NodeId(0, indexes[0])])[0]
        incl_verify = timed(lambda: verify_inclusion(leaf, indexes[0], n, proof, root), repeats)
        cons = timed(lambda: consistency_proof(old, n, storage), repeats)
        cproof = consistency_proof(old, n, storage)
        cons_verify = timed(lambda: verify_consistency(old, n, old_root, root, cproof), repeats)
    finally:
        storage.close()
    return {
        "inclusion_prove": incl,
        "inclusion_verify": incl_verify,
        "consistency_prove": cons,
        "consistency_verify": cons_verify,
    }


def pymerkle_run(n: int, repeats: int) -> dict[str, Any]:
    from pymerkle import SqliteTree
    from pymerkle import verify_consistency as pm_verify_consistency
    from pymerkle import verify_inclusion as pm_verify_inclusion

    folder = tempfile.mkdtemp(prefix="bench-pymerkle-")
    try:
        tree = SqliteTree(f"{folder}/tree.db")
        entries = [entry(i) for i in range(n)]
        start = time.perf_counter()
        tree.append_entries(entries)
        bulk = n / (time.perf_counter() - start)
        rng = random.Random(7)
        old = n // 3
        tree.get_state(n)  # warm its subroot cache like our first proof warms SQLite's
        indexes = [rng.randrange(1, n + 1) for _ in range(repeats)]
        it = iter(indexes)
        incl = timed(lambda: tree.prove_inclusion(next(it), n), repeats)
        proof = tree.prove_inclusion(indexes[0], n)
        base = tree.get_leaf(indexes[0])
        state = tree.get_state(n)
        incl_verify = timed(lambda: pm_verify_inclusion(base, state, proof), repeats)
        cons = timed(lambda: tree.prove_consistency(old, n), repeats)
        cproof = tree.prove_consistency(old, n)
        old_state = tree.get_state(old)
        cons_verify = timed(lambda: pm_verify_consistency(old_state, state, cproof), repeats)
        tree.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "bulk_per_s": bulk,
        "inclusion_prove": incl,
        "inclusion_verify": incl_verify,
        "consistency_prove": cons,
        "consistency_verify": cons_verify,
    }


def hashing_floor(n: int) -> float:
    """Seconds for two SHA-256 per entry (leaf hash + one node hash), the least any verifier does."""
    entries = [entry(i) for i in range(n)]
    sha = hashlib.sha256
    start = time.perf_counter()
    leaves = [sha(b"\x00" + e).digest() for e in entries]
    for i in range(0, len(leaves) - 1, 2):
        sha(b"\x01" + leaves[i] + leaves[i + 1]).digest()
    for h in leaves[: len(leaves) // 2]:
        sha(b"\x01" + h + h).digest()
    return time.perf_counter() - start


def full_verification(url: str, n: int) -> tuple[float, float]:
    """(export seconds, verify seconds) of the n-entry log from its tiles in a directory."""
    storage = open_storage(url)
    folder = Path(tempfile.mkdtemp(prefix="bench-tiles-"))
    try:
        with open_log(url, SIGNER) as log:
            log.publish_checkpoint()
        reader = LogReadPath(storage)
        t0 = time.perf_counter()
        export_tiles(reader, folder)
        exported = time.perf_counter() - t0
        source = DirectorySource(folder)
        root = tree_root(n, storage)
        t0 = time.perf_counter()
        verify_tiles(n, root, lambda t: source.fetch(t.path()))
        verified = time.perf_counter() - t0
    finally:
        storage.close()
        shutil.rmtree(folder, ignore_errors=True)
    return exported, verified


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    n = 100_000 if quick else 1_000_000
    seconds = 1.0 if quick else 3.0
    repeats = 500 if quick else 2000
    results: dict[str, Any] = {"entries": n}
    rows: list[list[Any]] = []

    for kind in ("sqlite", "postgres"):
        with backend(kind) as url:
            rate = bulk_append(url, n)
            results[f"{kind}_bulk_per_s"] = rate
            rows.append([f"{kind}: bulk append ({n:,} in batches of 10k)", rate])
            proofs = proof_timings(url, n, repeats)
            results[f"{kind}_proofs_ms"] = proofs
            if kind == "sqlite":
                results["export_s"], results["full_verification_s"] = full_verification(url, n)
        for appenders in (1, 8, 64):
            with backend(kind) as url:
                rate = threaded_appends(url, appenders, seconds)
            results[f"{kind}_threads_{appenders}_per_s"] = rate
            rows.append([f"{kind}: {appenders} threads, each acknowledged", rate])
            with backend(kind) as url:
                rate = async_appends(url, appenders, seconds)
            results[f"{kind}_asyncio_{appenders}_per_s"] = rate
            rows.append([f"{kind}: {appenders} asyncio tasks, each acknowledged", rate])

    pm = pymerkle_run(n, repeats)
    results["pymerkle"] = pm
    rows.append([f"pymerkle SqliteTree: bulk append ({n:,})", pm["bulk_per_s"]])
    floor = hashing_floor(n)
    results["hashing_floor_s"] = floor
    rows.append(["hashlib floor: 2×SHA-256 per entry", n / floor])
    print_table("Durable appends per second", ["what", "per second"], rows)

    proof_rows = []
    for name in ("inclusion_prove", "inclusion_verify", "consistency_prove", "consistency_verify"):
        proof_rows.append(
            [
                name,
                results["sqlite_proofs_ms"][name][0],
                results["sqlite_proofs_ms"][name][1],
                results["postgres_proofs_ms"][name][0],
                pm[name][0],
            ]
        )
    print_table(
        f"Proofs at {n:,} entries (ms)",
        ["operation", "sqlite mean", "sqlite p99", "postgres mean", "pymerkle mean"],
        [[r[0], *[f"{v:.4f}" for v in r[1:]]] for r in proof_rows],
    )
    verify_s = results["full_verification_s"]
    print_table(
        f"Full verification of {n:,} entries from tiles",
        ["what", "seconds", "x floor"],
        [
            ["rempart verify_tiles (from a tile directory)", f"{verify_s:.2f}", f"{verify_s / floor:.2f}"],
            ["hashlib floor (2×SHA-256 per entry)", f"{floor:.2f}", "1.00"],
        ],
    )
    results["full_verification_x_floor"] = verify_s / floor
    write_json("log", results)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
