"""``rempart trust-root …`` and ``rempart proposal …``: the board's commands.

Signing commands (``keygen``, ``sign``) run offline on a board member's own
machine with their own key file; the others act on the embedded deployment in
``--data-dir`` (control database ``control.db``, log ``log.db`` + ``keys/log.key``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from rempart.cli._app import app, console, emit_json
from rempart.clock import SystemClock, format_time
from rempart.config import GovernanceSettings
from rempart.db import Database
from rempart.errors import InvalidInput, NotFound
from rempart.events import LogRecorder, canonical_json
from rempart.governance import (
    DirectorySubmitterKeys,
    Governance,
    ProposalKind,
    TrustRootBundle,
    parse_document,
    sign_proposal,
    sign_trust_root,
    verify_chain,
)
from rempart.keyfiles import write_secret_file
from rempart.log import load_signer, open_log
from rempart.tlog.note import Signer

__all__ = [
    "DataDir",
    "JsonFlag",
    "KeyFile",
    "deployment",
    "log_database_url",
    "log_key_file",
    "proposal_app",
    "read_input",
    "trust_root_app",
]

trust_root_app = typer.Typer(help="The trust root: keys, signatures, the chain of versions.")
proposal_app = typer.Typer(help="Board proposals: draft, sign, add signatures, apply, expire.")
app.add_typer(trust_root_app, name="trust-root")
app.add_typer(proposal_app, name="proposal")

DataDir = Annotated[
    Path,
    typer.Option("--data-dir", envvar="REMPART_DATA_DIR", help="Folder of the embedded deployment."),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
KeyFile = Annotated[Path, typer.Option("--key", help="Your note signing key file (mode 0600).")]
DEFAULT_DATA_DIR = Path("data")


def read_input(path: Path) -> bytes:
    """Read a file named on the command line, or refuse with its name."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}", path=str(path)) from exc


def _no_log(data_dir: Path) -> NotFound:
    return NotFound(f"no log in {data_dir}; create one with: rempart log init --data-dir {data_dir}")


def log_key_file(data_dir: Path) -> Path:
    """The embedded log's key file; NotFound, with the command that creates one, if there is no log."""
    log_key = data_dir / "keys" / "log.key"
    if not log_key.exists():
        raise _no_log(data_dir)
    return log_key


def log_database_url(data_dir: Path) -> str:
    """The embedded log's database URL; NotFound if there is none (opening it would create an empty log)."""
    path = data_dir / "log.db"
    if not path.exists():
        raise _no_log(data_dir)
    return f"sqlite:///{path}"


@contextmanager
def deployment(data_dir: Path, *, lifetime: timedelta | None = None) -> Iterator[Governance]:
    """Governance over the embedded deployment's control database and log."""
    from rempart.access.principals import PrincipalStore

    log_key = log_key_file(data_dir)
    db = Database.open(f"sqlite:///{data_dir / 'control.db'}")
    try:
        with open_log(log_database_url(data_dir), load_signer(log_key)) as log:
            recorder = LogRecorder(log)
            principals = PrincipalStore(db, recorder=recorder, clock=SystemClock())
            yield Governance(
                db=db,
                recorder=recorder,
                submitters=DirectorySubmitterKeys(principals),
                proposal_lifetime=lifetime or GovernanceSettings().proposal_lifetime,
            )
    finally:
        db.close()


# -- trust-root -----------------------------------------------------------------------


@trust_root_app.command("keygen")
def keygen(
    name: Annotated[str, typer.Argument(help="The key name (your member id), e.g. board-1.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the private key (mode 0600).")],
) -> None:
    """Generate an Ed25519 note key; print its verifier key for the trust root document."""
    signer = Signer.generate(name)
    write_secret_file(out, (signer.skey() + "\n").encode())
    print(signer.vkey())


