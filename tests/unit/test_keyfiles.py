"""Secret files: mode 0600, atomic, refused when others can read them; every failure a RempartError."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rempart.errors import ConfigurationError, NotFound
from rempart.keyfiles import read_secret_file, read_secret_text, write_secret_file


def test_written_owner_only_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "log.key"
    write_secret_file(path, b"PRIVATE+KEY+x\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_secret_file(path) == b"PRIVATE+KEY+x\n"
    assert read_secret_text(path) == "PRIVATE+KEY+x"
    assert [p.name for p in path.parent.iterdir()] == ["log.key"]  # no temporary file left


def test_an_existing_key_is_kept_unless_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "log.key"
    write_secret_file(path, b"one")
    with pytest.raises(ConfigurationError, match="refusing to overwrite a key"):
        write_secret_file(path, b"two")
    write_secret_file(path, b"two", overwrite=True)
    assert read_secret_file(path) == b"two"


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.key"
    write_secret_file(path, b"secret")
    os.chmod(path, 0o640)
    with pytest.raises(ConfigurationError, match=r"mode 0640\); run: chmod 600"):
        read_secret_file(path)


def test_unreadable_and_unwritable_paths_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        read_secret_file(tmp_path / "missing.key")
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(ConfigurationError, match="cannot write key file"):
        write_secret_file(blocker / "log.key", b"secret")
    with pytest.raises(ConfigurationError, match="cannot read key file"):
        read_secret_file(blocker / "log.key")
    binary = tmp_path / "binary.key"
    write_secret_file(binary, b"\xff\xfe")
    with pytest.raises(ConfigurationError, match="is not UTF-8 text"):
        read_secret_text(binary)
