"""Record store benchmark: a protected record through the store vs the same row with the driver alone.

Side by side in one run, on SQLite and on PostgreSQL:

* raw point read: ``SELECT`` of the record's row with sqlite3 / psycopg alone
  (prepared, no decryption); it and the store point read are timed in turns,
  twenty slices each, so that both see the same moments of the machine;
* store point read: ``RegionStore.get`` of the same row: key cache hit, the
  record's envelope (its four sealed fields) opened with AES-256-GCM, JSON decoded;
* store read through ``RecordService.read`` (adds the directory lookup in the
  control database), and a cold store read (data key unwrapped by the keyring
  every time: cache of one, subjects in turn);
* raw point write: ``UPDATE`` of the row with precomputed bytes, committed
  (durable) by the driver alone; store point write: ``RegionStore.put`` with its
  version check, encryption and public-value index, committed.

The goal of issue 3: a protected read costs at most 2x the raw read in-process.
``python -m bench store [--quick]``; ``REMPART_BENCH_PG`` sets the PostgreSQL
server (default postgresql://postgres@127.0.0.1:5432/postgres). Writes
``bench/results/store.json``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench.report import percentile, print_table, write_json
from rempart.clock import ManualClock
from rempart.config import EgressRules, RegionConfig
from rempart.db import Database
from rempart.events import LogRecorder
from rempart.log.memory import MemoryLogStorage
from rempart.log.sequencer import TransparencyLog
from rempart.store.catalog import default_catalog
from rempart.store.directory import SubjectDirectory
from rempart.store.egress import EgressBudgets
from rempart.store.keys import LocalKeyring
from rempart.store.records import Actor
from rempart.store.region import RegionStore
from rempart.store.service import RecordService

PG_ADMIN = os.environ.get("REMPART_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
NOW = datetime(2026, 1, 1, tzinfo=UTC)
RECORD = {
    "email": "ana.lopez@example.com",
    "phone": "+1 212 555 0100",
    "postal_address": "350 Fifth Avenue, New York, NY 10118",
    "email_verified": True,
}
SELECT_ROW = (
    "SELECT subject_id, collection, record_id, version, public_fields, sealed_fields, updated_at "
    "FROM store_records WHERE subject_id = ? AND collection = ? AND record_id = ?"
)
UPDATE_ROW = (
    "UPDATE store_records SET version = ?, public_fields = ?, sealed_fields = ?, "
    "updated_at = ? WHERE subject_id = ? AND collection = ? AND record_id = ?"
)


@contextmanager
def backend(kind: str) -> Iterator[tuple[str, str]]:
    """Fresh (region, control) database URLs for ``kind``, removed afterwards."""
    if kind == "sqlite":
        folder = tempfile.mkdtemp(prefix="bench-store-")
        try:
            yield f"sqlite:///{folder}/region.db", f"sqlite:///{folder}/control.db"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    names = [f"bench_store_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{names[0]}", f"{base}/{names[1]}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def timed(op: Callable[[int], object], n: int) -> list[float]:
    """Per-call wall time in microseconds, after a short warm-up."""
    for i in range(min(50, n)):
        op(i)
    samples = []
    for i in range(n):
        start = time.perf_counter_ns()
        op(i)
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def timed_side_by_side(
    ops: dict[str, Callable[[int], object]], n: int, rounds: int = 20
) -> dict[str, list[float]]:
    """:func:`timed` for several operations, taken in turns (``rounds`` slices of ``n`` calls each).

    Interleaving puts each operation through the same moments of the machine, so a
    burst of noise from elsewhere does not land on one side of the ratio only.
    """
    samples: dict[str, list[float]] = {name: [] for name in ops}
    size = max(1, n // rounds)
    for r in range(rounds):
        for name, op in ops.items():
            base = r * size
            samples[name] += timed(lambda i, op=op, base=base: op(base + i), size)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "median_us": statistics.median(samples),
        "p99_us": percentile(samples, 99),
        "ops_per_s": 1e6 / statistics.mean(samples),
    }


class RawDriver:
    """The same rows through the bare driver: what the store costs is measured against this."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.lite = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None)
            self.lite.execute("PRAGMA journal_mode=WAL")
            self.lite.execute("PRAGMA synchronous=FULL")  # as rempart.db: durable commits
        else:
            self.pg = psycopg.connect(url, autocommit=True)
        self.select = SELECT_ROW if kind == "sqlite" else SELECT_ROW.replace("?", "%s")
        self.update = UPDATE_ROW if kind == "sqlite" else UPDATE_ROW.replace("?", "%s")

    def read(self, key: tuple[str, str, str]) -> Any:
        if self.kind == "sqlite":
            return self.lite.execute(self.select, key).fetchone()
        return self.pg.execute(self.select, key, prepare=True).fetchone()

    def write(self, values: tuple[Any, ...]) -> None:
        if self.kind == "sqlite":
            self.lite.execute("BEGIN IMMEDIATE")
            self.lite.execute(self.update, values)
            self.lite.execute("COMMIT")
        else:
            self.pg.execute(self.update, values, prepare=True)

    def close(self) -> None:
        if self.kind == "sqlite":
            self.lite.close()
        else:
            self.pg.close()


