"""How the operation commands reach Rempart: a server through the SDK, or a data folder in-process.

``--server URL`` (or ``REMPART_SERVER``) with ``--token`` (or ``REMPART_TOKEN``)
talks to a running ``rempart serve``; without a server the command opens the
deployment in the data folder itself and acts as ``--as PRINCIPAL`` (or
``REMPART_PRINCIPAL``). Do not open a data folder that a running server uses:
the log has one sequencer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from rempart.cli._app import console, emit_json
from rempart.client import Client, _Operations
from rempart.client import open as open_embedded
from rempart.errors import InvalidInput, Unauthenticated
from rempart.keyfiles import read_secret_file
from rempart.tlog.note import Signer

__all__ = ["As", "ConfigFile", "DataDir", "Json", "Server", "Token", "connect", "load_signer", "show"]

Server = Annotated[
    str | None,
    typer.Option(
        "--server", envvar="REMPART_SERVER", help="URL of a running server, e.g. http://127.0.0.1:8080."
    ),
]
Token = Annotated[
    str | None,
    typer.Option("--token", envvar="REMPART_TOKEN", help="Your API token (rpt_…); prefer REMPART_TOKEN."),
]
DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir", envvar="REMPART_DATA_DIR", help="The deployment's data folder (embedded use)."
    ),
]
ConfigFile = Annotated[
    Path | None,
    typer.Option("--config", envvar="REMPART_CONFIG", help="The deployment's TOML file (embedded use)."),
]
As = Annotated[
    str | None,
    typer.Option("--as", envvar="REMPART_PRINCIPAL", help="Embedded use: act as this principal id."),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
DEFAULT_DATA_DIR = Path("data")


@contextmanager
def connect(
    server: str | None,
    token: str | None,
    data_dir: Path,
    acting: str | None,
    config: Path | None = None,
) -> Iterator[_Operations]:
    """The SDK object a command uses: a Client, or an embedded deployment acting as ``acting``."""
    if server:
        if not token:
            raise Unauthenticated(
                f"no token for {server}: pass --token or set REMPART_TOKEN "
                "(`make run` prints the demo tokens; `rempart tokens issue` makes new ones)"
            )
        with Client(server, token) as client:
            yield client
        return
    target = config if config is not None else data_dir
    if config is None and not (data_dir / "rempart.toml").exists() and not (data_dir / "control.db").exists():
        raise InvalidInput(
            f"no deployment in {data_dir}: create one with `rempart init --data-dir {data_dir}`, "
            "or reach a server with --server URL"
        )
    with open_embedded(target, principal=acting) as embedded:
        yield embedded


def load_signer(path: Path) -> Signer:
    """A principal's note signing key from its key file (mode 0600); never printed."""
    try:
        text = read_secret_file(path).decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not a note signing key file") from exc
    return Signer.parse(text)


def show(value: Any, json_out: bool, *, title: str | None = None, columns: list[str] | None = None) -> None:
    """Print a JSON-able value: as JSON for scripts, else as a table (a list) or key/value rows."""
    if json_out:
        emit_json(value)
        return
    if isinstance(value, list):
        cols = columns or (list(value[0]) if value else [])
        table = Table(title=title)
        for c in cols:
            table.add_column(c)
        for row in value:
            table.add_row(*[_cell(row.get(c)) for c in cols])
        console.print(table)
        if not value:
            console.print("(none)")
        return
    table = Table(title=title, show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    for key, item in value.items():
        table.add_row(str(key), _cell(item))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, list | tuple | frozenset | set):
        return ", ".join(str(v) for v in value) or "–"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)
