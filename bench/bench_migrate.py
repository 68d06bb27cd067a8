"""Migration benchmark: rows per second from a PostgreSQL legacy table into the regional stores,
side by side with PostgreSQL's own COPY of the same table into a plain table (the floor).

The legacy table ``legacy_users`` has one row per user (id, user_id, country,
email, phone, postal_address, verified), generated and loaded with COPY. Every
row becomes a new subject (keys generated and wrapped by the custodian's
keyring) with one ``contact`` record of four sealed fields, routed by country
(US → region ``us``, the rest → ``row``). Both regions, the control database
and the legacy database are PostgreSQL databases on the same server; the log
is a SQLite file (durable appends).

Measured in one run:

* **COPY floor**: ``COPY legacy_users TO STDOUT`` captured once, then timed
  ``COPY plain FROM STDIN`` into an unindexed copy of the table;
* **store floor**: after the run, the rows it wrote (directory claims, wrapped
  subject keys, sealed records, public values) captured with ``COPY … TO
  STDOUT``, then timed ``COPY … FROM STDIN`` into empty tables of the store's
  own schema (keys, indexes, foreign key) in a scratch database: what
  PostgreSQL alone must do for any client to land these rows;
* **migrate run**: ``MigrationRunner.run`` end to end (source read with a
  server-side cursor, routing, directory claims, key generation and wrapping,
  AES-256-GCM sealing as the store does, source digests and leaves, log
  events, region writes with their markers, progress);
* **migrate verify**: ``verify_run`` (source re-read and decided again,
  destination read back, every record opened and hashed, roots compared);
* **run + verify**: everything on, rows over the sum of both times.

``python -m bench migrate [--quick] [--workers N] [--rows N]``; ``REMPART_BENCH_PG``
sets the server (default postgresql://postgres@127.0.0.1:5432/postgres).
Writes ``bench/results/migrate.json``.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from bench.report import print_table, write_json
from rempart.clock import SystemClock
from rempart.config import load_config
from rempart.db import Database
from rempart.events import LogRecorder
from rempart.log import create_signer, open_log
from rempart.migrate.mapping import load_mapping
from rempart.migrate.progress import ProgressStore
from rempart.migrate.runner import MigrationRunner
from rempart.migrate.source import open_source
from rempart.migrate.verify import verify_run
from rempart.store import directory, region
from rempart.store.records import Actor
from rempart.store.service import RecordService

PG_ADMIN = os.environ.get("REMPART_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
COUNTRIES = ["US", "US", "FR", "DE", "GB", "BR", "IN", "JP"]
COLUMNS = "id, user_id, country, email, phone, postal_address, verified"


def _dsn(name: str) -> str:
    params = conninfo_to_dict(PG_ADMIN)
    return (
        f"postgresql://{params.get('user') or 'postgres'}@{params.get('host') or '127.0.0.1'}:"
        f"{params.get('port') or '5432'}/{name}"
    )


@contextmanager
def databases(*names: str) -> Iterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:8]
    made = {n: f"bench_mig_{n}_{tag}" for n in names}
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        for db in made.values():
            conn.execute(f'CREATE DATABASE "{db}"')
    try:
        yield {n: _dsn(db) for n, db in made.items()}
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            for db in made.values():
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def make_legacy(dsn: str, rows: int) -> bytes:
    """Create and fill ``legacy_users`` with COPY; return the table's COPY text (for the floor)."""
    rng = random.Random(7)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE legacy_users (id bigint PRIMARY KEY, user_id text NOT NULL, country text, "
            "email text, phone text, postal_address text, verified boolean)"
        )
        with conn.cursor() as cur, cur.copy(f"COPY legacy_users ({COLUMNS}) FROM STDIN") as copy:
            for i in range(1, rows + 1):
                copy.write_row(
                    (
                        i,
                        f"user-{i:09d}",
                        COUNTRIES[rng.randrange(len(COUNTRIES))],
                        f"person{i}@example.com",
                        f"+1 555 {i % 10_000_000:07d}",
                        f"{i % 9999} Main Street, Springfield",
                        bool(i % 3),
                    )
                )
        conn.execute("VACUUM ANALYZE legacy_users")
        buf = io.BytesIO()
        with conn.cursor() as cur, cur.copy(f"COPY legacy_users ({COLUMNS}) TO STDOUT") as copy:
            for chunk in copy:
                buf.write(chunk)
    return buf.getvalue()


