"""``rempart audit …``: what an outside auditor runs against a log's public read path.

``sync`` mirrors and verifies the log incrementally; ``compare`` is the gossip
check between two parties' checkpoints. (Invariant replay and reports come
next, in this same file.)
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from rempart.audit.mirror import LogTrust, Mirror, compare_checkpoints
from rempart.cli._app import app, console, emit_json
from rempart.clock import SystemClock
from rempart.errors import InvalidInput
from rempart.log.source import open_source
from rempart.tlog.cosignature import CosignatureVerifier
from rempart.tlog.note import Verifier

__all__ = ["audit_app"]

audit_app = typer.Typer(help="Outside verification of a log: mirror and verify, compare checkpoints.")
app.add_typer(audit_app, name="audit")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
VkeyOption = Annotated[str, typer.Option("--vkey", help="The log's verifier key, or @FILE.")]
OriginOption = Annotated[str | None, typer.Option(help="Expected origin (default: the log key's name).")]


def _text_arg(value: str, what: str) -> str:
    """A key given inline or as @FILE."""
    if not value.startswith("@"):
        return value
    try:
        return Path(value[1:]).read_text().strip()
    except OSError as exc:
        raise InvalidInput(f"cannot read the {what} file {value[1:]}: {exc}") from exc


def _read_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read the {what} {path}: {exc}") from exc


def _trust(
    vkey_text: str, witnesses: list[str] | None, threshold: int | None, origin: str | None
) -> LogTrust:
    log = Verifier.parse(_text_arg(vkey_text, "log key"))
    keys = tuple(CosignatureVerifier.parse(_text_arg(w, "witness key")) for w in witnesses or [])
    if threshold is None:
        threshold = len(keys)
    return LogTrust(origin=origin or log.name, log=log, witnesses=keys, threshold=threshold)


@audit_app.command("sync")
def sync(
    url: Annotated[str, typer.Argument(help="The log's read path: https://…/log/ or a directory of tiles.")],
    state: Annotated[
        Path, typer.Option(help="The mirror's folder (entries, right edge, checkpoint, evidence).")
    ],
    vkey_text: VkeyOption,
    witness: Annotated[
        list[str] | None,
        typer.Option("--witness", help="A witness's cosignature key (repeat for each), or @FILE."),
    ] = None,
    witness_threshold: Annotated[
        int | None,
        typer.Option(help="How many of the --witness keys must cosign (default: all of them).", min=0),
    ] = None,
    origin: OriginOption = None,
    json_out: JsonFlag = False,
) -> None:
    """Mirror the log incrementally and verify it: signatures, cosignatures, consistency, every new entry."""
    trust = _trust(vkey_text, witness, witness_threshold, origin)
    source = open_source(url)
    try:
        with Mirror(state, trust=trust, clock=SystemClock()) as mirror:
            report = mirror.sync(source)
    finally:
        source.close()
    if json_out:
        emit_json(
            {
                "verified": True,
                "origin": report.origin,
                "size": report.size,
                "root": base64.b64encode(report.root).decode(),
                "previous_size": report.previous_size,
                "new_entries": report.new_entries,
                "cosigned_by": list(report.cosigned_by),
            }
        )
        return
    table = Table(title="log mirrored and verified", show_header=False)
    table.add_row("origin", report.origin)
    table.add_row("size", str(report.size))
    table.add_row("root", base64.b64encode(report.root).decode())
    table.add_row(
        "consistency",
        "first sync: state saved"
        if report.previous_size is None
        else f"consistent with the checkpoint of size {report.previous_size} verified before",
    )
    table.add_row("new entries", str(report.new_entries))
    table.add_row("cosigned by", ", ".join(report.cosigned_by) or "-")
    console.print(table)


@audit_app.command("compare")
def compare(
    first: Annotated[Path, typer.Argument(help="A signed checkpoint one party was served.")],
    second: Annotated[Path, typer.Argument(help="A signed checkpoint another party was served.")],
    vkey_text: VkeyOption,
    tiles: Annotated[
        str | None,
        typer.Option(help="The larger tree's read path (URL or directory), when the sizes differ."),
    ] = None,
    origin: OriginOption = None,
    json_out: JsonFlag = False,
) -> None:
    """Gossip: check that two signed checkpoints of one log can both be true (no split view)."""
    trust = _trust(vkey_text, None, None, origin)
    source = None if tiles is None else open_source(tiles)
    try:
        result = compare_checkpoints(
            _read_file(first, "checkpoint"), _read_file(second, "checkpoint"), trust=trust, tiles=source
        )
    finally:
        if source is not None:
            source.close()
    if json_out:
        emit_json({"consistent": True, "older_size": result.older.size, "newer_size": result.newer.size})
    else:
        console.print(
            f"consistent: the checkpoint of size {result.older.size} is a prefix of the one of size "
            f"{result.newer.size}",
            highlight=False,
        )
