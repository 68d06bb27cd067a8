"""An in-memory :class:`~rempart.log.storage.LogStorage`, for tests and tools.

Atomic like the others; durable only for the life of the process.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from rempart.errors import Conflict, NotFound
from rempart.log.storage import StoredCheckpoint, node_key
from rempart.tlog.merkle import NodeId

__all__ = ["MemoryLogStorage"]


class MemoryLogStorage:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[bytes] = []
        self._nodes: dict[int, bytes] = {}
        self._checkpoints: dict[int, bytes] = {}

    def size(self) -> int:
        return len(self._entries)

    def append(
        self, first: int, entries: Sequence[bytes], nodes: Sequence[tuple[NodeId, bytes]]
    ) -> None:
        with self._lock:
            if first != len(self._entries):
                raise Conflict(
                    f"log append at {first} but the log holds {len(self._entries)} entries",
                    stored_size=len(self._entries),
                )
            new = {node_key(n): h for n, h in nodes}
            if len(new) != len(nodes) or not new.keys().isdisjoint(self._nodes):
                raise Conflict("log append would overwrite a stored node hash")
            self._nodes.update(new)
            self._entries.extend(entries)

    def read_hashes(self, nodes: Sequence[NodeId]) -> list[bytes]:
        try:
            return [self._nodes[node_key(n)] for n in nodes]
        except KeyError as exc:
            raise NotFound("log node hash not stored") from exc

    def read_level(self, level: int, start: int, end: int) -> list[bytes]:
        return self.read_hashes([NodeId(level, i) for i in range(start, end)])

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
