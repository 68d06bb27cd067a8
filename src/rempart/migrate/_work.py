"""The CPU-bound part of a migration, run in worker processes (or in-process): plan, seal, open, hash.

Jobs and results are plain picklable values. A worker holds its own handle on
the custodian's keyring (the same file the store uses), so it wraps new subject
keys and seals records exactly as :class:`~rempart.store.region.RegionStore`
does, with the store's own functions; no database is touched here.
"""

from __future__ import annotations

import multiprocessing
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from rempart.crypto import AeadCipher
from rempart.errors import InvalidInput, RempartError
from rempart.migrate.mapping import MigrationMapping
from rempart.migrate.progress import COUNT_KEYS, Counts, QuarantineEntry
from rempart.migrate.source import SourceKey, SourceRow, raw_text
from rempart.migrate.transform import (
    Reason,
    Rejection,
    RowPlan,
    RowTransformer,
    batch_digest,
    record_leaf,
)
from rempart.store.catalog import Catalog
from rempart.store.keys import KeyCustody, LocalKeyring
from rempart.store.region import (
    SealedRecord,
    SubjectKeyRow,
    open_record,
    open_subject_keys,
    prepare_subject_keys,
    seal_record,
)
from rempart.store.service import RecordService

RecordKey = tuple[str, str, str]
T = TypeVar("T")
_CACHE = 50_000


@dataclass(frozen=True, slots=True)
class WorkContext:
    """What every worker needs: the mapping, the catalog, each region's key ring, the keyring file."""

    mapping: MigrationMapping
    catalog: Catalog
    rings: Mapping[str, str]
    keyring: Path | None = None


@dataclass(frozen=True, slots=True)
class SealJob:
    """One batch to decide and seal, with what the directory and the regions already hold."""

    seq: int
    rows: Sequence[SourceRow]
    homes: Mapping[str, str]
    keys: Mapping[str, SubjectKeyRow]
    existing: frozenset[RecordKey]
    committed: frozenset[str]
    now: datetime


@dataclass(slots=True)
class RegionPart:
    """A batch's part in one region: new subjects' keys, sealed records, and the region's leaves."""

    keys: list[SubjectKeyRow] = field(default_factory=list)
    commitments: list[str] = field(default_factory=list)
    records: list[SealedRecord] = field(default_factory=list)
    leaves: list[bytes] = field(default_factory=list)
    subjects: int = 0

    def digest(self) -> str:
        return batch_digest(self.leaves)


@dataclass(slots=True)
class SealedBatch:
    seq: int
    first_key: SourceKey
    last_key: SourceKey
    parts: dict[str, RegionPart]
    counts: Counts
    quarantine: list[QuarantineEntry]
    digest: str
    claims: dict[str, str]


@dataclass(frozen=True, slots=True)
class PlanJob:
    """A batch to decide again without sealing (verification, purge): rows, homes, keys to skip."""

    seq: int
    rows: Sequence[SourceRow]
    homes: Mapping[str, str]
    skip: frozenset[SourceKey]


@dataclass(slots=True)
class PlannedBatch:
    seq: int
    leaves: list[tuple[str, RecordKey, bytes]]
    """(region, record key, leaf) of every record, in source order."""
    failures: list[tuple[SourceKey, str]]
    keys: list[SourceKey]

    def digest(self) -> str:
        return batch_digest(leaf for _, _, leaf in self.leaves)


@dataclass(frozen=True, slots=True)
class OpenJob:
    """Stored records of one region to open and hash (the destination side of verification)."""

    region: str
    records: Sequence[SealedRecord]
    keys: Mapping[str, SubjectKeyRow]


def plan_rows(transformer: RowTransformer, job: PlanJob) -> PlannedBatch:
    """Decide a batch again without sealing: the leaves of what migrates, and rows that no longer do."""
    leaves: list[tuple[str, RecordKey, bytes]] = []
    failures: list[tuple[SourceKey, str]] = []
    keys: list[SourceKey] = []
    for row in job.rows:
        if row.key in job.skip:
            continue
        plan = transformer.plan(row, job.homes)
        if isinstance(plan, Rejection):
            failures.append((row.key, f"{plan.reason.value}: {plan.message}"))
            continue
        keys.append(row.key)
        for rec in plan.records:
            leaves.append(
                (
                    plan.region,
                    (plan.subject_id, rec.collection, rec.record_id),
                    record_leaf(plan.region, plan.subject_id, rec),
                )
            )
    return PlannedBatch(job.seq, leaves, failures, keys)


