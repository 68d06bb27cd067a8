"""Verification: the same digests and Merkle roots, computed from the source and, independently,
from the destination after decrypting.

* **Source side.** Every batch's key range is read again from the legacy
  source and decided again with the run's mapping (quarantined rows left out);
  each record's canonical form gives a leaf (RFC 6962 leaf hash).
* **Destination side.** Each region's stored records of those subjects are
  read back still sealed, opened with the subjects' keys (each record's
  envelope checked, public fields included), put in the same canonical form and hashed.
* **Compared.** Per batch: SHA-256 of the batch's leaves in source order, from
  each side and as recorded when the batch committed. Per region and overall:
  the RFC 6962 Merkle root over the leaves sorted by (subject, collection,
  record id). Any source row that is neither migrated nor quarantined (left
  behind) is a failure too.

The result is recorded (``migration.verified``) and kept with the run; purge
requires a matching one. A mismatch raises :class:`~rempart.errors.VerificationFailed`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from rempart.clock import Clock, format_time
from rempart.errors import Conflict, VerificationFailed
from rempart.migrate._work import (
    OpenJob,
    PlanJob,
    PlannedBatch,
    RecordKey,
    WorkContext,
    WorkPool,
    work_context,
)
from rempart.migrate.mapping import MigrationMapping
from rempart.migrate.progress import BatchState, ProgressStore
from rempart.migrate.source import LegacySource, PostgresSource, SourceRow
from rempart.migrate.transform import RowTransformer, batch_digest
from rempart.store.keys import KeyCustody
from rempart.store.records import Actor
from rempart.store.service import RecordService
from rempart.tlog.merkle import Frontier

__all__ = ["VerificationReport", "merkle_root", "source_batches", "verify_run"]

_MAX_PROBLEMS = 50


def merkle_root(leaves: Sequence[tuple[RecordKey, bytes]]) -> str:
    """Hex RFC 6962 root over leaves sorted by record key (the empty tree's root if none)."""
    frontier = Frontier()
    frontier.extend(leaf for _, leaf in sorted(leaves))
    return frontier.root().hex()


@dataclass(slots=True)
class VerificationReport:
    run_id: str
    regions: dict[str, dict[str, Any]] = field(default_factory=dict)
    root: dict[str, str] = field(default_factory=dict)
    batches: int = 0
    mismatched_batches: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    verified_at: str = ""

    @property
    def matches(self) -> bool:
        return self.problem_count == 0

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(text)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "result": "match" if self.matches else "mismatch",
            "regions": self.regions,
            "root": self.root,
            "batches": self.batches,
            "mismatched_batches": self.mismatched_batches,
            "problem_count": self.problem_count,
            "problems": self.problems,
            "verified_at": self.verified_at,
        }


def source_batches(
    source: LegacySource, batches: Sequence[BatchState], batch_size: int
) -> Iterator[tuple[BatchState | None, list[SourceRow]]]:
    """The source rows of each recorded batch, in order; then (None, rows) for rows after the last one.

    A PostgreSQL source is read range by range (its own ordering decides what
    lies in a range); a file is read once, split by line or row number.
    """
    if isinstance(source, PostgresSource):
        for batch in batches:
            yield batch, source.read_range(batch.first_key, batch.last_key)
        after = batches[-1].last_key if batches else None
        for rows in source.batches(after=after, size=batch_size):
            yield None, rows
        return
    pending = list(batches)
    index = 0
    current: list[SourceRow] = []
    for chunk in source.batches(after=None, size=batch_size):
        for row in chunk:
            while index < len(pending) and int(row.key) > int(pending[index].last_key):
                yield pending[index], current
                current = []
                index += 1
            if index < len(pending):
                current.append(row)
            else:
                yield None, [row]
    while index < len(pending):
        yield pending[index], current
        current = []
        index += 1