def copy_floor(dsn: str, data: bytes, rows: int) -> float:
    """Seconds for PostgreSQL's COPY of the same rows into a plain table on the same server."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE plain_users (LIKE legacy_users)")
        start = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY plain_users ({COLUMNS}) FROM STDIN") as copy:
            view = memoryview(data)
            for offset in range(0, len(data), 1 << 20):
                copy.write(view[offset : offset + (1 << 20)])
        elapsed = time.perf_counter() - start
        (count,) = conn.execute("SELECT count(*) FROM plain_users").fetchone() or (0,)
        if count != rows:
            raise RuntimeError(f"COPY loaded {count} rows, expected {rows}")
        conn.execute("DROP TABLE plain_users")
    return elapsed


STORE_TABLES = [  # (database the migration wrote it in, table), in an order the foreign key accepts
    ("control", "store_subjects"),
    ("us", "store_subject_keys"),
    ("row", "store_subject_keys"),
    ("us", "store_records"),
    ("row", "store_records"),
    ("us", "store_public_values"),
    ("row", "store_public_values"),
]


def store_floor(dsns: dict[str, str]) -> tuple[float, int]:
    """Seconds for PostgreSQL to COPY the rows the migration wrote into empty store tables; row count."""
    captured: list[tuple[str, bytes]] = []
    for name, table in STORE_TABLES:
        with psycopg.connect(dsns[name]) as conn, conn.cursor() as cur:
            buf = io.BytesIO()
            with cur.copy(f"COPY {table} TO STDOUT") as copy:
                for chunk in copy:
                    buf.write(chunk)
            captured.append((table, buf.getvalue()))
    scratch = Database.open(dsns["scratch"])
    try:
        scratch.migrate(directory.SCHEMA)
        scratch.migrate(region.SCHEMA)
    finally:
        scratch.close()
    rows = 0
    with psycopg.connect(dsns["scratch"], autocommit=True) as conn:
        start = time.perf_counter()
        for table, data in captured:
            with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN") as copy:
                copy.write(data)
        elapsed = time.perf_counter() - start
        for table in dict.fromkeys(table for _, table in STORE_TABLES):
            (count,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone() or (0,)
            rows += int(count)
    return elapsed, rows


def write_deployment(folder: Path, dsns: dict[str, str], batch: int) -> tuple[Path, Path]:
    config = folder / "rempart.toml"
    config.write_text(
        f"""
[deployment]
name = "bench-migrate"
[control]
database = "{dsns["control"]}"
[log]
database = "sqlite:///log.db"
origin = "bench.example/log"
key_file = "keys/log.key"
[keyring]
path = "keys/keyring.json"
[regions.us]
store = "{dsns["us"]}"
kek = "us"
[regions.row]
store = "{dsns["row"]}"
kek = "row"
"""
    )
    mapping = folder / "mapping.toml"
    mapping.write_text(
        f"""