class _Worker:
    def __init__(self, context: WorkContext, custody: KeyCustody) -> None:
        self.context = context
        self.custody = custody
        self.transformer = RowTransformer(context.mapping, context.catalog)
        self.ciphers: OrderedDict[tuple[str, str], AeadCipher] = OrderedDict()

    def cipher(self, region: str, row: SubjectKeyRow) -> AeadCipher:
        slot = (region, row.subject_id)
        cipher = self.ciphers.get(slot)
        if cipher is None:
            cipher, _ = open_subject_keys(self.custody, self.context.rings[region], region, row)
            self.ciphers[slot] = cipher
            if len(self.ciphers) > _CACHE:
                self.ciphers.popitem(last=False)
        return cipher

    def seal(self, job: SealJob) -> SealedBatch:
        catalog = self.context.catalog
        homes = dict(job.homes)
        fresh: dict[str, AeadCipher] = {}
        claims: dict[str, str] = {}
        seen: set[RecordKey] = set()
        parts: dict[str, RegionPart] = {}
        counts: Counts = {}
        quarantine: list[QuarantineEntry] = []
        leaves: list[bytes] = []
        for row in job.rows:
            plan = self.transformer.plan(row, homes)
            if isinstance(plan, RowPlan):
                plan = self._check_duplicates(plan, job.existing, seen)
            if isinstance(plan, Rejection):
                slot = counts.setdefault(plan.counted_in, dict.fromkeys(COUNT_KEYS, 0))
                slot["read"] += 1
                slot["quarantined"] += 1
                quarantine.append(
                    QuarantineEntry(
                        plan.key, job.seq, plan.region, plan.reason.value, plan.message, raw_text(row)
                    )
                )
                continue
            region, subject_id = plan.region, plan.subject_id
            part = parts.setdefault(region, RegionPart())
            slot = counts.setdefault(region, dict.fromkeys(COUNT_KEYS, 0))
            slot["read"] += 1
            slot["migrated"] += 1
            slot["records"] += len(plan.records)
            homes.setdefault(subject_id, region)
            for rec in plan.records:
                seen.add((subject_id, rec.collection, rec.record_id))
                leaf = record_leaf(region, subject_id, rec)
                leaves.append(leaf)
                part.leaves.append(leaf)
            if region in job.committed:
                continue  # written by an earlier attempt of this batch: counted, not written again
            cipher = fresh.get(subject_id)
            if cipher is None:
                stored = job.keys.get(subject_id)
                if stored is not None:
                    cipher = self.cipher(region, stored)
                else:
                    prepared = prepare_subject_keys(
                        self.custody, self.context.rings[region], region, subject_id, job.now
                    )
                    cipher = AeadCipher(prepared.data_key)
                    part.keys.append(prepared.row)
                    part.commitments.append(prepared.commitment())
                    part.subjects += 1
                    slot["subjects"] += 1
                    claims[subject_id] = region
                fresh[subject_id] = cipher
            for rec in plan.records:
                part.records.append(
                    seal_record(
                        cipher,
                        region=region,
                        spec=catalog.collection(rec.collection),
                        subject_id=subject_id,
                        record_id=rec.record_id,
                        fields=rec.fields,
                        updated_at=job.now,
                    )
                )
        return SealedBatch(
            seq=job.seq,
            first_key=job.rows[0].key,
            last_key=job.rows[-1].key,
            parts=parts,
            counts=counts,
            quarantine=quarantine,
            digest=batch_digest(leaves),
            claims=claims,
        )

    @staticmethod
    def _check_duplicates(
        plan: RowPlan, existing: frozenset[RecordKey], seen: set[RecordKey]
    ) -> RowPlan | Rejection:
        for rec in plan.records:
            key = (plan.subject_id, rec.collection, rec.record_id)
            if key in seen or key in existing:
                return Rejection(
                    plan.key,
                    Reason.DUPLICATE_RECORD,
                    f"the subject already has a {rec.collection} record {rec.record_id!r} "
                    "(an earlier row, or data already in the store)",
                    plan.region,
                )
        return plan

    def plan(self, job: PlanJob) -> PlannedBatch:
        return plan_rows(self.transformer, job)

    def open(self, job: OpenJob) -> list[tuple[RecordKey, bytes | str]]:
        """Leaf of each stored record after opening it, or why it did not open."""
        out: list[tuple[RecordKey, bytes | str]] = []
        for sealed in job.records:
            key = (sealed.subject_id, sealed.collection, sealed.record_id)
            row = job.keys.get(sealed.subject_id)
            if row is None:
                out.append((key, "the region holds no keys for the record's subject"))
                continue
            try:
                record = open_record(self.cipher(job.region, row), job.region, sealed)
            except RempartError as exc:
                out.append((key, exc.message))
                continue
            out.append((key, record_leaf(job.region, sealed.subject_id, record)))
        return out


