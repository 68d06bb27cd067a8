"""The plan: what a run would do, from the source and the directory as they are now; writes nothing.

Every row (or the first ``sample`` rows) is decided with the run's own code:
how many would go to each region, how many would be quarantined and why, and
which catalog category each mapped field has (so the operator sees which
values will be sealed). Duplicates across the source are found by the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rempart.migrate.mapping import MigrationMapping
from rempart.migrate.progress import COUNT_KEYS, Counts, ProgressStore
from rempart.migrate.source import LegacySource
from rempart.migrate.transform import Rejection, RowTransformer
from rempart.store.service import RecordService

__all__ = ["plan_migration"]


def plan_migration(
    *,
    service: RecordService,
    mapping: MigrationMapping,
    source: LegacySource,
    progress: ProgressStore | None = None,
    sample: int | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Decide the source's rows (all, or the first ``sample``) and summarise; nothing is written."""
    transformer = RowTransformer(mapping, service.catalog)
    counts: Counts = {}
    reasons: dict[str, int] = {}
    examples: dict[str, str] = {}
    seen = 0
    after = None
    if progress is not None:
        batches = progress.batches(mapping.name) if progress.find_run(mapping.name) else []
        after = batches[-1].last_key if batches else None
    for rows in source.batches(after=after, size=mapping.batch_size):
        if sample is not None:
            rows = rows[: max(0, sample - seen)]
        homes = service.home_regions(transformer.subjects_of(rows))
        for row in rows:
            plan = transformer.plan(row, homes)
            if isinstance(plan, Rejection):
                slot = counts.setdefault(plan.counted_in, dict.fromkeys(COUNT_KEYS, 0))
                slot["read"] += 1
                slot["quarantined"] += 1
                reasons[plan.reason.value] = reasons.get(plan.reason.value, 0) + 1
                examples.setdefault(plan.reason.value, f"row {plan.key!r}: {plan.message}")
                continue
            slot = counts.setdefault(plan.region, dict.fromkeys(COUNT_KEYS, 0))
            slot["read"] += 1
            slot["migrated"] += 1
            slot["records"] += len(plan.records)
            if plan.subject_id not in homes:
                homes[plan.subject_id] = plan.region
                slot["subjects"] += 1
        seen += len(rows)
        if on_rows is not None:
            on_rows(len(rows))
        if sample is not None and seen >= sample:
            break
    fields: dict[str, dict[str, str]] = {}
    for rec in mapping.records:
        spec = service.catalog.collection(rec.collection)
        fields[rec.collection] = {f.field: spec.field(f.field).category.value for f in rec.fields}
        if rec.fields_from:
            fields[rec.collection]["*"] = f"from column {rec.fields_from!r}, checked per row"
    return {
        "run": mapping.name,
        "source": mapping.source.describe(),
        "source_rows": source.count(),
        "resumes_after": after,
        "planned_rows": seen,
        "sampled": sample is not None,
        "regions": counts,
        "quarantine_reasons": dict(sorted(reasons.items())),
        "examples": examples,
        "fields": fields,
        "batch_size": mapping.batch_size,
    }
