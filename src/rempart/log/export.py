"""Write the log's read path to a directory, so any static file server or CDN can serve it."""

from __future__ import annotations

from pathlib import Path

from rempart.errors import RempartError
from rempart.files import fsync_path, write_atomically
from rempart.log.serving import LogReadPath
from rempart.tlog.checkpoint import Checkpoint
from rempart.tlog.note import Note
from rempart.tlog.tiles import TILE_WIDTH, TilePath, entry_bundles_for_size, hash_tiles_for_size

__all__ = ["export_tiles"]


def _covered(tile: TilePath, size: int) -> bool:
    """Does a full ``tile`` lie wholly within a tree of ``size`` entries?"""
    span = TILE_WIDTH if tile.level is None else TILE_WIDTH ** (tile.level + 1)
    return (tile.index + 1) * span <= size


def _exported_size(directory: Path) -> int:
    """The size of the checkpoint an earlier export left in ``directory`` (0 if none, or unreadable)."""
    try:
        return Checkpoint.parse(Note.parse((directory / "checkpoint").read_bytes()).text).size
    except (OSError, RempartError):
        return 0


def export_tiles(reader: LogReadPath, directory: Path) -> int:
    """Write every tile of the latest checkpoint, then the checkpoint itself; returns files written.

    Files are readable by all (a static file server runs as another user). A
    full tile is immutable, so one an earlier export wrote is kept, if that
    export's checkpoint covers it: the tiles are synced to disk before their
    checkpoint is written, so a tile that checkpoint covers is whole, while one
    past it may have been cut short by a crash and is written again. The
    checkpoint is written last, so neither a reader nor a crash sees a
    checkpoint whose tiles are missing.
    """
    checkpoint = reader.checkpoint()
    size = checkpoint.size
    synced = _exported_size(directory)
    written: list[Path] = []
    for tile in [*hash_tiles_for_size(size), *entry_bundles_for_size(size)]:
        target = directory / tile.path()
        if tile.is_full and _covered(tile, synced) and target.exists():
            continue
        write_atomically(target, reader.get(tile.path()).body, mode=0o644, durable=False)
        written.append(target)
    folders = {directory / f for path in written for f in path.relative_to(directory).parents}
    for path in [*written, *sorted(folders, reverse=True)]:
        fsync_path(path)  # the tiles, then the folders their names (and new folders) are in
    write_atomically(directory / "checkpoint", checkpoint.note, mode=0o644)
    return len(written) + 1
