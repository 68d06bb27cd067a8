"""``rempart migrate …``: move legacy data into the regional stores, verify, purge, attest.

Every command takes the deployment file (``--config``, or ``$REMPART_CONFIG``)
and the mapping file (``--mapping``); progress is kept in the deployment's
control database, so ``run`` after a crash or Ctrl-C resumes where it stopped.
``--json`` prints one JSON document for scripts instead of tables and bars.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from rempart.cli._app import app, console, console_err, emit_json, inline_or_file
from rempart.clock import SystemClock
from rempart.config import Config, load_config
from rempart.errors import InvalidInput, NotFound
from rempart.events import LogRecorder
from rempart.keyfiles import write_secret_file
from rempart.log import load_signer, open_log
from rempart.log.sequencer import TransparencyLog
from rempart.migrate.attest import attest_run, verify_attestation
from rempart.migrate.attest import load_signer as load_migration_signer
from rempart.migrate.mapping import MigrationMapping, load_mapping
from rempart.migrate.plan import plan_migration
from rempart.migrate.progress import COUNT_KEYS, ProgressStore, count_totals
from rempart.migrate.purge import purge_run, require_purgeable, require_verified
from rempart.migrate.runner import BatchReport, MigrationRunner
from rempart.migrate.source import LegacySource, open_source
from rempart.migrate.verify import verify_run
from rempart.store.records import Actor
from rempart.store.service import RecordService
from rempart.tlog.note import Signer, Verifier

__all__ = ["migrate_app"]

migrate_app = typer.Typer(help="Legacy data → the regional stores: plan, run, status, verify, purge, attest.")
app.add_typer(migrate_app, name="migrate")

ConfigFile = Annotated[
    Path, typer.Option("--config", envvar="REMPART_CONFIG", help="The deployment file (rempart.toml).")
]
MappingFile = Annotated[Path, typer.Option("--mapping", help="The mapping file (TOML).")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Workers = Annotated[
    int,
    typer.Option(
        "--workers", min=0, max=64, help="Worker processes for sealing and hashing (0: in-process)."
    ),
]
Principal = Annotated[
    str, typer.Option("--principal", help="Who runs the migration, as recorded in the log (org: custodian).")
]
DEFAULT_CONFIG = Path("rempart.toml")


class RateColumn(ProgressColumn):
    """Rows per second, as measured by the progress bar."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("– rows/s" if not speed else f"{speed:,.0f} rows/s", style="progress.data.speed")


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=console_err,
        disable=not enabled,
    )


@dataclass
class Site:
    """The deployment opened for one command: config, log, store service, progress, mapping, source."""

    config: Config
    log: TransparencyLog
    service: RecordService
    progress: ProgressStore
    mapping: MigrationMapping
    source: LegacySource
    actor: Actor
    clock: SystemClock


@contextmanager
def _site(config_path: Path, mapping_path: Path, principal: str) -> Iterator[Site]:
    config = load_config(config_path)
    if not config.log.key_file.exists():
        raise NotFound(f"log key {config.log.key_file} does not exist; create the deployment's log key first")
    clock = SystemClock()
    log = open_log(
        config.log.database,
        load_signer(config.log.key_file),
        origin=config.log.origin,
        checkpoint_interval=config.log.checkpoint_interval,
    )
    try:
        service = RecordService.open(config, recorder=LogRecorder(log), clock=clock)
        try:
            mapping = load_mapping(mapping_path, catalog=config.catalog, regions=config.regions)
            source = open_source(mapping)
            try:
                progress = ProgressStore(service.directory.db)
                yield Site(
                    config, log, service, progress, mapping, source, Actor(principal, "custodian"), clock
                )
            finally:
                source.close()
        finally:
            service.close()
    finally:
        log.close()


