"""``rempart subjects …``, ``rempart erase``, ``rempart records …`` and ``rempart egress``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn

from rempart.cli._app import app, console, emit_json, inline_or_file
from rempart.cli._connect import DEFAULT_DATA_DIR, As, ConfigFile, DataDir, Json, Server, Token, connect, show
from rempart.client import RecordData
from rempart.errors import InvalidInput

__all__ = ["erase", "records_app", "subjects_app"]

subjects_app = typer.Typer(help="Subjects: create one in its home region, look one up, erase one.")
records_app = typer.Typer(help="Records: put, get, list, delete (always through the gateway).")
app.add_typer(subjects_app, name="subjects")
app.add_typer(records_app, name="records")

Purpose = Annotated[str, typer.Option(help="Why: a purpose code, e.g. customer_support.")]
Fields = Annotated[list[str] | None, typer.Option("--field", help="Only this field (repeat).")]


@subjects_app.command("create")
def create_subject(
    subject_id: Annotated[str, typer.Argument()],
    region: Annotated[str, typer.Option(help="The subject's home region.")],
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """Create a subject in its home region (services and admins)."""
    with connect(server, token, data_dir, acting, config) as api:
        show(dataclasses.asdict(api.create_subject(subject_id, region)), json_out, title="subject created")


@subjects_app.command("show")
def show_subject(
    subject_id: Annotated[str, typer.Argument()],
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """A subject's home region and keyed commitment."""
    with connect(server, token, data_dir, acting, config) as api:
        subject = api.get_subject(subject_id)
    show(
        {"subject_id": subject.subject_id, "region": subject.region, "commitment": subject.commitment},
        json_out,
        title=subject_id,
    )


@subjects_app.command("erase")
def erase(
    subject_id: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option(help="The ticket or legal basis.")],
    purpose: Annotated[
        str, typer.Option(help="data_subject_request or legal_request.")
    ] = "data_subject_request",
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """Erase a subject (crypto-shredding); prints the erasure receipt."""
    with connect(server, token, data_dir, acting, config) as api:
        receipt = api.erase_subject(subject_id, reason=reason, purpose=purpose)
    show(dataclasses.asdict(receipt), json_out, title=f"erased {subject_id}")


app.command("erase", help="Erase a subject (the same as `rempart subjects erase`).")(erase)


def _record(r: RecordData) -> dict[str, Any]:
    return dataclasses.asdict(r)


def _show_record(r: RecordData, json_out: bool) -> None:
    if json_out:
        emit_json(_record(r))
        return
    show(
        {
            **{f"fields.{k}": v for k, v in r.fields.items()},
            "masked": list(r.masked),
            "version": r.version,
            "decision log index": r.log_index,
        },
        False,
        title=f"{r.subject_id}/{r.collection}/{r.record_id}",
    )


def _values(pairs: list[str] | None, values: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if values is not None:
        text = inline_or_file(values, "--values")
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"--values is not JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise InvalidInput("--values is a JSON object of field: value")
        out.update(loaded)
    for pair in pairs or []:
        name, eq, raw = pair.partition("=")
        if not eq:
            raise InvalidInput(f"--set {pair!r} is not field=value")
        try:
            out[name] = json.loads(raw)
        except json.JSONDecodeError:
            out[name] = raw  # a bare word is a string
    if not out:
        raise InvalidInput("nothing to write: give --set field=value (repeat) or --values JSON")
    return out


@records_app.command("put")
def put(
    subject_id: Annotated[str, typer.Argument()],
    collection: Annotated[str, typer.Argument()],
    record_id: Annotated[str, typer.Argument()],
    purpose: Purpose,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="field=value (JSON or a bare word).")
    ] = None,
    values: Annotated[str | None, typer.Option(help="All values as a JSON object (or @FILE).")] = None,
    expected_version: Annotated[int | None, typer.Option(help="Refuse unless this is the version.")] = None,
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """Create or replace a record (every field written must be allowed)."""
    data = _values(set_, values)
    with connect(server, token, data_dir, acting, config) as api:
        record = api.put_record(
            subject_id, collection, record_id, data, purpose=purpose, expected_version=expected_version
        )
    if json_out:
        emit_json(_record(record))
    else:
        console.print(
            f"wrote {subject_id}/{collection}/{record_id} version {record.version}; "
            f"decision at log index {record.log_index}",
            highlight=False,
        )


