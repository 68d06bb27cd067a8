"""``rempart witness …``: run a C2SP tlog-witness for one or more logs.

Layout of a witness's folder: ``<dir>/witness.key`` (the cosigning key, mode
0600) and, unless ``--database`` names another, ``<dir>/witness.db``.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from rempart.audit.witness import Witness, WitnessStore, witness_app
from rempart.cli._app import app, console, emit_json, inline_or_file
from rempart.clock import SystemClock
from rempart.db import Database
from rempart.errors import InvalidInput, NotFound
from rempart.keyfiles import read_secret_text, write_secret_file
from rempart.tlog.cosignature import Cosigner
from rempart.tlog.note import Verifier

__all__ = ["witness_app_cli"]

witness_app_cli = typer.Typer(
    help="A transparency-log witness (C2SP tlog-witness): init, add-log, vkey, serve."
)
app.add_typer(witness_app_cli, name="witness")

WitnessDir = Annotated[
    Path,
    typer.Option("--data-dir", envvar="REMPART_WITNESS_DIR", help="The witness's folder (key and database)."),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database",
        envvar="REMPART_WITNESS_DATABASE",
        help="sqlite:///PATH or postgresql://… (default: sqlite in the witness's folder).",
    ),
]
DEFAULT_DIR = Path("witness")


class LocalWitness:
    """Where a witness keeps its key and, by default, its database."""

    def __init__(self, directory: Path, database: str | None) -> None:
        self.directory = directory
        self.key = directory / "witness.key"
        self.url = database or f"sqlite:///{directory / 'witness.db'}"

    def cosigner(self) -> Cosigner:
        if not self.key.exists():
            raise NotFound(
                f"no witness in {self.directory}; create one with: "
                f"rempart witness init --data-dir {self.directory} --name NAME"
            )
        return Cosigner.parse(read_secret_text(self.key))

    def open(self) -> Witness:
        cosigner = self.cosigner()
        return Witness(cosigner=cosigner, store=WitnessStore(Database.open(self.url)), clock=SystemClock())


@witness_app_cli.command("init")
def init(
    name: Annotated[str, typer.Option(help="The witness's key name, e.g. witness.example.org/w1.")],
    directory: WitnessDir = DEFAULT_DIR,
    database: DatabaseUrl = None,
) -> None:
    """Create a witness: its Ed25519 cosigning key (mode 0600) and its database."""
    local = LocalWitness(directory, database)
    cosigner = Cosigner.generate(name)
    write_secret_file(local.key, (cosigner.skey() + "\n").encode())
    WitnessStore(Database.open(local.url)).database.close()
    console.print(f"created witness [bold]{name}[/] in {directory}")
    console.print(f"verifier key: {cosigner.vkey()}", highlight=False, soft_wrap=True)


@witness_app_cli.command("vkey")
def vkey(directory: WitnessDir = DEFAULT_DIR) -> None:
    """Print the witness's cosignature verifier key (name+id+key, type 0x04)."""
    print(LocalWitness(directory, None).cosigner().vkey())


@witness_app_cli.command("add-log")
def add_log(
    vkey_text: Annotated[str, typer.Option("--vkey", help="The log's verifier key, or @FILE.")],
    origin: Annotated[str | None, typer.Option(help="The log's origin line (default: the key name).")] = None,
    directory: WitnessDir = DEFAULT_DIR,
    database: DatabaseUrl = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Witness a log: its origin and verifier key (run again to add a second key)."""
    verifier = Verifier.parse(inline_or_file(vkey_text, "log key"))
    witness = LocalWitness(directory, database).open()
    try:
        known = witness.add_log(origin or verifier.name, [verifier])
    finally:
        witness.store.database.close()
    if json_out:
        emit_json({"origin": known.origin, "keys": [k.vkey() for k in known.keys], "size": known.size})
    else:
        console.print(
            f"witnessing {known.origin} (size {known.size}, {len(known.keys)} key(s))", highlight=False
        )


@witness_app_cli.command("serve")
def serve(
    directory: WitnessDir = DEFAULT_DIR,
    database: DatabaseUrl = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).", min=0, max=65535)] = 7380,
    prefix: Annotated[str, typer.Option(help="Submission prefix path, e.g. /witness.")] = "",
) -> None:
    """Serve POST <prefix>/add-checkpoint until interrupted; prints the address once listening."""
    import uvicorn

    witness = LocalWitness(directory, database).open()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc}") from exc
    sock.listen(128)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    sys.stdout.write(
        f"witness {witness.cosigner.name} listening on http://{shown}:{bound}{prefix.rstrip('/')}\n"
    )
    sys.stdout.write(f"verifier key: {witness.cosigner.vkey()}\n")
    sys.stdout.flush()
    config = uvicorn.Config(witness_app(witness, prefix=prefix), log_level="warning", access_log=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        witness.store.database.close()
