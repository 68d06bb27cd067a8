"""Where a migration keeps its progress: runs, batches and quarantine in the control database,
and one marker per batch in each region database, written in the same transaction as the rows.

Control database (schema steps ``migrate-…``):

* ``migrate_runs``: one row per run (its id is the mapping's ``migration.name``):
  the mapping's digest, the source description, start and end, and the results
  of verification, purge and attestation;
* ``migrate_batches``: one row per batch: its first and last source key, its
  counts per region, its digest, and ``pending`` (decided and on the record,
  maybe not yet written everywhere) or ``done``;
* ``migrate_quarantine``: each quarantined row with its reason, a message and
  the raw row. This holds legacy personal data in clear until the custodian
  resolves it: it lives in the custodian's control database, never in the log.

Region database: ``migrate_region_batches`` (run, batch, records, subjects,
digest): present if and only if that batch's rows for that region committed,
because it is inserted in the same transaction as the rows. It holds no
personal data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rempart.db import Database, Transaction
from rempart.errors import Conflict, NotFound
from rempart.migrate.source import SourceKey
from rempart.migrate.transform import decode_key, encode_key

__all__ = [
    "CONTROL_SCHEMA",
    "COUNT_KEYS",
    "REGION_SCHEMA",
    "BatchState",
    "Counts",
    "ProgressStore",
    "QuarantineEntry",
    "RunState",
    "add_counts",
    "count_totals",
    "region_committed",
    "write_region_marker",
]

CONTROL_SCHEMA: list[tuple[str, str]] = [
    (
        "migrate-0001",
        """
        CREATE TABLE migrate_runs (
            run_id TEXT PRIMARY KEY,
            mapping_sha256 TEXT NOT NULL,
            source TEXT NOT NULL,
            batch_size {bigint} NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            verified_at TEXT,
            verification TEXT,
            purged_at TEXT,
            purge TEXT,
            attested_at TEXT,
            attestation TEXT
        );
        CREATE TABLE migrate_batches (
            run_id TEXT NOT NULL,
            seq {bigint} NOT NULL,
            first_key TEXT NOT NULL,
            last_key TEXT NOT NULL,
            status TEXT NOT NULL,
            counts TEXT NOT NULL,
            digest TEXT NOT NULL,
            event_index {bigint},
            purged {bigint},
            PRIMARY KEY (run_id, seq)
        );
        CREATE TABLE migrate_quarantine (
            run_id TEXT NOT NULL,
            source_key TEXT NOT NULL,
            seq {bigint} NOT NULL,
            region TEXT,
            reason TEXT NOT NULL,
            message TEXT NOT NULL,
            raw TEXT NOT NULL,
            PRIMARY KEY (run_id, source_key)
        );
        CREATE INDEX migrate_quarantine_by_batch ON migrate_quarantine (run_id, seq)
        """,
    )
]

REGION_SCHEMA: list[tuple[str, str]] = [
    (
        "migrate-region-0001",
        """
        CREATE TABLE migrate_region_batches (
            run_id TEXT NOT NULL,
            seq {bigint} NOT NULL,
            records {bigint} NOT NULL,
            subjects {bigint} NOT NULL,
            digest TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        )
        """,
    )
]

Counts = dict[str, dict[str, int]]
"""region → {"read", "migrated", "quarantined", "records", "subjects"}."""

COUNT_KEYS = ("read", "migrated", "quarantined", "records", "subjects")


def add_counts(total: Counts, more: Mapping[str, Mapping[str, int]]) -> Counts:
    """Add per-region counts into ``total`` (in place) and return it."""
    for region, numbers in more.items():
        slot = total.setdefault(region, dict.fromkeys(COUNT_KEYS, 0))
        for key in COUNT_KEYS:
            slot[key] += int(numbers.get(key, 0))
    return total


def count_totals(counts: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """Per-region counts summed over the regions (the ``total`` row of a run)."""
    total = dict.fromkeys(COUNT_KEYS, 0)
    for numbers in counts.values():
        for key in COUNT_KEYS:
            total[key] += int(numbers.get(key, 0))
    return total


@dataclass(frozen=True, slots=True)
class RunState:
    run_id: str
    mapping_sha256: str
    source: Mapping[str, Any]
    batch_size: int
    started_at: str
    finished_at: str | None = None
    verified_at: str | None = None
    verification: Mapping[str, Any] | None = None
    purged_at: str | None = None
    purge: Mapping[str, Any] | None = None
    attested_at: str | None = None
    attestation: str | None = None


@dataclass(frozen=True, slots=True)
class BatchState:
    seq: int
    first_key: SourceKey
    last_key: SourceKey
    status: str
    counts: Counts
    digest: str
    event_index: int | None = None
    purged: int | None = None


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    key: SourceKey
    seq: int
    region: str | None
    reason: str
    message: str
    raw: str = field(repr=False)


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class ProgressStore:
    """Runs, batches and quarantine in the control database. Every change is one transaction."""

    def __init__(self, database: Database) -> None:
        self.db = database
        database.migrate(CONTROL_SCHEMA)

    # -- runs -----------------------------------------------------------------

    def start_run(
        self, run_id: str, *, mapping_sha256: str, source: Mapping[str, Any], batch_size: int, started_at: str
    ) -> RunState:
        """The run, created if new; Conflict if it exists under another mapping (a resume keeps it)."""
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO migrate_runs (run_id, mapping_sha256, source, batch_size, started_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING",
                (run_id, mapping_sha256, json.dumps(source, sort_keys=True), batch_size, started_at),
            )
        run = self.get_run(run_id)
        if run.mapping_sha256 != mapping_sha256:
            raise Conflict(
                f"run {run_id!r} was started with another mapping file (sha256 {run.mapping_sha256[:16]}…); "
                "a run resumes only with the mapping it started with: restore it, or name a new run",
                run=run_id,
            )
        if run.batch_size != batch_size:
            raise Conflict(
                f"run {run_id!r} was started with batch size {run.batch_size}, not {batch_size}", run=run_id
            )
        return run

    def find_run(self, run_id: str) -> RunState | None:
        row = self.db.query_one(
            "SELECT run_id, mapping_sha256, source, batch_size, started_at, finished_at, verified_at, "
            "verification, purged_at, purge, attested_at, attestation FROM migrate_runs WHERE run_id = ?",
            (run_id,),
        )
        if row is None:
            return None
        return RunState(
            row[0],
            row[1],
            json.loads(row[2]),
            int(row[3]),
            row[4],
            row[5],
            row[6],
            _json(row[7]),
            row[8],
            _json(row[9]),
            row[10],
            row[11],
        )

    def get_run(self, run_id: str) -> RunState:
        run = self.find_run(run_id)
        if run is None:
            raise NotFound(
                f"no migration run {run_id!r} in the control database; start it with `migrate run`"
            )
        return run

    def runs(self) -> list[str]:
        return [r[0] for r in self.db.query_all("SELECT run_id FROM migrate_runs ORDER BY run_id")]

    def _update_run(self, run_id: str, assignments: str, params: Iterable[Any]) -> None:
        with self.db.transaction() as tx:
            tx.execute(f"UPDATE migrate_runs SET {assignments} WHERE run_id = ?", (*params, run_id))

    def finish_run(self, run_id: str, finished_at: str) -> None:
        self._update_run(run_id, "finished_at = ?", (finished_at,))

    def reopen_run(self, run_id: str) -> None:
        """New source rows appeared after the end: the run goes on, and must be verified again."""
        self._update_run(
            run_id,
            "finished_at = NULL, verified_at = NULL, verification = NULL, "
            "attested_at = NULL, attestation = NULL",
            (),
        )

    def set_verification(self, run_id: str, verified_at: str | None, report: Mapping[str, Any]) -> None:
        self._update_run(
            run_id, "verified_at = ?, verification = ?", (verified_at, json.dumps(report, sort_keys=True))
        )

    def set_purge(self, run_id: str, purged_at: str | None, result: Mapping[str, Any]) -> None:
        self._update_run(run_id, "purged_at = ?, purge = ?", (purged_at, json.dumps(result, sort_keys=True)))

    def set_attestation(self, run_id: str, attested_at: str, note: str) -> None:
        self._update_run(run_id, "attested_at = ?, attestation = ?", (attested_at, note))

    # -- batches ----------------------------------------------------------------

    def begin_batch(
        self,
        run_id: str,
        *,
        seq: int,
        first_key: SourceKey,
        last_key: SourceKey,
        counts: Counts,
        digest: str,
        quarantine: Iterable[QuarantineEntry],
    ) -> None:
        """Record a decided batch as ``pending`` with its quarantined rows, in one transaction.

        Idempotent: a batch redone after a crash finds its row and its
        quarantine entries already there and leaves them as they are.
        """
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO migrate_batches (run_id, seq, first_key, last_key, status, counts, digest) "
                "VALUES (?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT (run_id, seq) DO NOTHING",
                (
                    run_id,
                    seq,
                    encode_key(first_key),
                    encode_key(last_key),
                    json.dumps(counts, sort_keys=True),
                    digest,
                ),
            )
            rows = [
                (run_id, encode_key(q.key), seq, q.region, q.reason, q.message, q.raw) for q in quarantine
            ]
            if rows:
                tx.executemany(
                    "INSERT INTO migrate_quarantine (run_id, source_key, seq, region, reason, message, raw) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, source_key) DO NOTHING",
                    rows,
                )

    def finish_batch(self, run_id: str, seq: int, *, event_index: int | None) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE migrate_batches SET status = 'done', event_index = ? WHERE run_id = ? AND seq = ?",
                (event_index, run_id, seq),
            )

    def set_purged(self, run_id: str, seq: int, deleted: int) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE migrate_batches SET purged = ? WHERE run_id = ? AND seq = ?", (deleted, run_id, seq)
            )

    def batches(self, run_id: str) -> list[BatchState]:
        rows = self.db.query_all(
            "SELECT seq, first_key, last_key, status, counts, digest, event_index, purged "
            "FROM migrate_batches WHERE run_id = ? ORDER BY seq",
            (run_id,),
        )
        return [
            BatchState(
                int(seq),
                decode_key(first),
                decode_key(last),
                status,
                json.loads(counts),
                digest,
                None if event is None else int(event),
                None if purged is None else int(purged),
            )
            for seq, first, last, status, counts, digest, event, purged in rows
        ]

    def totals(self, run_id: str, *, done_only: bool = True) -> Counts:
        """Counts per region summed over the run's batches (done ones only, by default)."""
        total: Counts = {}
        for batch in self.batches(run_id):
            if batch.status == "done" or not done_only:
                add_counts(total, batch.counts)
        return total

    # -- quarantine ---------------------------------------------------------------

    def quarantine(self, run_id: str, *, limit: int | None = None) -> list[QuarantineEntry]:
        sql = (
            "SELECT source_key, seq, region, reason, message, raw FROM migrate_quarantine WHERE run_id = ? "
            "ORDER BY seq, source_key"
        )
        params: tuple[Any, ...] = (run_id,)
        if limit is not None:
            sql += " LIMIT ?"
            params = (run_id, limit)
        return [
            QuarantineEntry(decode_key(k), int(s), r, reason, message, raw)
            for k, s, r, reason, message, raw in self.db.query_all(sql, params)
        ]

    def quarantined_keys(self, run_id: str) -> dict[int, set[SourceKey]]:
        """Batch → the source keys quarantined in it."""
        out: dict[int, set[SourceKey]] = {}
        for key, seq in self.db.query_all(
            "SELECT source_key, seq FROM migrate_quarantine WHERE run_id = ?", (run_id,)
        ):
            out.setdefault(int(seq), set()).add(decode_key(key))
        return out

    def quarantine_reasons(self, run_id: str) -> dict[str, int]:
        return {
            reason: int(n)
            for reason, n in self.db.query_all(
                "SELECT reason, COUNT(*) FROM migrate_quarantine WHERE run_id = ? "
                "GROUP BY reason ORDER BY reason",
                (run_id,),
            )
        }


def write_region_marker(
    tx: Transaction, *, run_id: str, seq: int, records: int, subjects: int, digest: str
) -> None:
    """The region's marker for a batch, inside the transaction that writes the batch's rows there."""
    tx.execute(
        "INSERT INTO migrate_region_batches (run_id, seq, records, subjects, digest) VALUES (?, ?, ?, ?, ?)",
        (run_id, seq, records, subjects, digest),
    )


def region_committed(database: Database, run_id: str, seq: int) -> bool:
    """Whether the region's part of a batch committed (its marker is there)."""
    return (
        database.query_one("SELECT 1 FROM migrate_region_batches WHERE run_id = ? AND seq = ?", (run_id, seq))
        is not None
    )
