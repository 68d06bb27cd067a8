"""The narrow storage interface of the transparency log, and its contract.

Every backend (in-memory, SQLite, PostgreSQL) implements :class:`LogStorage`
and passes the same conformance suite (``tests/conformance/test_log_storage.py``).

Contract
--------
* :meth:`LogStorage.append` is **atomic** and **durable when it returns**: either
  every entry ``[first, first+len(entries))`` and every node hash of the batch
  is committed (and fsynced, as far as the database promises it), or nothing
  is. It **fences**: if the stored size is not ``first`` (another sequencer
  appended, or this one is stale) it raises :class:`~rempart.errors.Conflict`
  and writes nothing, so two sequencers can never fork the log.
* Entries and node hashes, once stored, never change. Reads never see a
  partially applied batch.
* :meth:`LogStorage.put_checkpoint` is durable when it returns. Checkpoints
  only grow: storing one smaller than the latest raises ``Conflict``; storing
  the same size again replaces its note (to add cosignatures).
* Any database failure is raised as :class:`~rempart.errors.StorageUnavailable`,
  never as a driver exception.

Node hashes are keyed by :func:`node_key`, ``level << 56 | index``, so that the
hashes of one tile level are one contiguous key range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rempart.tlog.merkle import NodeId

__all__ = ["LogStorage", "StoredCheckpoint", "node_key"]

_INDEX_BITS = 56


def node_key(node: NodeId) -> int:
    return (node.level << _INDEX_BITS) | node.index


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    size: int
    note: bytes
    """The signed checkpoint note, with any cosignatures collected so far."""


class LogStorage(Protocol):
    def size(self) -> int:
        """How many entries are durably stored."""
        ...

    def append(
        self,
        first: int,
        entries: Sequence[bytes],
        nodes: Sequence[tuple[NodeId, bytes]],
    ) -> None:
        """Store ``entries`` at ``first…`` and their node hashes, atomically and durably."""
        ...

    def read_hashes(self, nodes: Sequence[NodeId]) -> list[bytes]:
        """Node hashes in the order asked; raises NotFound if one is missing."""
        ...

    def read_level(self, level: int, start: int, end: int) -> list[bytes]:
        """Node hashes ``(level, start) … (level, end-1)``; raises NotFound if one is missing."""
        ...

    def read_entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``start … end-1``; raises NotFound if one is missing."""
        ...

    def put_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        ...

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        ...

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        """The checkpoint published for exactly ``size`` entries, if any."""
        ...

    def close(self) -> None:
        ...
