"""Replacing a file on disk whole or not at all: the one way Rempart writes one.

Secrets (:mod:`rempart.keyfiles`), the audit room's reports and evidence, the
verifier's state, exported tiles and TUF metadata all go through
:func:`write_atomically`; each caller says what an error means in its own terms.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["fsync_path", "write_atomically"]


def write_atomically(path: Path, data: bytes, *, mode: int, durable: bool = True) -> None:
    """Replace ``path`` with ``data``: written to a temporary file beside it, then renamed into place.

    A reader sees the old content or the new, never a part. ``mode`` is the new
    file's permission bits (0o600 for secrets, 0o644 for what others serve or
    read). ``durable``: the file and then its folder are fsynced before the call
    returns, so the new content survives a crash; without, the system writes it
    when it will (for files that are cheap to write again). Missing folders are
    created. Raises :class:`OSError`, after removing the temporary file.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "a" / "note.txt"
    >>> write_atomically(target, b"hello", mode=0o644)
    >>> target.read_bytes(), oct(target.stat().st_mode & 0o777)
    (b'hello', '0o644')
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_path(path.parent)  # the rename is durable once the folder is


def fsync_path(path: Path) -> None:
    """Flush a file, or a folder's entries (renames, new names), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
