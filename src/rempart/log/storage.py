"""The narrow storage interface of the transparency log, and its contract.

Every backend (in-memory, SQLite, PostgreSQL) implements :class:`LogStorage`
and passes the same conformance suite (``tests/conformance/test_log_storage.py``).

Node hashes are stored as tile *rows* (:mod:`rempart.tlog.tiletree`): one row
per tile holding its 8-level subtree, keyed ``tile level << 56 | tile index``.

Contract
--------
* :meth:`LogStorage.append` is **atomic** and **durable when it returns**: either
  every entry ``[first, first+len(entries))`` and every row of the batch is
  committed (and fsynced, as far as the database promises it), or nothing is.
  It **fences**: if the stored size is not ``first`` (another sequencer
  appended, or this one is stale) it raises :class:`~rempart.errors.Conflict`
  and writes nothing, so two sequencers can never fork the log.
* Entries never change. A row may only grow: a new version must keep every
  hash the stored one has (it fills zero positions); otherwise ``Conflict``.
  Reads never see a partially applied batch.
* :meth:`LogStorage.put_checkpoint` is durable when it returns. Checkpoints
  only grow: storing one smaller than the latest raises ``Conflict``; storing
  the same size again replaces its note (to add cosignatures).
* Any database failure is raised as :class:`~rempart.errors.StorageUnavailable`,
  never as a driver exception.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from rempart.errors import NotFound
from rempart.tlog.merkle import NodeId
from rempart.tlog.tiletree import read_nodes, row_keys_for

__all__ = ["LogStorage", "RowHashReads", "StoredCheckpoint"]


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    size: int
    note: bytes
    """The signed checkpoint note, with any cosignatures collected so far."""


class LogStorage(Protocol):
    def size(self) -> int:
        """How many entries are durably stored."""
        ...

    def append(self, first: int, entries: Sequence[bytes], rows: Mapping[int, bytes]) -> None:
        """Store ``entries`` at ``first…`` and the grown tile rows, atomically and durably."""
        ...

    def read_rows(self, keys: Sequence[int]) -> dict[int, bytes]:
        """The stored rows among ``keys`` (absent keys are left out)."""
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

    def put_checkpoint(self, checkpoint: StoredCheckpoint) -> None: ...

    def latest_checkpoint(self) -> StoredCheckpoint | None: ...

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        """The checkpoint published for exactly ``size`` entries, if any."""
        ...

    def close(self) -> None: ...


class RowHashReads:
    """Node-hash reads on top of ``read_rows``, shared by every backend."""

    def read_rows(self, keys: Sequence[int]) -> dict[int, bytes]:
        raise NotImplementedError

    def read_hashes(self, nodes: Sequence[NodeId]) -> list[bytes]:
        if not nodes:
            return []
        hashes = read_nodes(self.read_rows(row_keys_for(nodes)), nodes)
        if hashes is None:
            raise NotFound("a log node hash is not stored")
        return hashes

    def read_level(self, level: int, start: int, end: int) -> list[bytes]:
        return self.read_hashes([NodeId(level, i) for i in range(start, end)])
