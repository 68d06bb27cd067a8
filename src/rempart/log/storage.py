"""The narrow storage interface of the transparency log, and its contract.

Every backend (in-memory, SQLite, PostgreSQL) implements :class:`LogStorage`
and passes the same conformance suite (``tests/conformance/test_log_storage.py``).

Node hashes are stored as tile *rows* (:mod:`rempart.tlog.tiletree`): one row
per tile holding its 8-level subtree, keyed ``tile level << 56 | tile index``.
The SQL backends keep a level-0 tile that is not yet full as the runs of
leaf hashes each batch added (``log_edge``), and write its row only once the
tile fills: a small group commit then writes two small rows, not a 16 KB one.
The SQL backends store entries as *chunks*: one row per run of consecutive
entries written together that stays inside one entry bundle, encoded exactly
as a tlog-tiles bundle (uint16 length prefixes), so a bundle is the
concatenation of its chunks and a bulk batch writes one row per 256 entries.

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
from typing import NamedTuple, Protocol

from rempart.errors import Conflict, NotFound, VerificationFailed
from rempart.tlog.merkle import HASH_SIZE, NodeId
from rempart.tlog.tiles import TILE_WIDTH, decode_entry_bundle, encode_entry_bundle
from rempart.tlog.tiletree import read_nodes, row_from_leaves, row_key, row_keys_for, split_key

__all__ = [
    "EdgeRows",
    "LeafRun",
    "LogStorage",
    "RowHashReads",
    "StoredCheckpoint",
    "check_run_follows",
    "chunk_entries",
    "entries_from_chunks",
    "split_rows",
]


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


def chunk_entries(first: int, entries: Sequence[bytes]) -> list[tuple[int, int, bytes]]:
    """Split entries at bundle boundaries into ``(start, count, bundle-encoded bytes)`` rows."""
    chunks = []
    i = 0
    while i < len(entries):
        start = first + i
        take = min(TILE_WIDTH - start % TILE_WIDTH, len(entries) - i)
        chunks.append((start, take, encode_entry_bundle(entries[i : i + take])))
        i += take
    return chunks


def entries_from_chunks(rows: Sequence[tuple[int, int, bytes]], start: int, end: int) -> list[bytes]:
    """Entries ``[start, end)`` out of chunk rows ordered by start; NotFound if any is missing."""
    out: list[bytes] = []
    expected = None
    for chunk_start, count, data in rows:
        if expected is not None and chunk_start != expected:
            break
        entries = decode_entry_bundle(bytes(data), count)
        lo, hi = max(start, chunk_start), min(end, chunk_start + count)
        if lo < hi:
            if not out and lo != start:
                break
            out.extend(entries[lo - chunk_start : hi - chunk_start])
        expected = chunk_start + count
    if len(out) != end - start:
        raise NotFound(f"log entries [{start}, {end}) are not all stored")
    return out


class LeafRun(NamedTuple):
    """Leaf hashes a batch adds to a level-0 tile that stays partial."""

    tile: int
    start: int
    hashes: bytes
    before: bytes
    """The leaf hash the batch believes sits at ``start - 1`` (empty at 0): checked against storage."""


def split_rows(first: int, count: int, rows: Mapping[int, bytes]) -> tuple[dict[int, bytes], list[LeafRun]]:
    """Rows to store whole, and the leaf hashes a batch added to level-0 tiles still partial.

    Level-0 tiles this batch completes and every higher row are whole; a
    level-0 tile left partial contributes only the leaves of this batch.
    """
    whole: dict[int, bytes] = {}
    runs: list[LeafRun] = []
    end = first + count
    for key, row in rows.items():
        level, tile = split_key(key)
        base = tile * TILE_WIDTH
        if level != 0 or end >= base + TILE_WIDTH:
            whole[key] = row
            continue
        lo = max(first, base) - base
        hi = end - base
        before = row[(lo - 1) * HASH_SIZE : lo * HASH_SIZE] if lo else b""
        runs.append(LeafRun(tile, lo, row[lo * HASH_SIZE : hi * HASH_SIZE], before))
    return whole, runs


def check_run_follows(run: LeafRun, last: tuple[int, bytes] | None) -> None:
    """Raise Conflict unless ``run`` starts right after the stored run ``last`` (start, hashes)."""
    if last is None:
        if run.start:
            raise Conflict(f"log append continues tile {run.tile} at {run.start}, but it holds no leaves")
        return
    start, hashes = last
    if start + len(hashes) // HASH_SIZE != run.start or bytes(hashes[-HASH_SIZE:]) != run.before:
        raise Conflict("log append would overwrite a stored node hash")


class EdgeRows:
    """Rebuilds partial level-0 rows from their stored runs of leaf hashes, remembering the last."""

    def __init__(self) -> None:
        self._built: dict[int, tuple[int, bytes]] = {}

    def rows(self, runs: Sequence[tuple[int, int, bytes]]) -> dict[int, bytes]:
        """``runs`` as (tile, start, hashes) ordered by tile then start → row by key."""
        leaves: dict[int, list[bytes]] = {}
        expected: dict[int, int] = {}
        for tile, start, hashes in runs:
            if start != expected.get(tile, 0):
                raise VerificationFailed(
                    f"the leaf hashes of tile {tile} are not contiguous at position {start}: "
                    "the log's storage was altered"
                )
            leaves.setdefault(tile, []).append(bytes(hashes))
            expected[tile] = start + len(hashes) // HASH_SIZE
        out: dict[int, bytes] = {}
        for tile, parts in leaves.items():
            data = b"".join(parts)
            cached = self._built.get(tile)
            if cached is None or cached[0] != len(data) or cached[1][: len(data)] != data:
                cached = (len(data), row_from_leaves(data))
                if len(self._built) > 64:
                    self._built.clear()
                self._built[tile] = cached
            out[row_key(0, tile)] = cached[1]
        return out
