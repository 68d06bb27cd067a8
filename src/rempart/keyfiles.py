"""Secret files on disk: written atomically, readable by their owner alone, never printed.

Every private key Rempart keeps in a file (the log's signing key, a
witness's cosigning key, a principal's approval key, the local keyring of
key-encryption keys) goes through these two functions.
"""

from __future__ import annotations

import stat
from pathlib import Path

from rempart.errors import ConfigurationError, NotFound
from rempart.files import write_atomically

__all__ = ["read_secret_file", "read_secret_text", "write_secret_file"]


def write_secret_file(path: Path, content: bytes, *, overwrite: bool = False) -> None:
    """Write ``content`` to ``path`` with mode 0600, atomically (temp file, fsync, rename)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ConfigurationError(f"{path} already exists; refusing to overwrite a key", path=str(path))
    try:
        write_atomically(path, content, mode=0o600)
    except OSError as exc:
        raise ConfigurationError(f"cannot write key file {path}: {exc.strerror}", path=str(path)) from exc


def read_secret_file(path: Path) -> bytes:
    """Read a secret file, refusing one that others than its owner can read or write."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise NotFound(f"key file {path} does not exist", path=str(path)) from exc
    except OSError as exc:
        raise ConfigurationError(f"cannot read key file {path}: {exc.strerror}", path=str(path)) from exc
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"key file {path} is accessible to group or others (mode "
            f"{stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}",
            path=str(path),
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read key file {path}: {exc.strerror}", path=str(path)) from exc


def read_secret_text(path: Path) -> str:
    """A secret file holding one text key (a note private key, say), without surrounding space."""
    try:
        return read_secret_file(path).decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"key file {path} is not UTF-8 text", path=str(path)) from exc