def _counts_table(title: str, counts: dict[str, dict[str, int]]) -> Table:
    table = Table(title=title)
    for column in ("region", "read", "migrated", "quarantined", "records", "new subjects"):
        table.add_column(column, justify="left" if column == "region" else "right")
    for region, n in sorted(counts.items()):
        table.add_row(region, *(f"{n.get(k, 0):,}" for k in COUNT_KEYS))
    table.add_row("[bold]total", *(f"[bold]{v:,}" for v in count_totals(counts).values()))
    return table


@migrate_app.command("plan")
def plan(
    mapping: MappingFile,
    config: ConfigFile = DEFAULT_CONFIG,
    sample: Annotated[int | None, typer.Option(help="Decide only the first N rows.", min=1)] = None,
    principal: Principal = "svc-migration",
    json_out: JsonFlag = False,
) -> None:
    """Decide every row as a run would (regions, quarantine reasons, field categories); write nothing."""
    with _site(config, mapping, principal) as site, _progress(not json_out) as bar:
        task = bar.add_task("planning", total=sample or site.source.count())
        result = plan_migration(
            service=site.service,
            mapping=site.mapping,
            source=site.source,
            progress=site.progress,
            sample=sample,
            on_rows=lambda n: bar.advance(task, n),
        )
    if json_out:
        emit_json(result)
        return
    console.print(
        _counts_table(f"plan for run {result['run']} ({result['planned_rows']:,} rows)", result["regions"])
    )
    for reason, n in result["quarantine_reasons"].items():
        console.print(
            f"  would quarantine {n:,} ({reason}); e.g. {result['examples'][reason]}",
            highlight=False,
            markup=False,
        )
    for collection, fields in result["fields"].items():
        console.print(
            f"  {collection}: " + ", ".join(f"{f} ({c})" for f, c in fields.items()), highlight=False
        )


@migrate_app.command("run")
def run(
    mapping: MappingFile,
    config: ConfigFile = DEFAULT_CONFIG,
    workers: Workers = 0,
    principal: Principal = "svc-migration",
    json_out: JsonFlag = False,
) -> None:
    """Copy the legacy rows into their home regions, batch by batch; resumes a stopped run."""
    with _site(config, mapping, principal) as site, _progress(not json_out) as bar:
        runner = MigrationRunner(
            service=site.service,
            mapping=site.mapping,
            source=site.source,
            progress=site.progress,
            clock=site.clock,
            actor=site.actor,
            workers=workers,
        )
        done = sum(sum(n["read"] for n in b.counts.values()) for b in runner.start() if b.status == "done")
        task = bar.add_task(f"migrating {site.mapping.name}", total=site.source.count(), completed=done)

        def advance(report: BatchReport) -> None:
            bar.advance(task, report.rows)

        report = runner.run(on_batch=advance)
    totals = report.totals()
    result = {
        "run": report.run_id,
        "batches": report.batches,
        "redone": report.redone,
        "finished_at": report.finished_at,
        "regions": report.counts,
        "totals": totals,
    }
    if json_out:
        emit_json(result)
        return
    console.print(_counts_table(f"run {report.run_id}: {report.batches} batches", report.counts))
    if report.redone:
        console.print(f"finished {report.redone} batch(es) left pending by an interrupted run")
    console.print(
        f"migrated {totals['migrated']:,} of {totals['read']:,} rows; {totals['quarantined']:,} quarantined"
    )


