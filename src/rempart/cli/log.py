"""``rempart log …``: run, inspect, prove and verify a transparency log."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from rempart.cli._app import app, console, emit_json, inline_or_file, read_text_file
from rempart.errors import InvalidInput, NotFound
from rempart.log import create_signer, load_signer, open_log, open_storage
from rempart.log.export import export_tiles
from rempart.log.serving import LogReadPath
from rempart.log.source import open_source
from rempart.log.verifier import verify_log
from rempart.tlog.checkpoint import Checkpoint
from rempart.tlog.note import Note, Verifier
from rempart.tlog.proof_file import ProofFile

log_app = typer.Typer(help="The transparency log: init, append, checkpoint, prove, export, verify.")
app.add_typer(log_app, name="log")

DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar="REMPART_DATA_DIR",
        help="Folder of the embedded deployment (log database and keys).",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
DEFAULT_DATA_DIR = Path("data")


class LocalLog:
    """The embedded layout: ``<data>/log.db`` and ``<data>/keys/log.key``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.database = data_dir / "log.db"
        self.key = data_dir / "keys" / "log.key"

    @property
    def url(self) -> str:
        return f"sqlite:///{self.database}"

    def require(self) -> None:
        if not self.key.exists():
            raise NotFound(
                f"no log in {self.data_dir}; create one with: rempart log init --data-dir {self.data_dir}"
            )


@log_app.command("init")
def init(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    origin: Annotated[
        str, typer.Option(help="The log's origin line, e.g. its URL prefix without scheme.")
    ] = "rempart.localhost/log",
) -> None:
    """Create a log: its signing key (mode 0600) and its database."""
    local = LocalLog(data_dir)
    signer = create_signer(local.key, origin)
    open_storage(local.url).close()
    console.print(f"created log [bold]{origin}[/] in {data_dir}")
    console.print(f"verifier key: {signer.vkey()}", highlight=False, soft_wrap=True)


@log_app.command("vkey")
def vkey(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Print the log's verifier key (name+id+key), for auditors and witnesses."""
    local = LocalLog(data_dir)
    local.require()
    print(load_signer(local.key).vkey())


@log_app.command("append")
def append(
    entries: Annotated[list[str] | None, typer.Argument(help="Entries, one per argument.")] = None,
    file: Annotated[
        Path | None, typer.Option(help="Append each line of this file ('-' for stdin).")
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    json_out: JsonFlag = False,
) -> None:
    """Append entries durably and publish a checkpoint."""
    local = LocalLog(data_dir)
    local.require()
    items = [e.encode() for e in entries or []]
    if file is not None:
        text = sys.stdin.read() if str(file) == "-" else read_text_file(file, "entries file")
        items.extend(line.encode() for line in text.splitlines() if line)
    if not items:
        raise InvalidInput("nothing to append: give entries as arguments or --file")
    with open_log(local.url, load_signer(local.key)) as log:
        positions = log.append_many(items)
        checkpoint = log.publish_checkpoint()
    if json_out:
        emit_json(
            {
                "appended": [{"index": p.index, "leaf_hash": p.leaf_hash.hex()} for p in positions],
                "size": checkpoint.size,
            }
        )
    else:
        console.print(f"appended {len(positions)} entries; log size {checkpoint.size}")


@log_app.command("checkpoint")
def checkpoint(data_dir: DataDir = DEFAULT_DATA_DIR, json_out: JsonFlag = False) -> None:
    """Publish a checkpoint if the log grew, and print the latest signed checkpoint."""
    local = LocalLog(data_dir)
    local.require()
    with open_log(local.url, load_signer(local.key)) as log:
        stored = log.publish_checkpoint()
    if json_out:
        cp = Checkpoint.parse(Note.parse(stored.note).text)
        emit_json(
            {
                "origin": cp.origin,
                "size": cp.size,
                "root": base64.b64encode(cp.root).decode(),
                "note": stored.note.decode(),
            }
        )
    else:
        sys.stdout.write(stored.note.decode())


@log_app.command("prove")
def prove(
    index: Annotated[int, typer.Option(help="The entry's index.", min=0)],
    size: Annotated[
        int | None,
        typer.Option(help="A checkpointed tree size (default: the latest checkpoint).", min=1),
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    output: Annotated[Path | None, typer.Option(help="Write the proof file here.")] = None,
) -> None:
    """Write a C2SP tlog-proof for one entry: checkable offline with the log's key."""
    local = LocalLog(data_dir)
    local.require()
    storage = open_storage(local.url)
    try:
        reader = LogReadPath(storage)
        stored = reader.checkpoint() if size is None else storage.checkpoint_at(size)
        if stored is None:
            raise NotFound(f"no checkpoint was published for size {size}; use the latest or one listed")
        if index >= stored.size:
            raise InvalidInput(f"entry {index} is not in the tree of size {stored.size}")
        proof = reader.inclusion_proof(index, stored.size)
        data = ProofFile(index=index, proof=tuple(proof), checkpoint=stored.note).to_bytes()
    finally:
        storage.close()
    if output is None:
        sys.stdout.write(data.decode())
    else:
        try:
            output.write_bytes(data)
        except OSError as exc:
            raise InvalidInput(f"cannot write the proof file {output}: {exc.strerror}") from exc
        console.print(f"wrote {output}")


@log_app.command("export")
def export(
    directory: Annotated[Path, typer.Argument(help="Where to write checkpoint and tile/…")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Write the tlog-tiles read path as static files (for a CDN or an offline verifier)."""
    local = LocalLog(data_dir)
    local.require()
    storage = open_storage(local.url)
    try:
        written = export_tiles(LogReadPath(storage), directory)
    finally:
        storage.close()
    console.print(f"wrote {written} files to {directory}")


@log_app.command("verify")
def verify(
    source: Annotated[str, typer.Argument(help="URL prefix (https://…/log/) or a directory of tiles.")],
    vkey_text: Annotated[str, typer.Option("--vkey", help="The log's verifier key, or @FILE.")],
    state: Annotated[
        Path | None,
        typer.Option(help="Keep the last verified checkpoint here and check consistency with it."),
    ] = None,
    origin: Annotated[str | None, typer.Option(help="Expected origin (default: the key name).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Verify a log offline: signature, every entry against the root, consistency with --state."""
    vkey_text = inline_or_file(vkey_text, "verifier key")
    verifier = Verifier.parse(vkey_text)
    tiles = open_source(source)
    try:
        report = verify_log(tiles, verifier, origin=origin, state_file=state)
    finally:
        tiles.close()
    if json_out:
        emit_json(
            {
                "verified": True,
                "size": report.size,
                "root": base64.b64encode(report.root).decode(),
                "consistent_with_size": report.previous_size,
            }
        )
        return
    table = Table(title="log verified", show_header=False)
    table.add_row("size", str(report.size))
    table.add_row("root", base64.b64encode(report.root).decode())
    table.add_row(
        "consistency",
        "first run: state saved"
        if report.previous_size is None
        else f"consistent with the earlier checkpoint of size {report.previous_size}",
    )
    console.print(table)