[migration]
name = "bench"
batch_size = {batch}
[source]
kind = "postgresql"
url = "{dsns["legacy"]}"
table = "legacy_users"
key = "id"
[subject]
column = "user_id"
[region]
column = "country"
map = {{ US = "us" }}
default = "row"
[[records]]
collection = "contact"
record_id = "main"
[records.fields]
email = "email"
phone = "phone"
postal_address = "postal_address"
email_verified = "verified"
"""
    )
    create_signer(folder / "keys" / "log.key", "bench.example/log")
    return config, mapping


def migrate(folder: Path, config_path: Path, mapping_path: Path, workers: int) -> dict[str, Any]:
    config = load_config(config_path)
    from rempart.log import load_signer

    log = open_log(config.log.database, load_signer(config.log.key_file), origin=config.log.origin)
    clock = SystemClock()
    service = RecordService.open(config, recorder=LogRecorder(log), clock=clock)
    try:
        mapping = load_mapping(mapping_path, catalog=config.catalog, regions=config.regions)
        source = open_source(mapping)
        progress = ProgressStore(service.directory.db)
        actor = Actor("svc-migration", "custodian")
        runner = MigrationRunner(
            service=service,
            mapping=mapping,
            source=source,
            progress=progress,
            clock=clock,
            actor=actor,
            workers=workers,
        )
        start = time.perf_counter()
        report = runner.run()
        run_s = time.perf_counter() - start
        start = time.perf_counter()
        verified = verify_run(
            service=service,
            mapping=mapping,
            source=source,
            progress=progress,
            clock=clock,
            actor=actor,
            workers=workers,
        )
        verify_s = time.perf_counter() - start
        source.close()
        return {
            "run_s": run_s,
            "verify_s": verify_s,
            "totals": report.totals(),
            "batches": report.batches,
            "root": verified.root["destination"],
            "log_entries": log.size,
        }
    finally:
        service.close()
        log.close()


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    rows = 100_000 if quick else 1_000_000
    workers = 2
    batch = 5000
    for i, arg in enumerate(argv):
        if arg == "--workers":
            workers = int(argv[i + 1])
        if arg == "--rows":
            rows = int(argv[i + 1])
        if arg == "--batch":
            batch = int(argv[i + 1])
    folder = Path(tempfile.mkdtemp(prefix="bench-migrate-"))
    try:
        with databases("legacy", "control", "us", "row", "scratch") as dsns:
            print(f"generating {rows:,} legacy rows with COPY …", flush=True)
            data = make_legacy(dsns["legacy"], rows)
            floor_s = copy_floor(dsns["legacy"], data, rows)
            config, mapping = write_deployment(folder, dsns, batch)
            print(f"migrating with {workers} worker process(es), batches of {batch} …", flush=True)
            result = migrate(folder, config, mapping, workers)
            store_s, store_rows = store_floor(dsns)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    totals = result["totals"]
    if totals["migrated"] != rows:
        raise RuntimeError(f"migrated {totals['migrated']} of {rows} rows")
    copy_rate = rows / floor_s
    run_rate = rows / result["run_s"]
    verify_rate = rows / result["verify_s"]
    all_rate = rows / (result["run_s"] + result["verify_s"])
    store_rate = rows / store_s
    table = [
        ("PostgreSQL COPY into a plain table (floor)", f"{floor_s:.2f}", round(copy_rate), "100%"),
        (
            f"PostgreSQL COPY of the {store_rows:,} store rows written (store floor)",
            f"{store_s:.2f}",
            round(store_rate),
            f"{store_rate / copy_rate:.1%}",
        ),
        (
            "migrate run (route, keys, seal, digests, log)",
            f"{result['run_s']:.2f}",
            round(run_rate),
            f"{run_rate / copy_rate:.1%}",
        ),
        (
            "migrate verify (source + decrypted destination)",
            f"{result['verify_s']:.2f}",
            round(verify_rate),
            f"{verify_rate / copy_rate:.1%}",
        ),
        (
            "run + verify (everything on)",
            f"{result['run_s'] + result['verify_s']:.2f}",
            round(all_rate),
            f"{all_rate / copy_rate:.1%}",
        ),
    ]
    print_table(
        f"migration of {rows:,} legacy rows ({workers} workers, batches of {batch})",
        ["path", "seconds", "rows/s", "of COPY"],
        table,
    )
    write_json(
        "migrate",
        {
            "rows": rows,
            "workers": workers,
            "batch_size": batch,
            "copy_floor": {"seconds": floor_s, "rows_per_s": copy_rate},
            "store_floor": {
                "seconds": store_s,
                "store_rows": store_rows,
                "rows_per_s": store_rate,
                "of_copy": store_rate / copy_rate,
            },
            "run": {"seconds": result["run_s"], "rows_per_s": run_rate, "of_copy": run_rate / copy_rate},
            "verify": {
                "seconds": result["verify_s"],
                "rows_per_s": verify_rate,
                "of_copy": verify_rate / copy_rate,
            },
            "run_and_verify": {"rows_per_s": all_rate, "of_copy": all_rate / copy_rate},
            "goal_of_copy": 0.25,
            "batches": result["batches"],
            "log_entries": result["log_entries"],
            "totals": totals,
        },
    )


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
