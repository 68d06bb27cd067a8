"""export_tiles: full tiles the exported checkpoint covers are kept; anything past it is written again."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from rempart.log import TransparencyLog, open_log
from rempart.log.export import export_tiles
from rempart.log.serving import LogReadPath
from rempart.tlog.note import Signer


@pytest.fixture
def log(tmp_path: Path) -> Iterator[TransparencyLog]:
    with open_log(
        f"sqlite:///{tmp_path / 'log.db'}", Signer.generate("example.com/log"), checkpoint_interval=3600
    ) as log:
        yield log


def grow(log: TransparencyLog, size: int) -> None:
    log.append_many([b"entry %d" % i for i in range(log.size, size)])
    log.publish_checkpoint()


def test_full_tiles_the_exported_checkpoint_covers_are_not_written_again(
    log: TransparencyLog, tmp_path: Path
) -> None:
    out = tmp_path / "tiles"
    grow(log, 300)
    # checkpoint; bundles 000 (full), 001.p/44; hash tiles 0/000 (full), 0/001.p/44, 1/000.p/1
    assert export_tiles(LogReadPath(log.storage), out) == 6
    assert export_tiles(LogReadPath(log.storage), out) == 4  # the two full tiles are kept


def test_a_full_tile_a_crash_cut_short_is_written_again(log: TransparencyLog, tmp_path: Path) -> None:
    """An export crashed after renaming a full tile into place but before its data reached the disk."""
    out = tmp_path / "tiles"
    reader = LogReadPath(log.storage)
    grow(log, 300)
    export_tiles(reader, out)
    grow(log, 600)
    (out / "tile" / "entries" / "001").write_bytes(b"")  # full now, past the exported checkpoint (300)
    (out / "tile" / "0" / "001").write_bytes(b"")
    export_tiles(reader, out)
    for path in ("tile/entries/001", "tile/0/001", "tile/entries/000", "tile/0/000"):
        assert (out / path).read_bytes() == reader.get(path).body, path


def test_exported_files_are_readable_by_a_static_file_server(log: TransparencyLog, tmp_path: Path) -> None:
    """The server usually runs as another user: every exported file is 0644, not mkstemp's 0600."""
    grow(log, 300)
    export_tiles(LogReadPath(log.storage), tmp_path / "tiles")
    files = [p for p in (tmp_path / "tiles").rglob("*") if p.is_file()]
    assert len(files) == 6  # checkpoint, two bundles, two level-0 hash tiles, one level-1
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {"0o644"}
