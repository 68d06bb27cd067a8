"""Write the log's read path to a directory, so any static file server or CDN can serve it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rempart.log.serving import LogReadPath
from rempart.tlog.tiles import entry_bundles_for_size, hash_tiles_for_size

__all__ = ["export_tiles"]


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


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
