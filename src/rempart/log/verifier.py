"""The offline log verifier behind ``rempart log verify``.

Reads the checkpoint and every tile from a source, checks the checkpoint's
signature against the given verifier key, recomputes the root from every
entry, and checks that the new checkpoint is consistent with the one kept in
a state file by an earlier run. A fork or a rollback raises
:class:`~rempart.errors.VerificationFailed` naming both sizes and roots; the
state file is only replaced once everything verified.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rempart.errors import InvalidInput, RempartError, VerificationFailed
from rempart.files import write_atomically
from rempart.log.source import TileSource
from rempart.tlog.checkpoint import Checkpoint, open_checkpoint
from rempart.tlog.merkle import consistency_proof, verify_consistency
from rempart.tlog.note import Verifier
from rempart.tlog.tiles import TileHashReader, TilePath
from rempart.tlog.verify import verify_tiles

__all__ = ["VerifyReport", "verify_log"]


@dataclass(frozen=True, slots=True)
class VerifyReport:
    size: int
    root: bytes
    previous_size: int | None
    """Size of the checkpoint in the state file this run was checked against, if any."""


def _load_state(path: Path, verifier: Verifier, origin: str) -> Checkpoint | None:
    try:
        note = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidInput(f"cannot read the state file {path}: {exc.strerror}") from exc
    try:
        return open_checkpoint(note, origin=origin, log=verifier).checkpoint
    except RempartError as exc:
        raise InvalidInput(f"state file {path} does not hold a checkpoint of this log: {exc}") from exc


def _save_state(path: Path, note: bytes) -> None:
    try:
        write_atomically(path, note, mode=0o644)  # a signed checkpoint: public
    except OSError as exc:
        raise InvalidInput(f"cannot write the state file {path}: {exc.strerror}") from exc


def check_consistent(old: Checkpoint, new: Checkpoint, reader: TileHashReader) -> None:
    """Raise VerificationFailed, naming both checkpoints, unless ``old`` is a prefix of ``new``."""
    facts = {
        "old_size": old.size,
        "old_root": old.root.hex(),
        "new_size": new.size,
        "new_root": new.root.hex(),
    }
    if new.size < old.size:
        raise VerificationFailed(
            f"rollback: the log now shows size {new.size} (root {new.root.hex()}), smaller than "
            f"size {old.size} (root {old.root.hex()}) seen before",
            **facts,
        )
    if old.size == 0:
        return
    try:
        verify_consistency(
            old.size, new.size, old.root, new.root, consistency_proof(old.size, new.size, reader)
        )
    except VerificationFailed as exc:
        raise VerificationFailed(
            f"fork: checkpoint of size {new.size} (root {new.root.hex()}) is not consistent "
            f"with the earlier checkpoint of size {old.size} (root {old.root.hex()}): {exc}",
            **facts,
        ) from exc


def verify_log(
    source: TileSource,
    verifier: Verifier,
    *,
    origin: str | None = None,
    state_file: Path | None = None,
) -> VerifyReport:
    origin = origin or verifier.name
    note = source.fetch("checkpoint")
    checkpoint = open_checkpoint(note, origin=origin, log=verifier).checkpoint

    def fetch(tile: TilePath) -> bytes:
        return source.fetch(tile.path())

    verify_tiles(checkpoint.size, checkpoint.root, fetch)
    previous = None if state_file is None else _load_state(state_file, verifier, origin)
    if previous is not None:
        check_consistent(previous, checkpoint, TileHashReader(checkpoint.size, fetch))
    if state_file is not None:
        _save_state(state_file, note)
    return VerifyReport(checkpoint.size, checkpoint.root, None if previous is None else previous.size)
