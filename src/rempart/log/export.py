"""Write the log's read path to a directory, so any static file server or CDN can serve it."""

from __future__ import annotations

from pathlib import Path

from rempart.files import write_atomically
from rempart.log.serving import LogReadPath
from rempart.tlog.tiles import entry_bundles_for_size, hash_tiles_for_size

__all__ = ["export_tiles"]


def _write(path: Path, data: bytes) -> None:
    # Readable by all (a static file server runs as another user); not fsynced one by one:
    # an export is cheap to run again, and the checkpoint goes last.
    write_atomically(path, data, mode=0o644, durable=False)


def export_tiles(reader: LogReadPath, directory: Path) -> int:
    """Write every tile of the latest checkpoint, then the checkpoint itself; returns files written.

    Full tiles already present are skipped (they are immutable); the checkpoint
    is written last, so a reader never sees a checkpoint whose tiles are missing.
    """
    checkpoint = reader.checkpoint()
    size = checkpoint.size
    written = 0
    for tile in [*hash_tiles_for_size(size), *entry_bundles_for_size(size)]:
        target = directory / tile.path()
        if tile.is_full and target.exists():
            continue
        _write(target, reader.get(tile.path()).body)
        written += 1
    _write(directory / "checkpoint", checkpoint.note)
    return written + 1