@records_app.command("get")
def get(
    subject_id: Annotated[str, typer.Argument()],
    collection: Annotated[str, typer.Argument()],
    record_id: Annotated[str, typer.Argument()],
    purpose: Purpose,
    field: Fields = None,
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """Read a record: the fields the decision allows; the others are named as masked."""
    with connect(server, token, data_dir, acting, config) as api:
        _show_record(
            api.get_record(subject_id, collection, record_id, purpose=purpose, fields=field), json_out
        )


@records_app.command("list")
def list_records(
    subject_id: Annotated[str, typer.Argument()],
    collection: Annotated[str, typer.Argument()],
    purpose: Purpose,
    field: Fields = None,
    limit: Annotated[int, typer.Option(help="Records per page.", min=1, max=1000)] = 100,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow every page.")] = False,
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """A subject's records of one collection."""
    items: list[RecordData] = []
    with (
        connect(server, token, data_dir, acting, config) as api,
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            console=console,
            transient=True,
            disable=json_out,
        ) as progress,
    ):
        task = progress.add_task("reading pages…")
        cursor: str | None = None
        while True:
            page = api.list_records(
                subject_id, collection, purpose=purpose, fields=field, limit=limit, cursor=cursor
            )
            items.extend(page.items)
            progress.update(task, description=f"read {len(items)} record(s)…")
            cursor = page.next_cursor
            if cursor is None or not all_pages:
                break
    rows = [_record(r) for r in items]
    if json_out:
        emit_json({"items": rows, "next_cursor": cursor})
        return
    show(
        [
            {
                "record_id": r.record_id,
                "version": r.version,
                "fields": dict(r.fields),
                "masked": list(r.masked),
            }
            for r in items
        ],
        False,
        title=f"{subject_id}/{collection}",
    )
    if cursor is not None:
        console.print("more: use --all", highlight=False)


@records_app.command("delete")
def delete(
    subject_id: Annotated[str, typer.Argument()],
    collection: Annotated[str, typer.Argument()],
    record_id: Annotated[str, typer.Argument()],
    purpose: Purpose,
    expected_version: Annotated[int, typer.Option(help="The version you read.")],
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
) -> None:
    """Delete one record (needs erase on every field of its collection)."""
    with connect(server, token, data_dir, acting, config) as api:
        done = api.delete_record(
            subject_id, collection, record_id, purpose=purpose, expected_version=expected_version
        )
    console.print(
        f"deleted {subject_id}/{collection}/{record_id}; decision at log index {done.log_index}",
        highlight=False,
    )


@app.command("egress")
def egress(
    region: Annotated[str, typer.Option(help="The region the records leave.")],
    collection: Annotated[str, typer.Option()],
    field: Annotated[list[str], typer.Option("--field", help="A field to send (repeat).")],
    purpose: Purpose,
    destination: Annotated[str, typer.Option(help="A destination the region's rules list.")],
    subject: Annotated[
        list[str] | None, typer.Option("--subject", help="Only this subject (repeat).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 10_000,
    out: Annotated[Path | None, typer.Option(help="Write exactly what left to this file.")] = None,
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """Send records out of a region through the one recorded door (protected data never leaves)."""
    with connect(server, token, data_dir, acting, config) as api:
        result = api.egress(
            region=region,
            collection=collection,
            fields=field,
            purpose=purpose,
            destination=destination,
            subject_ids=subject,
            limit=limit,
        )
    if hashlib.sha256(result.payload).hexdigest() != result.digest:
        raise InvalidInput("the payload received does not match the digest recorded in the log")
    if out is not None:
        out.write_bytes(result.payload)
    summary = {
        "count": result.count,
        "digest": result.digest,
        "log_index": result.log_index,
        "exception": result.exception,
        "written_to": None if out is None else str(out),
    }
    show(summary, json_out, title=f"egress to {destination}")
