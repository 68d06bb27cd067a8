"""Reading a tiled log from a folder: only paths inside it, errors that say what was wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from rempart.errors import InvalidInput, NotFound
from rempart.log.source import DirectorySource


def test_a_folder_source_serves_the_files_under_it(tmp_path: Path) -> None:
    (tmp_path / "tile" / "0").mkdir(parents=True)
    (tmp_path / "tile" / "0" / "000").write_bytes(b"hashes")
    (tmp_path / "checkpoint").write_bytes(b"note")
    source = DirectorySource(tmp_path)
    assert source.fetch("checkpoint") == b"note"
    assert source.fetch("tile/0/000") == b"hashes"
    with pytest.raises(NotFound, match="tile/0/001 not found"):
        source.fetch("tile/0/001")


@pytest.mark.parametrize(
    "path",
    ["../secret", "/etc/passwd", "tile/../../secret", "tile//0", "./checkpoint", "tile\\0", "a\0b", ""],
)
def test_a_folder_source_refuses_paths_that_leave_it(tmp_path: Path, path: str) -> None:
    inside = tmp_path / "tiles"
    inside.mkdir()
    (tmp_path / "secret").write_bytes(b"not for you")
    with pytest.raises(InvalidInput, match="is not a relative path inside"):
        DirectorySource(inside).fetch(path)


def test_a_folder_source_needs_a_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="is not a directory"):
        DirectorySource(tmp_path / "missing")