def _read_bundle_or_document(data: bytes) -> bytes | TrustRootBundle:
    try:
        obj: Any = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"expected a trust root document or bundle as JSON: {exc}") from exc
    if isinstance(obj, dict) and "signed_note" in obj:
        return TrustRootBundle.parse(obj)
    if not isinstance(obj, dict):
        raise InvalidInput("a trust root document is a JSON object")
    return parse_document(canonical_json(obj)).document


@trust_root_app.command("sign")
def sign(
    file: Annotated[Path, typer.Argument(help="A trust root document (JSON) or a bundle to add to.")],
    key: KeyFile,
    out: Annotated[Path | None, typer.Option("--out", help="Write the bundle here (else stdout).")] = None,
) -> None:
    """Sign a trust root version: your note signature and your TUF root signature, in one bundle."""
    target = _read_bundle_or_document(read_input(file))
    bundle = sign_trust_root(target, load_signer(key))
    root = bundle.root
    text = bundle.dumps()
    if out is None:
        print(text, end="")
    else:
        out.write_text(text)
        console.print(
            f"signed trust root version {root.version} (document sha256 "
            f"{hashlib.sha256(root.document).hexdigest()}) into {out}",
            highlight=False,
        )


def _signed_note(data: bytes) -> bytes:
    text = data.decode("utf-8", errors="replace")
    if text.lstrip().startswith("{"):
        return TrustRootBundle.parse(data).signed_note
    return data


@trust_root_app.command("verify")
def verify(
    files: Annotated[list[Path], typer.Argument(help="Every version from 1, in order (notes or bundles).")],
    json_out: JsonFlag = False,
) -> None:
    """Verify a chain of trust root versions offline; print the version in force."""
    root = verify_chain([_signed_note(read_input(f)) for f in files])
    if json_out:
        emit_json(root.to_json())
        return
    console.print(
        f"trust root chain verified: version {root.version} of {root.deployment} is in force "
        f"(board {root.board_threshold} of {len(root.board)})",
        highlight=False,
    )


