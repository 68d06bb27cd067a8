"""The audit room's one file writer: whole files, folders made, failures named and cleaned up."""

from __future__ import annotations

from pathlib import Path

import pytest

from rempart.audit._files import write_file
from rempart.errors import StorageUnavailable


def test_writes_the_whole_file_creating_folders_and_replacing_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "checkpoint"
    write_file(target, b"first")
    write_file(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["checkpoint"]


def test_a_failed_write_is_storage_unavailable_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()  # a folder where the file should go: the rename fails
    with pytest.raises(StorageUnavailable) as caught:
        write_file(target, b"data")
    assert caught.value.message.startswith(f"cannot write {target}: [Errno 21] Is a directory")
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]
