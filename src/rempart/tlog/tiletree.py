"""The Merkle tree built and stored tile by tile. No I/O.

A *row* holds one tile's whole 8-level subtree: the 256 hashes at tree level
8·L (exactly the C2SP tile at level L), then the 128 above them, …, then the
2 just below the tile's root (the root itself is a hash of the tile one level
up). Positions not yet computed are zero. Rows are keyed by
``L << 56 | tile index``.

:class:`TiledTree` keeps the tree's right edge as one partial row per tile
level and appends whole batches of leaves level by level, hashing each run of
siblings with one list comprehension. Compared with node-by-node appending it
does the same hashing with a fraction of the interpreter work, and storage
writes one row per 256 entries instead of two rows per entry.

>>> from rempart.tlog.merkle import leaf_hash, naive_root
>>> leaves = [leaf_hash(i.to_bytes(2, "big")) for i in range(300)]
>>> tree = TiledTree.empty()
>>> _ = tree.extend(leaves)
>>> tree.size, tree.root() == naive_root(leaves)
(300, True)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from rempart.errors import Conflict, InvalidInput
from rempart.tlog.merkle import HASH_SIZE, NodeId, covering_nodes, fold_range
from rempart.tlog.tiles import TILE_HEIGHT, TILE_WIDTH

__all__ = [
    "ROW_BYTES",
    "TiledTree",
    "check_extends",
    "edge_keys",
    "locate",
    "read_nodes",
    "row_from_leaves",
    "row_key",
    "row_keys_for",
    "split_key",
]

_INDEX_BITS = 56
_ROW_HASHES = 2 * TILE_WIDTH - 2  # 256 + 128 + … + 2 = 510
ROW_BYTES = _ROW_HASHES * HASH_SIZE
_ZERO = bytes(HASH_SIZE)
# Offset, in bytes, of each sub-level inside a row: 0, 256, 384, …, 508 hashes.
_SUB_OFFSET = [((2 * TILE_WIDTH) - ((2 * TILE_WIDTH) >> s)) * HASH_SIZE for s in range(TILE_HEIGHT)]
_sha256 = hashlib.sha256


def row_key(tile_level: int, tile_index: int) -> int:
    return (tile_level << _INDEX_BITS) | tile_index


def locate(level: int, index: int) -> tuple[int, int]:
    """(row key, byte offset) of the stored hash of node (level, index)."""
    tile_level, sub = divmod(level, TILE_HEIGHT)
    tile_index = (index << sub) >> TILE_HEIGHT
    position = index - (tile_index << (TILE_HEIGHT - sub))
    return row_key(tile_level, tile_index), _SUB_OFFSET[sub] + position * HASH_SIZE


def row_keys_for(nodes: Sequence[NodeId]) -> list[int]:
    return sorted({locate(level, index)[0] for level, index in nodes})


def read_nodes(rows: Mapping[int, bytes], nodes: Sequence[NodeId]) -> list[bytes] | None:
    """The hashes of ``nodes`` out of rows; None if one is absent (row missing or zero)."""
    out = []
    for level, index in nodes:
        key, offset = locate(level, index)
        row = rows.get(key)
        if row is None:
            return None
        h = bytes(row[offset : offset + HASH_SIZE])
        if len(h) != HASH_SIZE or h == _ZERO:
            return None
        out.append(h)
    return out


def edge_keys(size: int) -> list[int]:
    """Keys of the partial rows that make up the right edge of a tree of ``size`` leaves."""
    keys: list[int] = []
    level = 0
    while True:
        count = size >> (TILE_HEIGHT * level)
        if count == 0:
            return keys
        if count % TILE_WIDTH:
            keys.append(row_key(level, count // TILE_WIDTH))
        level += 1


def check_extends(old: bytes | None, new: bytes) -> None:
    """Raise Conflict unless ``new`` keeps every hash ``old`` had (it may only fill zeros)."""
    if old is None:
        return
    if len(old) != len(new):
        raise Conflict("a stored tile row has the wrong length")
    if old == new:
        return
    # Each sub-level fills left to right, so what ``old`` holds of it is a prefix:
    # find its end (trailing zero bytes stripped, rounded up to whole hashes) and
    # compare that prefix in one go.
    for sub in range(TILE_HEIGHT):
        start = _SUB_OFFSET[sub]
        end = start + (TILE_WIDTH >> sub) * HASH_SIZE
        filled = len(old[start:end].rstrip(b"\x00"))
        stop = start + -(-filled // HASH_SIZE) * HASH_SIZE
        if old[start:stop] != new[start:stop]:
            raise Conflict("log append would overwrite a stored node hash")


def _fill(row: bytearray, start: int, hashes: Sequence[bytes]) -> bytes | None:
    """Write ``hashes`` at sub-level 0 from ``start``; compute every parent they complete.

    Returns the tile's root when the tile becomes full.
    """
    end = start + len(hashes)
    row[start * HASH_SIZE : end * HASH_SIZE] = b"".join(hashes)
    lo, hi = start, end
    sha = _sha256
    for sub in range(1, TILE_HEIGHT):
        lo, hi = lo >> 1, hi >> 1  # parents [lo, hi) at this sub-level are now complete
        if lo >= hi:
            break
        child = _SUB_OFFSET[sub - 1]
        parents = b"".join(
            [
                sha(b"\x01" + row[o : o + 2 * HASH_SIZE]).digest()
                for o in range(child + 2 * lo * HASH_SIZE, child + 2 * hi * HASH_SIZE, 2 * HASH_SIZE)
            ]
        )
        base = _SUB_OFFSET[sub]
        row[base + lo * HASH_SIZE : base + hi * HASH_SIZE] = parents
    if end == TILE_WIDTH:
        top = _SUB_OFFSET[TILE_HEIGHT - 1]
        return sha(b"\x01" + row[top : top + 2 * HASH_SIZE]).digest()
    return None


def row_from_leaves(hashes: bytes) -> bytes:
    """The level-0 row of a tile whose first ``len(hashes) // 32`` leaf hashes are ``hashes``.

    Every parent those leaves complete is computed; the rest stays zero. Lets
    storage keep a partial tile as its leaf hashes alone and rebuild the row.
    """
    if len(hashes) % HASH_SIZE or len(hashes) > TILE_WIDTH * HASH_SIZE:
        raise InvalidInput(f"{len(hashes)} bytes are not up to {TILE_WIDTH} whole hashes")
    row = bytearray(ROW_BYTES)
    _fill(row, 0, [hashes[i : i + HASH_SIZE] for i in range(0, len(hashes), HASH_SIZE)])
    return bytes(row)


def split_key(key: int) -> tuple[int, int]:
    """(tile level, tile index) of a row key."""
    return key >> _INDEX_BITS, key & ((1 << _INDEX_BITS) - 1)


class TiledTree:
    """A tree's size and right-edge rows; appends batches and yields the rows to store."""

    __slots__ = ("_edge", "size")

    def __init__(self, size: int, edge: Mapping[int, bytes]) -> None:
        expected = edge_keys(size)
        if sorted(edge) != expected:
            raise InvalidInput(f"a tree of size {size} has edge rows {expected}, got {sorted(edge)}")
        self.size = size
        self._edge = {k: bytes(v) for k, v in edge.items()}

    @classmethod
    def empty(cls) -> TiledTree:
        return cls(0, {})

    def copy(self) -> TiledTree:
        return TiledTree(self.size, self._edge)

    def extend(self, leaves: Sequence[bytes]) -> dict[int, bytes]:
        """Append leaf hashes; return every row that changed (new or grown), by key."""
        changed: dict[int, bytes] = {}
        hashes: Sequence[bytes] = leaves
        first = self.size  # index, at this tile level's tree level, of hashes[0]
        level = 0
        while hashes:
            promoted: list[bytes] = []
            i = 0
            while i < len(hashes):
                pos = first + i
                tile_index, start = divmod(pos, TILE_WIDTH)
                take = min(TILE_WIDTH - start, len(hashes) - i)
                key = row_key(level, tile_index)
                previous = self._edge.pop(key, None)
                row = bytearray(previous) if previous is not None else bytearray(ROW_BYTES)
                root = _fill(row, start, hashes[i : i + take])
                changed[key] = bytes(row)
                if root is None:
                    self._edge[key] = changed[key]
                else:
                    promoted.append(root)
                i += take
            # Only the tile holding ``first`` can be the first to complete, so the
            # promoted roots start at its index one tile level up.
            hashes, first = promoted, first // TILE_WIDTH
            level += 1
        self.size += len(leaves)
        return changed

    def root(self) -> bytes:
        nodes = covering_nodes(0, self.size)
        hashes = read_nodes(self._edge, nodes)
        if hashes is None:  # pragma: no cover - the edge always holds the covering nodes
            raise InvalidInput("tree edge does not hold its covering nodes")
        return fold_range(hashes)
