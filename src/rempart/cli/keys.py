"""``rempart keys …``: the custodian's key-encryption keys (rotate, rewrap, retire) and signing keys."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rempart.cli._app import app, console, emit_json
from rempart.cli._connect import DEFAULT_DATA_DIR, As, ConfigFile, DataDir, Json
from rempart.client import Embedded
from rempart.client import open as open_embedded
from rempart.errors import InvalidInput, PermissionDenied
from rempart.keyfiles import write_secret_file
from rempart.store.records import Actor
from rempart.tlog.note import Signer

__all__ = ["keys_app"]

keys_app = typer.Typer(
    help="Keys: region KEKs (custodian, on the data folder) and principals' note signing keys."
)
app.add_typer(keys_app, name="keys")

Region = Annotated[str, typer.Option(help="The region whose key ring this is.")]
Reason = Annotated[str, typer.Option(help="Ticket or reason (recorded in the log).")]


def _custodian(data_dir: Path, config: Path | None, acting: str | None) -> tuple[Embedded, Actor]:
    """The embedded deployment and the custodian principal acting on its keys."""
    if acting is None:
        raise InvalidInput("key operations act as a custodian principal: pass --as custodian:…")
    embedded = open_embedded(config if config is not None else data_dir, principal=acting)
    principal = embedded.deployment.principals.find(acting)
    if principal is None or principal.disabled or principal.org != "custodian":
        embedded.close()
        raise PermissionDenied(
            f"{acting} is not an enabled custodian principal: the custodian holds the keys"
        )
    return embedded, Actor(principal.id, principal.org)


@keys_app.command("rotate")
def rotate(
    region: Region,
    reason: Reason,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    config: ConfigFile = None,
    acting: As = None,
    json_out: Json = False,
) -> None:
    """New KEK version for a region; every subject key is rewrapped under it."""
    embedded, actor = _custodian(data_dir, config, acting)
    with embedded, console.status(f"rotating {region}'s key and rewrapping subject keys…"):
        report = embedded.deployment.records.rotate_kek(actor, region, reason=reason)
    out = {
        "region": report.region,
        "previous_key": report.previous_key_id,
        "key": report.key_id,
        "rewrapped": report.rewrapped,
        "log_index": report.position.index,
    }
    if json_out:
        emit_json(out)
    else:
        console.print(
            f"{region}: {report.previous_key_id} → {report.key_id}, {report.rewrapped} subject "
            f"key(s) rewrapped; recorded at log index {report.position.index}",
            highlight=False,
        )


@keys_app.command("rewrap")
def rewrap(
    region: Region,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    config: ConfigFile = None,
    acting: As = None,
) -> None:
    """Finish an interrupted rotation: rewrap keys still under an older KEK version."""
    embedded, _ = _custodian(data_dir, config, acting)
    with embedded, console.status(f"rewrapping {region}'s subject keys…"):
        count = embedded.deployment.records.rewrap(region)
    console.print(f"{region}: {count} subject key(s) rewrapped")


@keys_app.command("retire")
def retire(
    region: Region,
    key_id: Annotated[str, typer.Option("--key-id", help="The old KEK version, e.g. us-v1.")],
    reason: Reason,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    config: ConfigFile = None,
    acting: As = None,
) -> None:
    """Destroy an old KEK version nothing is wrapped under (backups under it can never be opened)."""
    embedded, actor = _custodian(data_dir, config, acting)
    with embedded:
        position = embedded.deployment.records.retire_kek(actor, region, key_id, reason=reason)
    console.print(f"{region}: retired {key_id}; recorded at log index {position.index}", highlight=False)


@keys_app.command("keygen")
def keygen(
    principal_id: Annotated[str, typer.Argument(help="Your principal id: the key's name.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the private key (mode 0600).")],
) -> None:
    """Make a note signing key for approvals and reviews; prints only the verifier key to register."""
    signer = Signer.generate(principal_id)
    write_secret_file(out, (signer.skey() + "\n").encode())
    console.print(f"wrote {out} (mode 0600); register this verifier key:", highlight=False)
    print(signer.vkey())
