"""Purge: delete the migrated legacy rows from a PostgreSQL source, once the run verified.

Batch by batch (resumable: a purged batch is marked in the control database),
in one source transaction each: the batch's rows are locked (``FOR UPDATE``),
decided again, and deleted only if they still give the digest that was
migrated and verified; quarantined rows are never deleted. A second pass then
counts what is left in the migrated key ranges outside the quarantine: it must
be zero. ``migration.purge.started`` is recorded before the first deletion
(fail closed) and ``migration.purged`` with the result at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rempart.clock import Clock, format_time
from rempart.errors import Conflict, InvalidInput, VerificationFailed
from rempart.migrate._work import PlanJob, plan_rows
from rempart.migrate.mapping import MigrationMapping
from rempart.migrate.progress import ProgressStore, RunState
from rempart.migrate.source import LegacySource, PostgresSource, SourceRow
from rempart.migrate.transform import RowTransformer
from rempart.store.records import Actor
from rempart.store.service import RecordService

__all__ = ["PurgeResult", "purge_run", "require_purgeable", "require_verified"]


@dataclass(frozen=True, slots=True)
class PurgeResult:
    run_id: str
    deleted: int
    remaining: int
    kept_quarantined: int
    batches: int
    purged_at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "deleted": self.deleted,
            "remaining": self.remaining,
            "kept_quarantined": self.kept_quarantined,
            "batches": self.batches,
            "purged_at": self.purged_at,
        }


def require_verified(run: RunState) -> None:
    """Refuse unless the run finished and a verification after its end matched."""
    if run.finished_at is None:
        raise Conflict(f"run {run.run_id!r} is not finished")
    result = (run.verification or {}).get("result")
    if run.verified_at is None or result != "match" or run.verified_at < run.finished_at:
        raise Conflict(
            f"run {run.run_id!r} has no successful verification since it finished; "
            "run `rempart migrate verify` first",
            run=run.run_id,
        )


def require_purgeable(source: LegacySource) -> PostgresSource:
    """The source if purge can delete from it (a PostgreSQL table), else InvalidInput saying why not."""
    if not isinstance(source, PostgresSource) or not source.spec.table:
        raise InvalidInput(
            "purge deletes rows from a PostgreSQL table source; a file or a query source is removed "
            "by its owner (delete the file, or the rows the query selects)"
        )
    return source


def purge_run(
    *,
    service: RecordService,
    mapping: MigrationMapping,
    source: LegacySource,
    progress: ProgressStore,
    clock: Clock,
    actor: Actor,
    on_batch: Callable[[int], None] | None = None,
) -> PurgeResult:
    """Delete the verified, migrated rows from the legacy table; raise VerificationFailed if any remain."""
    source = require_purgeable(source)
    run = progress.get_run(mapping.name)
    if run.mapping_sha256 != mapping.digest:
        raise Conflict(f"run {mapping.name!r} was made with another mapping file; purge with that one")
    require_verified(run)
    batches = progress.batches(mapping.name)
    quarantined = progress.quarantined_keys(mapping.name)
    transformer = RowTransformer(mapping, service.catalog)
    service.record_all(
        [
            (
                "migration.purge.started",
                {
                    "run": mapping.name,
                    "batches": len(batches),
                    "already_purged": sum(1 for b in batches if b.purged is not None),
                    "requested_by": actor.as_entry(),
                },
            )
        ]
    )
    deleted = sum(b.purged or 0 for b in batches)
    for batch in batches:
        if batch.purged is not None:
            continue
        keep = quarantined.get(batch.seq, set())

        def check(rows: list[SourceRow], seq: int = batch.seq, digest: str = batch.digest) -> None:
            homes = service.home_regions(transformer.subjects_of(rows))
            planned = plan_rows(transformer, PlanJob(seq, rows, homes, frozenset()))
            if planned.failures or planned.digest() != digest:
                raise VerificationFailed(
                    f"batch {seq}: the legacy rows changed since they were migrated and verified "
                    "(they no longer give the recorded digest); nothing of this batch was deleted",
                    batch=seq,
                )

        count = source.purge_range(batch.first_key, batch.last_key, keep, check)
        progress.set_purged(mapping.name, batch.seq, count)
        deleted += count
        if on_batch is not None:
            on_batch(count)
    remaining = 0
    for batch in batches:
        remaining += source.remaining(batch.first_key, batch.last_key, quarantined.get(batch.seq, set()))
    kept = sum(len(v) for v in quarantined.values())
    now = format_time(clock.now())
    result = PurgeResult(mapping.name, deleted, remaining, kept, len(batches), now)
    service.record_all(
        [
            (
                "migration.purged",
                {
                    "run": mapping.name,
                    "deleted": deleted,
                    "remaining": remaining,
                    "kept_quarantined": kept,
                    "batches": len(batches),
                    "requested_by": actor.as_entry(),
                },
            )
        ]
    )
    progress.set_purge(mapping.name, now if remaining == 0 else None, result.as_dict())
    if remaining:
        raise VerificationFailed(
            f"after the purge, {remaining} legacy rows remain in the migrated key ranges "
            "outside the quarantine",
            remaining=remaining,
        )
    return result
