"""write_atomically: the new content whole, with the mode asked for, or the old one and no debris."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from rempart.files import write_atomically


@pytest.mark.parametrize("mode", [0o600, 0o644])
@pytest.mark.parametrize("durable", [True, False])
def test_replaces_the_file_with_the_mode_asked_for(tmp_path: Path, mode: int, durable: bool) -> None:
    path = tmp_path / "deep" / "folder" / "file"
    write_atomically(path, b"old", mode=mode, durable=durable)
    write_atomically(path, b"new", mode=mode, durable=durable)
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert [p.name for p in path.parent.iterdir()] == ["file"]


def test_a_failed_replace_keeps_what_was_there_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "inside").write_bytes(b"kept")
    with pytest.raises(OSError):
        write_atomically(taken, b"new", mode=0o644)  # a folder cannot be replaced by a file
    assert (taken / "inside").read_bytes() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
