"""The one way the audit room writes a file: whole or not at all, and on disk when the call returns."""

from __future__ import annotations

from pathlib import Path

from rempart.errors import StorageUnavailable
from rempart.files import write_atomically

__all__ = ["write_file"]


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, rename it into place, fsync the folder.

    Creates missing folders. A reader, or the file after a crash, is the old
    content or the new, never a part. Raises StorageUnavailable on any
    operating-system error, after removing the temporary file.
    """
    try:
        # 0o600: a subject's report names who read the subject's data; the auditor shares it on purpose.
        write_atomically(path, data, mode=0o600)
    except OSError as exc:
        raise StorageUnavailable(f"cannot write {path}: {exc}") from exc
