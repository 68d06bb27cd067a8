"""The one way the audit room writes a file: whole or not at all, and on disk when the call returns."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from rempart.errors import StorageUnavailable

__all__ = ["write_file"]


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, rename it into place, fsync the folder.

    Creates missing folders. A reader, or the file after a crash, is the old
    content or the new, never a part. Raises StorageUnavailable on any
    operating-system error, after removing the temporary file.
    """
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        folder = os.open(path.parent, os.O_RDONLY)  # the rename itself is durable once the folder is
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise StorageUnavailable(f"cannot write {path}: {exc}") from exc