def run_backend(kind: str, reads: int, writes: int, subjects: int, keyring: LocalKeyring) -> dict[str, Any]:
    with backend(kind) as (region_url, control_url):
        region_db, control_db = Database.open(region_url), Database.open(control_url)
        catalog = default_catalog()
        store = RegionStore(region="us", database=region_db, catalog=catalog, custody=keyring, ring="us")
        log = TransparencyLog(storage=MemoryLogStorage(), origin="bench/log", sign=lambda cp: b"")
        service = RecordService(
            catalog=catalog,
            directory=SubjectDirectory(control_db),
            regions={"us": store},
            rules={"us": RegionConfig("us", region_url, "us", EgressRules(), ())},
            budgets=EgressBudgets(control_db),
            recorder=LogRecorder(log),
            clock=ManualClock(NOW),
        )
        actor = Actor("bench", "operator")
        ids = [f"user-{i:06d}" for i in range(subjects)]
        for sid in ids:
            service.create_subject(actor, sid, "us")
            service.write(actor, sid, "contact", "main", RECORD)
        keys = [(sid, "contact", "main") for sid in ids]
        raw = RawDriver(kind, region_url)
        try:
            assert raw.read(keys[0]) is not None
            assert store.get(*keys[0]).fields == RECORD
            out: dict[str, Any] = {}
            side_by_side = timed_side_by_side(
                {
                    "raw_read": lambda i: raw.read(keys[i % subjects]),
                    "store_read": lambda i: store.get(*keys[i % subjects]),
                },
                reads,
            )
            out.update({name: summary(samples) for name, samples in side_by_side.items()})
            out["service_read"] = summary(timed(lambda i: service.read(*keys[i % subjects]), reads))
            cold = RegionStore(
                region="us", database=region_db, catalog=catalog, custody=keyring, ring="us", cache_size=1
            )
            out["store_read_cold_key"] = summary(timed(lambda i: cold.get(*keys[i % subjects]), reads // 4))
            versions = {k: store.get(*k).version for k in keys}

            def store_write(i: int) -> None:
                k = keys[i % subjects]
                versions[k] = store.put(*k, RECORD, expected_version=versions[k], now=NOW).version

            out["store_write"] = summary(timed(store_write, writes))
            # Raw write, measured last: each row rewritten with bytes prepared beforehand (no crypto, no
            # version check), alternating between two states so that every commit really changes the row.
            before = [raw.read(k)[3:7] for k in keys]
            for i in range(subjects):
                store_write(i)
            after = [raw.read(k)[3:7] for k in keys]
            current = {k: 1 for k in keys}  # which state each row holds now: "after"

            def raw_write(i: int) -> None:
                k = keys[i % subjects]
                current[k] ^= 1
                raw.write((*(before, after)[current[k]][i % subjects], *k))

            out["raw_write"] = summary(timed(raw_write, writes))
            out["read_ratio"] = out["store_read"]["median_us"] / out["raw_read"]["median_us"]
            out["service_read_ratio"] = out["service_read"]["median_us"] / out["raw_read"]["median_us"]
            out["write_ratio"] = out["store_write"]["median_us"] / out["raw_write"]["median_us"]
            return out
        finally:
            raw.close()
            log.close()
            region_db.close()
            control_db.close()


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    reads, writes, subjects = (2000, 200, 200) if quick else (20000, 1000, 1000)
    folder = Path(tempfile.mkdtemp(prefix="bench-keys-"))
    try:
        keyring = LocalKeyring.create(folder / "keyring.json", ["us"])
        results: dict[str, Any] = {
            "reads": reads,
            "writes": writes,
            "subjects": subjects,
            "record": "contact: 3 protected + 1 excepted field, sealed in one envelope",
        }
        rows: list[list[Any]] = []
        labels = {
            "raw_read": "raw point read (driver alone)",
            "store_read": "store point read (decrypt)",
            "service_read": "RecordService.read (directory + decrypt)",
            "store_read_cold_key": "store read, data key unwrapped each time",
            "raw_write": "raw point write (driver alone, committed)",
            "store_write": "store point write (encrypt, versioned, committed)",
        }
        for kind in ("sqlite", "postgres"):
            out = run_backend(kind, reads, writes, subjects, keyring)
            results[kind] = out
            base = {"read": out["raw_read"]["median_us"], "write": out["raw_write"]["median_us"]}
            for key, label in labels.items():
                s = out[key]
                ratio = s["median_us"] / base["write" if "write" in key else "read"]
                rows.append(
                    [f"{kind}: {label}", s["median_us"], s["p99_us"], s["ops_per_s"], f"{ratio:.2f}x"]
                )
        print_table(
            "Protected record vs raw row (in-process, median of per-call times)",
            ["operation", "median µs", "p99 µs", "ops/s", "vs raw"],
            rows,
        )
        for kind in ("sqlite", "postgres"):
            ratio = results[kind]["read_ratio"]
            verdict = "meets" if ratio <= 2.0 else "misses"
            print(f"{kind}: protected read / raw read = {ratio:.2f}x ({verdict} the 2x goal)")
        write_json("store", results)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
