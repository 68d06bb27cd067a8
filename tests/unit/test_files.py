"""write_atomically: the new content whole, with the mode asked for, or the old one and no debris."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from rempart.files import write_atomically
from rempart.log import open_log
from rempart.log.export import export_tiles
from rempart.log.serving import LogReadPath
from rempart.tlog.note import Signer


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


def test_exported_tiles_are_readable_by_a_static_file_server(tmp_path: Path) -> None:
    """The server usually runs as another user: every exported file is 0644, not mkstemp's 0600."""
    key = Signer.generate("example.com/log")
    with open_log(f"sqlite:///{tmp_path / 'log.db'}", key, checkpoint_interval=3600) as log:
        log.append_many([b"entry %d" % i for i in range(300)])
        log.publish_checkpoint()
        export_tiles(LogReadPath(log.storage), tmp_path / "tiles")
    files = [p for p in (tmp_path / "tiles").rglob("*") if p.is_file()]
    assert len(files) >= 4  # checkpoint, two bundles, level-0 and level-1 hash tiles
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {"0o644"}