@migrate_app.command("status")
def status(
    mapping: MappingFile,
    config: ConfigFile = DEFAULT_CONFIG,
    quarantine: Annotated[int, typer.Option(help="List this many quarantined rows.", min=0)] = 0,
    raw: Annotated[bool, typer.Option(help="Show the raw rows of listed quarantine entries.")] = False,
    principal: Principal = "svc-migration",
    json_out: JsonFlag = False,
) -> None:
    """Counts per region (read = migrated + quarantined), verification, purge, attestation."""
    with _site(config, mapping, principal) as site:
        run_state = site.progress.find_run(site.mapping.name)
        if run_state is None:
            raise NotFound(f"run {site.mapping.name!r} has not started; start it with `rempart migrate run`")
        batches = site.progress.batches(site.mapping.name)
        counts = site.progress.totals(site.mapping.name)
        entries = site.progress.quarantine(site.mapping.name, limit=quarantine) if quarantine else []
        result: dict[str, Any] = {
            "run": run_state.run_id,
            "started_at": run_state.started_at,
            "finished_at": run_state.finished_at,
            "batches": len(batches),
            "pending_batches": [b.seq for b in batches if b.status != "done"],
            "regions": counts,
            "quarantine_reasons": site.progress.quarantine_reasons(site.mapping.name),
            "verified_at": run_state.verified_at,
            "verification": (run_state.verification or {}).get("result"),
            "purged_at": run_state.purged_at,
            "purge": run_state.purge,
            "attested_at": run_state.attested_at,
            "quarantine": [
                {
                    "key": q.key,
                    "batch": q.seq,
                    "region": q.region,
                    "reason": q.reason,
                    "message": q.message,
                    **({"raw": q.raw} if raw else {}),
                }
                for q in entries
            ],
        }
    if json_out:
        emit_json(result)
        return
    console.print(_counts_table(f"run {result['run']} (started {result['started_at']})", counts))
    console.print(
        f"batches: {result['batches']}, pending: {result['pending_batches'] or 'none'}; "
        f"finished: {result['finished_at'] or 'no'}",
        highlight=False,
    )
    for reason, n in result["quarantine_reasons"].items():
        console.print(f"  quarantined {n:,}: {reason}", highlight=False)
    console.print(
        f"verification: {result['verification'] or 'not run'}; purge: "
        f"{'done ' + str(result['purged_at']) if result['purged_at'] else 'not done'}; "
        f"attestation: {result['attested_at'] or 'none'}",
        highlight=False,
    )
    for q in result["quarantine"]:
        where = f"batch {q['batch']}, region {q['region'] or '-'}"
        line = f"  [{q['reason']}] key {q['key']!r} ({where}): {q['message']}"
        console.print(
            line + (f"\n    raw: {q['raw']}" if raw else ""), highlight=False, soft_wrap=True, markup=False
        )


@migrate_app.command("verify")
def verify(
    mapping: MappingFile,
    config: ConfigFile = DEFAULT_CONFIG,
    workers: Workers = 0,
    principal: Principal = "svc-migration",
    json_out: JsonFlag = False,
) -> None:
    """Recompute digests and Merkle roots from the source and from the decrypted destination; compare."""
    with _site(config, mapping, principal) as site, _progress(not json_out) as bar:
        tasks: dict[str, Any] = {}
        counts = site.progress.totals(site.mapping.name)

        def step(name: str, n: int) -> None:
            if name not in tasks:
                total = sum(c["migrated"] for c in counts.values()) if name == "source" else None
                if name.startswith("destination "):
                    total = counts.get(name.split(" ", 1)[1], {}).get("records")
                tasks[name] = bar.add_task(name, total=total)
            bar.advance(tasks[name], n)

        report = verify_run(
            service=site.service,
            mapping=site.mapping,
            source=site.source,
            progress=site.progress,
            clock=site.clock,
            actor=site.actor,
            workers=workers,
            on_step=step,
        )
    body = report.as_dict()
    if json_out:
        emit_json(body)
        return
    table = Table(title=f"verification of run {report.run_id}: {body['result']}")
    for column in ("region", "records", "source root", "destination root"):
        table.add_column(column)
    for region, r in sorted(report.regions.items()):
        table.add_row(
            region, f"{r['records']:,}", r["source_root"][:16] + "…", r["destination_root"][:16] + "…"
        )
    table.add_row("[bold]all", "", report.root["source"][:16] + "…", report.root["destination"][:16] + "…")
    console.print(table)
    console.print(f"{report.batches} batch digests match on both sides", highlight=False)


