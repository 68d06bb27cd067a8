"""The migration attestation: a C2SP signed note by the custodian's migration key, in the log.

The signed text is ``rempart/migration-attestation/v1``, a newline, the
canonical JSON of the statement, a newline. The statement says what was
migrated from where (the source, without credentials), how many rows each
region read, migrated and quarantined, the verified Merkle roots, the
quarantine, the purge result and the times. It is recorded whole in a
``migration.attestation`` entry, so an auditor checks it with a stock note
verifier and the custodian's public key (:func:`verify_attestation`).

>>> from rempart.tlog.note import Signer
>>> signer = Signer.generate("custodian.example/migration")
>>> note = sign_statement({"run": "r1"}, signer)
>>> verify_attestation(note, signer.verifier())["run"]
'r1'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rempart.clock import Clock, format_time
from rempart.errors import Conflict, InvalidInput, VerificationFailed
from rempart.events import canonical_json
from rempart.keyfiles import read_secret_file
from rempart.log.sequencer import LogPosition
from rempart.migrate.progress import ProgressStore, count_totals
from rempart.migrate.purge import require_verified
from rempart.store.records import Actor
from rempart.store.service import RecordService
from rempart.tlog.note import Signer, Verifier, open_note, sign_note

__all__ = [
    "ATTESTATION_HEADER",
    "Attestation",
    "attest_run",
    "build_statement",
    "load_signer",
    "sign_statement",
    "verify_attestation",
]

ATTESTATION_HEADER = "rempart/migration-attestation/v1"


@dataclass(frozen=True, slots=True)
class Attestation:
    note: bytes
    statement: Mapping[str, Any]
    position: LogPosition


def load_signer(path: Path) -> Signer:
    """The custodian's migration key from its file (mode 0600, Go note private-key format)."""
    text = read_secret_file(Path(path)).decode("utf-8", "replace").strip()
    return Signer.parse(text)


def sign_statement(statement: Mapping[str, Any], signer: Signer) -> bytes:
    """The signed note: header line, canonical JSON, newline; then the signature line."""
    return sign_note(f"{ATTESTATION_HEADER}\n{canonical_json(statement).decode()}\n", [signer])


def verify_attestation(note: bytes | str, verifier: Verifier) -> dict[str, Any]:
    """Check the note's signature by ``verifier`` and its form; return the statement (raises otherwise)."""
    opened = open_note(note, [verifier])
    header, _, rest = opened.text.partition("\n")
    if header != ATTESTATION_HEADER:
        raise VerificationFailed(f"the note is a {header[:60]!r}, not a {ATTESTATION_HEADER}")
    body = rest[:-1] if rest.endswith("\n") else rest
    try:
        statement = json.loads(body)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the attestation's statement is not JSON: {exc.msg}") from exc
    if not isinstance(statement, dict) or canonical_json(statement).decode() != body:
        raise InvalidInput("the attestation's statement is not canonical JSON of an object")
    return statement


def build_statement(
    progress: ProgressStore, run_id: str, *, deployment: str, attested_at: str
) -> dict[str, Any]:
    """What the attestation states, from the run's records in the control database."""
    run = progress.get_run(run_id)
    require_verified(run)
    verification = run.verification or {}
    roots = verification.get("regions", {})
    counts = progress.totals(run_id)
    regions: dict[str, Any] = {}
    for region, numbers in sorted(counts.items()):
        entry: dict[str, Any] = dict(numbers)
        if region in roots:
            entry["root"] = roots[region]["destination_root"]
        regions[region] = entry
    reasons = progress.quarantine_reasons(run_id)
    return {
        "deployment": deployment,
        "run": run_id,
        "mapping_sha256": run.mapping_sha256,
        "source": dict(run.source),
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "regions": regions,
        "totals": count_totals(counts),
        "root": verification.get("root", {}).get("destination"),
        "batches": len(progress.batches(run_id)),
        "quarantine": {"count": sum(reasons.values()), "reasons": reasons},
        "verification": {"verified_at": run.verified_at, "result": verification.get("result")},
        "purge": None if run.purge is None else dict(run.purge),
        "attested_at": attested_at,
    }


def attest_run(
    *,
    service: RecordService,
    progress: ProgressStore,
    run_id: str,
    signer: Signer,
    clock: Clock,
    actor: Actor,
    deployment: str,
) -> Attestation:
    """Sign the run's statement and record it (``migration.attestation``); keep it with the run."""
    run = progress.get_run(run_id)
    if run.purge is not None and run.purged_at is None:
        raise Conflict(f"run {run_id!r}: the purge left legacy rows behind; purge again before attesting")
    now = format_time(clock.now())
    statement = build_statement(progress, run_id, deployment=deployment, attested_at=now)
    note = sign_statement(statement, signer)
    position = service.record_all(
        [
            (
                "migration.attestation",
                {
                    "run": run_id,
                    "key": f"{signer.name}+{signer.key_id:08x}",
                    "statement_sha256": hashlib.sha256(canonical_json(statement)).hexdigest(),
                    "signed_note": note.decode(),
                    "requested_by": actor.as_entry(),
                },
            )
        ]
    )[0]
    progress.set_attestation(run_id, now, note.decode())
    return Attestation(note, statement, position)