def work_context(service: RecordService, mapping: MigrationMapping, custody: KeyCustody) -> WorkContext:
    """The workers' context for a deployment: each region's ring, and the keyring file if it is one."""
    keyring = custody.path if isinstance(custody, LocalKeyring) else None
    return WorkContext(mapping, service.catalog, {n: s.ring for n, s in service.regions.items()}, keyring)


_worker: _Worker | None = None


def init_worker(context: WorkContext, custody: KeyCustody | None = None) -> None:
    """Set up this process's worker (a pool initializer); opens the keyring file when no custody is given."""
    global _worker
    if custody is None:
        if context.keyring is None:
            raise RempartError("a migration worker needs the keyring file")
        custody = LocalKeyring.open(context.keyring)
    _worker = _Worker(context, custody)


def _current() -> _Worker:
    if _worker is None:
        raise RempartError("the migration worker was not initialised")
    return _worker


def seal_batch(job: SealJob) -> SealedBatch:
    worker = _current()
    with worker.custody.pinned():  # one look at the keyring per batch, not one per wrapped key
        return worker.seal(job)


def plan_batch(job: PlanJob) -> PlannedBatch:
    return _current().plan(job)


def open_batch(job: OpenJob) -> list[tuple[RecordKey, bytes | str]]:
    worker = _current()
    with worker.custody.pinned():
        return worker.open(job)


class WorkPool:
    """Worker processes (``workers`` > 0, started with *spawn*) or this process; same jobs, same results.

    In-process work runs when it is submitted and returns a finished future,
    so callers pipeline the same way either way.
    """

    def __init__(self, context: WorkContext, *, workers: int, custody: KeyCustody | None = None) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._local: _Worker | None = None
        if workers > 0:
            if context.keyring is None:
                raise InvalidInput("worker processes need the keyring file (the deployment's [keyring] path)")
            self._pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker,
                initargs=(context,),
            )
        else:
            if custody is None:
                if context.keyring is None:
                    raise InvalidInput("in-process work needs a key custody or the keyring file")
                custody = LocalKeyring.open(context.keyring)
            self._local = _Worker(context, custody)
        self.workers = workers

    def _run(self, fn: Callable[[Any], T], method: Callable[[_Worker, Any], T], job: Any) -> Future[T]:
        if self._pool is not None:
            return self._pool.submit(fn, job)
        future: Future[T] = Future()
        try:
            if self._local is None:
                raise RempartError("the work pool is closed")
            future.set_result(method(self._local, job))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def seal(self, job: SealJob) -> Future[SealedBatch]:
        return self._run(seal_batch, _Worker.seal, job)

    def plan(self, job: PlanJob) -> Future[PlannedBatch]:
        return self._run(plan_batch, _Worker.plan, job)

    def open(self, job: OpenJob) -> Future[list[tuple[RecordKey, bytes | str]]]:
        return self._run(open_batch, _Worker.open, job)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> WorkPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