@migrate_app.command("purge")
def purge(
    mapping: MappingFile,
    config: ConfigFile = DEFAULT_CONFIG,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: delete the migrated legacy rows.")] = False,
    principal: Principal = "svc-migration",
    json_out: JsonFlag = False,
) -> None:
    """Delete the verified, migrated rows from the PostgreSQL legacy table (quarantined rows are kept)."""
    if not yes:
        console_err.print("purge deletes legacy rows; run again with --yes to confirm")
        raise typer.Exit(2)
    with _site(config, mapping, principal) as site:
        require_purgeable(site.source)
        require_verified(site.progress.get_run(site.mapping.name))
        counts = site.progress.totals(site.mapping.name)
        with _progress(not json_out) as bar:
            task = bar.add_task("purging", total=sum(c["migrated"] for c in counts.values()))
            result = purge_run(
                service=site.service,
                mapping=site.mapping,
                source=site.source,
                progress=site.progress,
                clock=site.clock,
                actor=site.actor,
                on_batch=lambda n: bar.advance(task, n),
            )
    if json_out:
        emit_json({"run": result.run_id, **result.as_dict()})
        return
    console.print(
        f"deleted {result.deleted:,} legacy rows; {result.remaining} remain; "
        f"{result.kept_quarantined:,} quarantined rows kept",
        highlight=False,
    )


@migrate_app.command("attest")
def attest(
    mapping: MappingFile,
    key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            envvar="REMPART_MIGRATION_KEY",
            help="The custodian's migration key file (default: the mapping's migration.key_file).",
        ),
    ] = None,
    config: ConfigFile = DEFAULT_CONFIG,
    output: Annotated[Path | None, typer.Option(help="Also write the signed note here.")] = None,
    principal: Principal = "svc-migration",
    json_out: JsonFlag = False,
) -> None:
    """Sign the run's statement with the custodian's migration key and record it in the log."""
    with _site(config, mapping, principal) as site:
        key_file = key or site.mapping.key_file
        if key_file is None:
            raise InvalidInput(
                "attest needs the custodian's migration key: --key FILE, or migration.key_file"
            )
        signer = load_migration_signer(key_file)
        attestation = attest_run(
            service=site.service,
            progress=site.progress,
            run_id=site.mapping.name,
            signer=signer,
            clock=site.clock,
            actor=site.actor,
            deployment=site.config.name,
        )
    if output is not None:
        try:
            output.write_bytes(attestation.note)
        except OSError as exc:
            raise InvalidInput(
                f"the attestation is recorded and kept with the run, but {output} cannot be written: {exc}"
            ) from exc
    if json_out:
        emit_json(
            {
                "note": attestation.note.decode(),
                "statement": attestation.statement,
                "log_index": attestation.position.index,
            }
        )
        return
    console.print(attestation.note.decode(), highlight=False, soft_wrap=True, markup=False)
    console.print(f"recorded in the log at index {attestation.position.index}")


@migrate_app.command("check-attestation")
def check_attestation(
    note: Annotated[Path, typer.Argument(help="The signed attestation note.")],
    vkey: Annotated[str, typer.Option("--vkey", help="The custodian's migration verifier key, or @FILE.")],
    json_out: JsonFlag = False,
) -> None:
    """Verify an attestation's signature offline with the custodian's public key; print its statement."""
    text = inline_or_file(vkey, "--vkey")
    try:
        signed = note.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read the attestation {note}: {exc.strerror}") from exc
    verifier = Verifier.parse(text)
    statement = verify_attestation(signed, verifier)
    if json_out:
        emit_json(statement)
        return
    console.print(f"attestation of run {statement['run']} verified: signed by {verifier.name}")
    console.print(_counts_table("attested counts", statement["regions"]))


@migrate_app.command("keygen")
def keygen(
    name: Annotated[str, typer.Option(help="Key name, e.g. custodian.example/migration.")],
    out: Annotated[Path, typer.Option(help="Private key file to create (mode 0600).")],
) -> None:
    """Create the custodian's migration signing key; print its verifier key for auditors."""
    signer = Signer.generate(name)
    write_secret_file(out, (signer.skey() + "\n").encode())
    print(signer.vkey())