def verify_run(
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
    on_step: Callable[[str, int], None] | None = None,
) -> VerificationReport:
    """Verify a finished run; record ``migration.verified``; raise VerificationFailed on any mismatch."""
    run = progress.get_run(mapping.name)
    if run.finished_at is None:
        raise Conflict(f"run {mapping.name!r} is not finished; run it to the end before verifying")
    if run.mapping_sha256 != mapping.digest:
        raise Conflict(f"run {mapping.name!r} was made with another mapping file; verify with that one")
    batches = progress.batches(mapping.name)
    quarantined = progress.quarantined_keys(mapping.name)
    transformer = RowTransformer(mapping, service.catalog)
    custody = custody if custody is not None else next(iter(service.regions.values())).custody
    context = context or work_context(service, mapping, custody)
    report = VerificationReport(mapping.name, batches=len(batches))
    expected: dict[str, dict[RecordKey, bytes]] = {name: {} for name in service.regions}
    order: dict[int, list[RecordKey]] = {}
    with WorkPool(context, workers=workers, custody=custody) as pool:
        # Source side.
        planned: list[Future[PlannedBatch]] = []

        def take(future: Future[PlannedBatch]) -> None:
            result = future.result()
            recorded = by_seq[result.seq]
            if result.digest() != recorded.digest:
                report.mismatched_batches.append(result.seq)
                report.problem(
                    f"batch {result.seq}: the source now gives digest {result.digest()}, "
                    f"recorded {recorded.digest}"
                )
            for key, why in result.failures:
                report.problem(f"batch {result.seq}: source row {key!r} is no longer migratable ({why})")
            keys: list[RecordKey] = []
            for region, record_key, leaf in result.leaves:
                expected.setdefault(region, {})[record_key] = leaf
                keys.append(record_key)
            order[result.seq] = keys
            if on_step is not None:
                on_step("source", len(result.keys))

        by_seq = {b.seq: b for b in batches}
        for batch, rows in source_batches(source, batches, mapping.batch_size):
            if batch is None:
                for row in rows:
                    report.problem(
                        f"source row {row.key!r} was neither migrated nor quarantined (left behind)"
                    )
                continue
            homes = service.home_regions(transformer.subjects_of(rows))
            planned.append(
                pool.plan(PlanJob(batch.seq, rows, homes, frozenset(quarantined.get(batch.seq, ()))))
            )
            while len(planned) > 4:
                take(planned.pop(0))
        while planned:
            take(planned.pop(0))
        # Destination side.
        found: dict[RecordKey, bytes] = {}
        for region, wanted in sorted(expected.items()):
            store = service.regions.get(region)
            if store is None:
                continue
            subjects_sorted = sorted({k[0] for k in wanted})
            opening: list[Future[list[tuple[RecordKey, bytes | str]]]] = []

            def take_open(future: Future[list[tuple[RecordKey, bytes | str]]], region: str = region) -> None:
                results = future.result()
                for record_key, leaf in results:
                    if record_key not in expected[region]:
                        continue  # not from this run (stored before, or by the service)
                    if isinstance(leaf, str):
                        report.problem(f"{region}: a migrated record did not open: {leaf}")
                        continue
                    found[record_key] = leaf
                if on_step is not None:
                    on_step(f"destination {region}", len(results))

            for start in range(0, len(subjects_sorted), 500):
                chunk = subjects_sorted[start : start + 500]
                opening.append(pool.open(OpenJob(region, store.sealed_records(chunk), store.key_rows(chunk))))
                while len(opening) > 4:
                    take_open(opening.pop(0))
            while opening:
                take_open(opening.pop(0))
    # Compare.
    for batch in batches:
        keys = order.get(batch.seq, [])
        digest = batch_digest(found.get(k, b"") for k in keys)
        if digest != batch.digest and batch.seq not in report.mismatched_batches:
            report.mismatched_batches.append(batch.seq)
            report.problem(
                f"batch {batch.seq}: the destination gives digest {digest}, recorded {batch.digest}"
            )
    all_source: list[tuple[RecordKey, bytes]] = []
    all_destination: list[tuple[RecordKey, bytes]] = []
    for region, wanted in sorted(expected.items()):
        src = list(wanted.items())
        dst = [(k, found[k]) for k in wanted if k in found]
        missing = len(wanted) - len(dst)
        if missing:
            report.problem(f"{region}: {missing} migrated records are missing from the destination")
        differing = sum(1 for k, leaf in src if k in found and found[k] != leaf)
        if differing:
            report.problem(f"{region}: {differing} records differ between source and destination")
        source_root, destination_root = merkle_root(src), merkle_root(dst)
        report.regions[region] = {
            "records": len(src),
            "source_root": source_root,
            "destination_root": destination_root,
            "match": source_root == destination_root and not missing,
        }
        all_source += src
        all_destination += dst
    report.root = {"source": merkle_root(all_source), "destination": merkle_root(all_destination)}
    if report.root["source"] != report.root["destination"] and report.matches:
        report.problem("the overall roots differ")
    report.mismatched_batches.sort()
    now = format_time(clock.now())
    report.verified_at = now
    body = report.as_dict()
    event = {
        "run": mapping.name,
        "result": body["result"],
        "regions": body["regions"],
        "root": body["root"],
        "batches": body["batches"],
        "mismatched_batches": body["mismatched_batches"][:100],
        "problem_count": body["problem_count"],
        "requested_by": actor.as_entry(),
    }
    service.record_all([("migration.verified", event)])
    progress.set_verification(mapping.name, now if report.matches else None, body)
    if not report.matches:
        raise VerificationFailed(
            f"migration {mapping.name!r} does not verify: {report.problem_count} problem(s); first: "
            f"{report.problems[0]}",
            problems=report.problem_count,
            mismatched_batches=report.mismatched_batches[:20],
        )
    return report
