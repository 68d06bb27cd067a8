"""The running transparency log: storage backends, the sequencer, the read path."""

from __future__ import annotations

from pathlib import Path

from rempart.db import parse_database_url
from rempart.keyfiles import read_secret_text, write_secret_file
from rempart.log.sequencer import LogPosition, TransparencyLog
from rempart.log.storage import LogStorage, StoredCheckpoint
from rempart.tlog.checkpoint import sign_checkpoint
from rempart.tlog.note import Signer

__all__ = [
    "LogPosition",
    "LogStorage",
    "StoredCheckpoint",
    "TransparencyLog",
    "create_signer",
    "load_signer",
    "open_log",
    "open_storage",
]


def open_storage(url: str) -> LogStorage:
    """``sqlite:///path`` or ``postgresql://…`` → the matching log storage."""
    dialect, target = parse_database_url(url)
    if dialect == "sqlite":
        from rempart.log.sqlite import SqliteLogStorage

        return SqliteLogStorage(target)
    from rempart.log.postgres import PostgresLogStorage

    return PostgresLogStorage(target)


def create_signer(path: Path, origin: str) -> Signer:
    """Generate the log's Ed25519 key named after its origin, saved as a Go note private key."""
    signer = Signer.generate(origin)
    write_secret_file(path, (signer.skey() + "\n").encode())
    return signer


def load_signer(path: Path) -> Signer:
    return Signer.parse(read_secret_text(path))


def open_log(
    url: str,
    signer: Signer,
    *,
    origin: str | None = None,
    checkpoint_interval: float = 1.0,
    append_timeout: float = 10.0,
    gather_window: float = 0.005,
) -> TransparencyLog:
    """Open (creating if needed) the log at ``url``, signing checkpoints with ``signer``."""
    return TransparencyLog(
        storage=open_storage(url),
        origin=origin or signer.name,
        sign=lambda cp: sign_checkpoint(cp, [signer]),
        checkpoint_interval=checkpoint_interval,
        append_timeout=append_timeout,
        gather_window=gather_window,
    )
