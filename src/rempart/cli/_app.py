"""The typer application and its shared output helpers."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console

console = Console()
console_err = Console(stderr=True)

app = typer.Typer(
    name="rempart",
    help="Rempart: data-sovereignty agreements as software that enforces them and lets outsiders check them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def emit_json(value: Any) -> None:
    """Machine output for ``--json``: one JSON document on stdout."""
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")
