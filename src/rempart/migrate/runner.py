"""The migration run: legacy rows → sealed records in their subjects' home regions, batch by batch.

Each batch of source rows (in source-key order) is decided and sealed by the
workers (:mod:`rempart.migrate._work`), then committed by this process in
order. The commit protocol of one batch, and why a crash (SIGKILL) at each
step is safe — resuming runs the same code:

1. **Events first.** ``store.subjects.created`` (one entry per region and per
   800 new subjects, listing their commitments) and ``migration.batch`` (counts
   per region, the batch digest) are recorded together and are durable before
   anything is written. If the log cannot record them the run stops with
   :class:`~rempart.errors.AuditUnavailable` and the batch writes nothing (fail
   closed). A crash after this step leaves entries for a batch that has no
   progress row: resuming reads the same rows again and records the batch again
   (an auditor takes the last ``migration.batch`` of a sequence number; counts
   and digest are the same because the decision is deterministic).
2. **Pending.** The batch row (``pending``, with its key range, counts and
   digest) and its quarantined rows go into the control database in one
   transaction. From here on the batch is decided: a resume redoes exactly
   this key range and checks that it decides the same digest.
3. **Claims.** New subjects are claimed in the directory, in one transaction,
   idempotently (a redo claims the same ids for the same regions again). A
   crash here leaves claims without keys; the redo gives those subjects keys.
4. **Regions.** For each region, one transaction inserts the new subjects'
   wrapped keys, the sealed records, their public-value index and the region's
   marker for the batch. Marker and rows commit together, so on a redo a
   region whose marker is there is skipped and a region without it has
   nothing of the batch: no row is ever copied twice.
5. **Done.** The batch row becomes ``done``. The run's position is the last
   key of its last batch.

Batches are sealed ahead by the workers while earlier ones commit; a batch
that shares a subject with a batch still in flight waits until that batch has
committed, so every batch is decided against committed state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from rempart.clock import Clock, format_time
from rempart.errors import Conflict
from rempart.log.sequencer import LogPosition
from rempart.migrate._work import SealedBatch, SealJob, WorkContext, WorkPool, work_context
from rempart.migrate.mapping import MigrationMapping
from rempart.migrate.progress import (
    REGION_SCHEMA,
    BatchState,
    Counts,
    ProgressStore,
    add_counts,
    count_totals,
    region_committed,
    write_region_marker,
)
from rempart.migrate.source import LegacySource, SourceRow
from rempart.migrate.transform import RowTransformer
from rempart.store.keys import KeyCustody
from rempart.store.records import Actor
from rempart.store.region import SubjectKeyRow
from rempart.store.service import RecordService

__all__ = ["BatchReport", "MigrationRunner", "RunReport"]


@dataclass(frozen=True, slots=True)
class BatchReport:
    """What one committed batch did (for progress displays)."""

    seq: int
    rows: int
    counts: Counts
    redone: bool
    position: LogPosition


@dataclass(frozen=True, slots=True)
class RunReport:
    run_id: str
    batches: int
    redone: int
    counts: Counts
    finished_at: str | None

    def totals(self) -> dict[str, int]:
        return count_totals(self.counts)


class MigrationRunner:
    """Runs (or resumes) one migration: the mapping's run id names it in the control database.

    Its log entries go through the record service's recorder (``service.record_all``),
    so the migration's entries and the store's share one log and one fail-closed path.
    """

    def __init__(
        self,
        *,
        service: RecordService,
        mapping: MigrationMapping,
        source: LegacySource,
        progress: ProgressStore,
        clock: Clock,
        actor: Actor,
        workers: int = 0,
        custody: KeyCustody | None = None,
        context: WorkContext | None = None,
        depth: int = 4,
    ) -> None:
        self.service = service
        self.mapping = mapping
        self.source = source
        self.progress = progress
        self.clock = clock
        self.actor = actor
        self.workers = workers
        self.custody = custody if custody is not None else next(iter(service.regions.values())).custody
        self.context = context or work_context(service, mapping, self.custody)
        self.depth = max(1, depth)
        self.transformer = RowTransformer(mapping, service.catalog)
        self.run_id = mapping.name
        for store in service.regions.values():
            store.db.migrate(REGION_SCHEMA)

    # -- the run -----------------------------------------------------------------

    def start(self) -> list[BatchState]:
        """Create or find the run; return its batches so far."""
        self.progress.start_run(
            self.run_id,
            mapping_sha256=self.mapping.digest,
            source=self.mapping.source.describe(),
            batch_size=self.mapping.batch_size,
            started_at=format_time(self.clock.now()),
        )
        return self.progress.batches(self.run_id)

    def run(self, *, on_batch: Callable[[BatchReport], None] | None = None) -> RunReport:
        """Redo pending batches, then copy every source row after the last batch; finish the run."""
        batches = self.start()
        run = self.progress.get_run(self.run_id)
        redone = 0
        committed = 0
        with WorkPool(self.context, workers=self.workers, custody=self.custody) as pool:
            for batch in batches:
                if batch.status == "pending":
                    report = self._redo(pool, batch)
                    redone += 1
                    if on_batch is not None:
                        on_batch(report)
            after = batches[-1].last_key if batches else None
            seq = batches[-1].seq + 1 if batches else 1
            inflight: deque[tuple[Future[SealedBatch], frozenset[str], int, bool]] = deque()

            def commit_oldest() -> None:
                nonlocal committed
                future, _, rows, _ = inflight.popleft()
                report = self._commit(future.result(), rows=rows, redo=False)
                committed += 1
                if on_batch is not None:
                    on_batch(report)

            try:
                for rows in self.source.batches(after=after, size=self.mapping.batch_size):
                    if run.finished_at is not None and committed == 0 and not inflight:
                        # New legacy rows after a finished run: it goes on, and must be verified again.
                        self.progress.reopen_run(self.run_id)
                        run = self.progress.get_run(self.run_id)
                    subjects = frozenset(self.transformer.subjects_of(rows))
                    while inflight and any(subjects & other for _, other, _, _ in inflight):
                        commit_oldest()
                    job = self._job(seq, rows, frozenset())
                    inflight.append((pool.seal(job), subjects, len(rows), False))
                    seq += 1
                    while len(inflight) > self.depth:
                        commit_oldest()
                while inflight:
                    commit_oldest()
            finally:
                for future, _, _, _ in inflight:
                    future.cancel()
        finished = None
        if all(b.status == "done" for b in self.progress.batches(self.run_id)):
            run = self.progress.get_run(self.run_id)
            finished = run.finished_at
            if finished is None or committed or redone:
                finished = format_time(self.clock.now())
                self.progress.finish_run(self.run_id, finished)
        return RunReport(
            self.run_id,
            len(self.progress.batches(self.run_id)),
            redone,
            self.progress.totals(self.run_id),
            finished,
        )

    # -- one batch ---------------------------------------------------------------

    def _job(self, seq: int, rows: list[SourceRow], committed: frozenset[str]) -> SealJob:
        """What the directory and the regions hold for the batch's subjects, read now (one query each)."""
        homes = self.service.home_regions(self.transformer.subjects_of(rows))
        by_region: dict[str, list[str]] = {}
        for subject_id, region in homes.items():
            by_region.setdefault(region, []).append(subject_id)
        keys: dict[str, SubjectKeyRow] = {}
        existing: set[tuple[str, str, str]] = set()
        for region, ids in by_region.items():
            store = self.service.regions.get(region)
            if store is None:
                continue
            found = store.key_rows(ids)
            keys.update(found)
            if found and region not in committed:
                existing |= store.record_keys(found)
        return SealJob(seq, rows, homes, keys, frozenset(existing), committed, self.clock.now())

    def _redo(self, pool: WorkPool, batch: BatchState) -> BatchReport:
        """Finish a batch that was decided (pending) when the last run stopped."""
        rows = self.source.read_range(batch.first_key, batch.last_key)
        if not rows:
            raise Conflict(
                f"batch {batch.seq} of run {self.run_id!r} was decided but its source rows "
                f"({batch.first_key!r} to {batch.last_key!r}) are gone: the source changed meanwhile",
                batch=batch.seq,
            )
        committed = frozenset(
            name
            for name, store in self.service.regions.items()
            if region_committed(store.db, self.run_id, batch.seq)
        )
        sealed = pool.seal(self._job(batch.seq, rows, committed)).result()
        if sealed.digest != batch.digest or _without_subjects(sealed.counts) != _without_subjects(
            batch.counts
        ):
            raise Conflict(
                f"batch {batch.seq} of run {self.run_id!r} decides differently now than when it was recorded "
                "(the legacy rows or the directory changed under a pending batch); it cannot be finished "
                "automatically",
                batch=batch.seq,
                recorded_digest=batch.digest,
                digest=sealed.digest,
            )
        return self._commit(sealed, rows=len(rows), redo=True, committed=committed)

    def _events(self, sealed: SealedBatch, redo: bool) -> list[tuple[str, Mapping[str, Any]]]:
        events: list[tuple[str, Mapping[str, Any]]] = []
        for region, part in sorted(sealed.parts.items()):
            by_kek: dict[str, list[str]] = {}
            for row, commitment in zip(part.keys, part.commitments, strict=True):
                by_kek.setdefault(row.data_key.key_id, []).append(commitment)
            for kek, commitments in sorted(by_kek.items()):
                events += self.service.subjects_created_events(self.actor, region, kek, commitments)
        totals = add_counts({}, sealed.counts)
        overall = count_totals(totals)
        reasons: dict[str, int] = {}
        for q in sealed.quarantine:
            reasons[q.reason] = reasons.get(q.reason, 0) + 1
        events.append(
            (
                "migration.batch",
                {
                    "run": self.run_id,
                    "batch": sealed.seq,
                    "first_key": sealed.first_key,
                    "last_key": sealed.last_key,
                    "regions": {
                        region: {
                            **numbers,
                            "digest": sealed.parts[region].digest() if region in sealed.parts else None,
                        }
                        for region, numbers in sorted(totals.items())
                    },
                    "read": overall["read"],
                    "migrated": overall["migrated"],
                    "quarantined": overall["quarantined"],
                    "quarantine_reasons": dict(sorted(reasons.items())),
                    "digest": sealed.digest,
                    "redo": redo,
                    "requested_by": self.actor.as_entry(),
                },
            )
        )
        return events

    def _commit(
        self, sealed: SealedBatch, *, rows: int, redo: bool, committed: Iterable[str] = ()
    ) -> BatchReport:
        # 1. Events first: durable before anything is written (fail closed).
        positions = self.service.record_all(self._events(sealed, redo))
        position = positions[-1]
        # 2. Decided: the pending batch row and its quarantine, one control transaction.
        self.progress.begin_batch(
            self.run_id,
            seq=sealed.seq,
            first_key=sealed.first_key,
            last_key=sealed.last_key,
            counts=sealed.counts,
            digest=sealed.digest,
            quarantine=sealed.quarantine,
        )
        # 3. New subjects claimed in the directory (idempotent).
        self.service.claim_subjects(sealed.claims, self.clock.now())
        # 4. One transaction per region: keys, records and the batch's marker together.
        skip = set(committed)
        for region, part in sorted(sealed.parts.items()):
            if region in skip:
                continue
            store = self.service.regions[region]

            def marker(tx: Any, part: Any = part) -> None:
                write_region_marker(
                    tx,
                    run_id=self.run_id,
                    seq=sealed.seq,
                    records=len(part.leaves),
                    subjects=part.subjects,
                    digest=part.digest(),
                )

            store.put_many(part.keys, part.records, within=marker)
        # 5. Done.
        self.progress.finish_batch(self.run_id, sealed.seq, event_index=position.index)
        return BatchReport(sealed.seq, rows, sealed.counts, redo, position)


def _without_subjects(counts: Counts) -> Counts:
    """Counts as a redo must reproduce them (subjects given keys by an earlier attempt are not new again)."""
    return {region: {k: v for k, v in n.items() if k != "subjects"} for region, n in counts.items()}
