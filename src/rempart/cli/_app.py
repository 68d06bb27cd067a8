"""The typer application and its shared output helpers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from rempart.errors import InvalidInput

console = Console()
console_err = Console(stderr=True)

app = typer.Typer(
    name="rempart",
    help="Rempart: data-sovereignty agreements as software that enforces them and lets outsiders check them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def read_text_file(path: Path, what: str) -> str:
    """A UTF-8 file named on the command line, or one clear InvalidInput line saying why not."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else "not UTF-8 text"
        raise InvalidInput(f"cannot read the {what} {path}: {reason}") from exc


def inline_or_file(value: str, what: str) -> str:
    """An argument given inline, or as ``@FILE`` (the file's text, stripped)."""
    if not value.startswith("@"):
        return value
    return read_text_file(Path(value[1:]), f"{what} file").strip()


def emit_json(value: Any) -> None:
    """Machine output for ``--json``: one JSON document on stdout."""
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")