@trust_root_app.command("install")
def install(
    bundle_file: Annotated[Path, typer.Argument(help="The signed bundle of version 1.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Install trust root version 1 (later versions come through a trust_root proposal)."""
    bundle = TrustRootBundle.parse(read_input(bundle_file))
    with deployment(data_dir) as gov:
        root = gov.trust_roots.install(bundle, now=SystemClock().now())
    console.print(f"installed trust root version {root.version} of {root.deployment}", highlight=False)


@trust_root_app.command("show")
def show(data_dir: DataDir = DEFAULT_DATA_DIR, json_out: JsonFlag = False) -> None:
    """Show the trust root in force (after verifying the stored chain)."""
    with deployment(data_dir) as gov:
        root = gov.trust_roots.verify_stored()
    if json_out:
        emit_json(root.to_json())
        return
    console.print(
        f"trust root version {root.version} of {root.deployment}, issued {format_time(root.issued)}"
    )
    console.print(
        f"board ({root.board_threshold} of {len(root.board)}): {', '.join(m.id for m in root.board)}"
    )
    console.print(f"custodian approvers: {', '.join(m.id for m in root.custodian_approvers)}")
    reviewers = ", ".join(m.id for m in root.release_reviewers)
    console.print(
        f"release reviewers ({root.reviewer_threshold} of {len(root.release_reviewers)}): {reviewers}"
    )
    console.print(
        f"witnesses ({root.witness_threshold} of {len(root.witnesses)}): "
        f"{', '.join(w.name for w in root.witnesses)}"
    )
    console.print(f"regions: {', '.join(root.regions)}")


@trust_root_app.command("export")
def export(
    out: Annotated[Path, typer.Argument(help="Folder to write 1.bundle.json … N.bundle.json into.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Write every installed version, for auditors to verify with ``trust-root verify``."""
    with deployment(data_dir) as gov:
        bundles = gov.trust_roots.versions()
    out.mkdir(parents=True, exist_ok=True)
    for bundle in bundles:
        (out / f"{bundle.root.version}.bundle.json").write_text(bundle.dumps())
    console.print(f"wrote {len(bundles)} trust root version(s) to {out}")


# -- proposal ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Author:
    """Who drafts, as given on the command line (the embedded deployment trusts its operator)."""

    id: str
    org: str


@proposal_app.command("draft")
def draft(
    kind: Annotated[str, typer.Option("--kind", help=", ".join(k.value for k in ProposalKind))],
    payload: Annotated[Path, typer.Option("--payload", help="The payload as a JSON file.")],
    drafter: Annotated[str, typer.Option("--drafter", help="Your principal id.")],
    org: Annotated[str, typer.Option("--org", help="Your org: board or operator.")],
    out: Annotated[Path | None, typer.Option("--out", help="Write the text to sign here.")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Draft a proposal; board members sign the exact text it prints (or writes to --out)."""
    try:
        body = json.loads(read_input(payload))
    except ValueError as exc:  # not JSON, or not UTF-8 (UnicodeDecodeError)
        raise InvalidInput(f"{payload} is not JSON: {exc}") from exc

    with deployment(data_dir) as gov:
        proposal = gov.proposals.draft(
            kind=kind, payload=body, drafter=_Author(drafter, org), now=SystemClock().now()
        )
    if out is not None:
        out.write_text(proposal.text)
    console.print(
        f"drafted proposal {proposal.id} ({proposal.kind.value}), expires {format_time(proposal.expires)}",
        highlight=False,
    )
    if out is None:
        print(proposal.text, end="")


@proposal_app.command("sign")
def sign_text(
    text_file: Annotated[Path, typer.Argument(help="The proposal text (or a signed note to add to).")],
    key: KeyFile,
) -> None:
    """Sign a proposal's exact text with your board key; prints the signed note."""
    print(sign_proposal(read_input(text_file), [load_signer(key)]).decode("utf-8"), end="")


@proposal_app.command("add-signature")
def add_signature(
    proposal_id: Annotated[str, typer.Argument(help="The proposal id (p-…).")],
    signed_note: Annotated[Path, typer.Argument(help="A signed note of the proposal text.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Record board signatures on a proposal (refused whole if any does not count)."""
    with deployment(data_dir) as gov:
        record = gov.proposals.sign(proposal_id, read_input(signed_note), now=SystemClock().now())
        root = gov.trust_roots.current()
    console.print(
        f"proposal {proposal_id}: signed by {', '.join(record.signers)} "
        f"({len(record.signers)} of {root.board_threshold} needed)",
        highlight=False,
    )


@proposal_app.command("apply")
def apply(proposal_id: Annotated[str, typer.Argument()], data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Apply a proposal once the board threshold is met (refused with the count otherwise)."""
    with deployment(data_dir) as gov:
        record = gov.proposals.apply(proposal_id, now=SystemClock().now())
    console.print(f"proposal {proposal_id} applied: {record.result}", highlight=False)


@proposal_app.command("show")
def show_proposal(
    proposal_id: Annotated[str, typer.Argument()],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    json_out: JsonFlag = False,
) -> None:
    """A proposal's status, signers and exact text."""
    with deployment(data_dir) as gov:
        record = gov.proposals.get(proposal_id)
    if json_out:
        emit_json(
            {
                "id": record.proposal.id,
                "kind": record.proposal.kind.value,
                "status": record.status.value,
                "signers": list(record.signers),
                "expires": format_time(record.proposal.expires),
                "result": record.result,
                "text": record.proposal.text,
            }
        )
        return
    console.print(
        f"proposal {proposal_id} ({record.proposal.kind.value}): {record.status.value}; "
        f"signed by {', '.join(record.signers) or 'nobody'}",
        highlight=False,
    )
    print(record.proposal.text, end="")


@proposal_app.command("expire")
def expire(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Expire every drafted proposal whose time has passed (recorded in the log)."""
    with deployment(data_dir) as gov:
        expired = gov.proposals.expire_due(now=SystemClock().now())
    console.print(f"expired {len(expired)} proposal(s){': ' + ', '.join(expired) if expired else ''}")
