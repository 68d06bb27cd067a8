"""An in-memory :class:`~rempart.log.storage.LogStorage`, for tests and tools.

Atomic like the others; durable only for the life of the process.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from rempart.errors import Conflict, NotFound
from rempart.log.storage import RowHashReads, StoredCheckpoint
from rempart.tlog.tiletree import check_extends

__all__ = ["MemoryLogStorage"]


class MemoryLogStorage(RowHashReads):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[bytes] = []
        self._rows: dict[int, bytes] = {}
        self._checkpoints: dict[int, bytes] = {}

    def size(self) -> int:
        return len(self._entries)

    def append(self, first: int, entries: Sequence[bytes], rows: Mapping[int, bytes]) -> None:
        with self._lock:
            if first != len(self._entries):
                raise Conflict(
                    f"log append at {first} but the log holds {len(self._entries)} entries",
                    stored_size=len(self._entries),
                )
            for key, row in rows.items():
                check_extends(self._rows.get(key), row)
            self._rows.update(rows)
            self._entries.extend(entries)

    def read_rows(self, keys: Sequence[int]) -> dict[int, bytes]:
        return {k: self._rows[k] for k in keys if k in self._rows}

    def read_entries(self, start: int, end: int) -> list[bytes]:
        if not 0 <= start <= end <= len(self._entries):
            raise NotFound(f"entries [{start}, {end}) are not all stored")
        return self._entries[start:end]

    def put_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        with self._lock:
            latest = max(self._checkpoints, default=-1)
            if checkpoint.size < latest:
                raise Conflict(
                    f"checkpoint of size {checkpoint.size} is older than the latest ({latest})"
                )
            self._checkpoints[checkpoint.size] = checkpoint.note

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        if not self._checkpoints:
            return None
        size = max(self._checkpoints)
        return StoredCheckpoint(size, self._checkpoints[size])

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        note = self._checkpoints.get(size)
        return None if note is None else StoredCheckpoint(size, note)

    def close(self) -> None:
        pass
