"""C2SP tlog-tiles arithmetic and paths. No I/O.

A hash tile at level ``L`` and index ``N`` lists the tree hashes at tree level
``8·L`` for nodes ``N·256 … N·256+W-1``; an entry bundle ``tile/entries/N``
lists entries ``N·256 …``, each prefixed by its big-endian uint16 length.

>>> TilePath.parse("tile/0/x001/x234/067.p/8")
TilePath(level=0, index=1234067, width=8)
>>> TilePath(level=None, index=5, width=256).path()
'tile/entries/005'
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from rempart.errors import InvalidInput, VerificationFailed
from rempart.tlog.merkle import HASH_SIZE, NodeId, node_hash

__all__ = [
    "MAX_ENTRY_SIZE",
    "MAX_TILE_LEVEL",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TileHashReader",
    "TilePath",
    "decode_entry_bundle",
    "encode_entry_bundle",
    "entry_bundles_for_size",
    "hash_tiles_for_size",
    "split_hash_tile",
    "tile_for_size",
    "tile_root",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_TILE_LEVEL = 63
MAX_ENTRY_SIZE = 0xFFFF  # entry bundles prefix each entry with a uint16 length

_ELEMENT = re.compile(r"^x?\d{3}\Z")


def _encode_index(index: int) -> str:
    groups = []
    while True:
        groups.append(f"{index % 1000:03d}")
        index //= 1000
        if index == 0:
            break
    groups.reverse()
    return "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])


@dataclass(frozen=True, slots=True)
class TilePath:
    """One tile: ``level`` None means the entry bundle; ``width`` 256 means full."""

    level: int | None
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if self.level is not None and not 0 <= self.level <= MAX_TILE_LEVEL:
            raise InvalidInput(f"tile level must be 0..{MAX_TILE_LEVEL}, got {self.level}")
        if self.index < 0:
            raise InvalidInput(f"tile index must be non-negative, got {self.index}")
        if not 1 <= self.width <= TILE_WIDTH:
            raise InvalidInput(f"tile width must be 1..{TILE_WIDTH}, got {self.width}")

    @property
    def is_full(self) -> bool:
        return self.width == TILE_WIDTH

    @property
    def is_entries(self) -> bool:
        return self.level is None

    def path(self) -> str:
        level = "entries" if self.level is None else str(self.level)
        suffix = "" if self.is_full else f".p/{self.width}"
        return f"tile/{level}/{_encode_index(self.index)}{suffix}"

    def nodes(self) -> list[NodeId]:
        """The tree nodes a hash tile lists (level 0 for an entry bundle's leaves)."""
        tree_level = TILE_HEIGHT * (self.level or 0)
        first = self.index * TILE_WIDTH
        return [NodeId(tree_level, first + i) for i in range(self.width)]

    @classmethod
    def parse(cls, path: str) -> TilePath:
        """Parse ``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]`` strictly."""
        parts = path.split("/")
        if len(parts) < 3 or parts[0] != "tile":
            raise InvalidInput(f"not a tile path: {path!r} (expected tile/<L>/<N>[.p/<W>])")
        level_text, rest = parts[1], parts[2:]
        if level_text == "entries":
            level: int | None = None
        elif re.fullmatch(r"0|[1-9]\d?", level_text) and int(level_text) <= MAX_TILE_LEVEL:
            level = int(level_text)
        else:
            raise InvalidInput(
                f"bad tile level {level_text!r} in {path!r}: "
                f"a decimal 0..{MAX_TILE_LEVEL} without leading zeros, or 'entries'"
            )
        width = TILE_WIDTH
        if len(rest) >= 2 and rest[-2].endswith(".p"):
            width_text = rest[-1]
            if not re.fullmatch(r"[1-9]\d{0,2}", width_text) or int(width_text) >= TILE_WIDTH:
                raise InvalidInput(
                    f"bad partial width {width_text!r} in {path!r}: a decimal 1..255 "
                    "without leading zeros"
                )
            width = int(width_text)
            rest = [*rest[:-2], rest[-2][:-2]]
        if not rest:
            raise InvalidInput(f"tile path {path!r} has no index")
        for i, element in enumerate(rest):
            last = i == len(rest) - 1
            if not _ELEMENT.match(element) or element.startswith("x") == last:
                raise InvalidInput(
                    f"bad index element {element!r} in {path!r}: 3 digits, "
                    "with an 'x' before every element but the last"
                )
        if len(rest) > 1 and rest[0] == "x000":
            raise InvalidInput(f"index in {path!r} has a leading zero group")
        index = int("".join(e.lstrip("x") for e in rest))
        return cls(level, index, width)


def hash_tiles_for_size(size: int) -> Iterator[TilePath]:
    """Every hash tile (full and the rightmost partial ones) a tree of ``size`` serves."""
    level = 0
    while True:
        count = size >> (TILE_HEIGHT * level)  # hashes at this tile level
        if count == 0:
            return
        for n in range(count // TILE_WIDTH):
            yield TilePath(level, n)
        if count % TILE_WIDTH:
            yield TilePath(level, count // TILE_WIDTH, count % TILE_WIDTH)
        level += 1


def entry_bundles_for_size(size: int, start_bundle: int = 0) -> Iterator[TilePath]:
    """Every entry bundle of a tree of ``size``, from ``start_bundle`` on."""
    for n in range(start_bundle, size // TILE_WIDTH):
        yield TilePath(None, n)
    if size % TILE_WIDTH and size // TILE_WIDTH >= start_bundle:
        yield TilePath(None, size // TILE_WIDTH, size % TILE_WIDTH)


def tile_for_size(level: int, index: int, size: int) -> TilePath | None:
    """The hash tile at (level, index) as a tree of ``size`` serves it, or None if it has none."""
    count = size >> (TILE_HEIGHT * level)
    first = index * TILE_WIDTH
    if first >= count:
        return None
    return TilePath(level, index, min(TILE_WIDTH, count - first))


def encode_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Each entry prefixed by its big-endian uint16 length."""
    for entry in entries:
        if len(entry) > MAX_ENTRY_SIZE:
            raise InvalidInput(f"entry of {len(entry)} bytes exceeds {MAX_ENTRY_SIZE}")
    return b"".join([len(e).to_bytes(2, "big") + e for e in entries])


def decode_entry_bundle(data: bytes, count: int) -> list[bytes]:
    """Split a bundle that must hold exactly ``count`` entries."""
    entries: list[bytes] = []
    offset = 0
    view = memoryview(data)
    while offset < len(data):
        if offset + 2 > len(data):
            raise VerificationFailed(f"entry bundle truncated in a length prefix at byte {offset}")
        (length,) = struct.unpack_from(">H", data, offset)
        offset += 2
        if offset + length > len(data):
            raise VerificationFailed(
                f"entry bundle truncated: entry {len(entries)} wants {length} bytes at {offset}"
            )
        entries.append(bytes(view[offset : offset + length]))
        offset += length
    if len(entries) != count:
        raise VerificationFailed(f"entry bundle holds {len(entries)} entries, expected {count}")
    return entries


def split_hash_tile(data: bytes, tile: TilePath) -> list[bytes]:
    if len(data) != tile.width * HASH_SIZE:
        raise VerificationFailed(
            f"{tile.path()} is {len(data)} bytes, expected {tile.width * HASH_SIZE}"
        )
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def tile_root(hashes: Sequence[bytes]) -> bytes:
    """The Merkle hash of a power-of-two run of sibling hashes (a full tile: the node one level up)."""
    level = list(hashes)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


class TileHashReader:
    """A :class:`~rempart.tlog.merkle.HashReader` over tiles of a tree of known size.

    ``fetch(tile) -> bytes`` is the caller's I/O (HTTP, files); tiles are fetched
    once each per ``read_hashes`` call and every hash is derived from tile
    contents, so a lying server produces a wrong root, which callers check.
    """

    def __init__(self, size: int, fetch: Callable[[TilePath], bytes]) -> None:
        self.size = size
        self._fetch = fetch

    def read_hashes(self, nodes: Sequence[NodeId]) -> list[bytes]:
        tiles: dict[tuple[int, int], list[bytes]] = {}
        out = []
        for node in nodes:
            if node.end > self.size:
                raise InvalidInput(f"node {node} is beyond tree size {self.size}")
            tile_level, sub = divmod(node.level, TILE_HEIGHT)
            first = node.index << sub  # first hash at tree level 8·tile_level
            key = (tile_level, first >> TILE_HEIGHT)
            if key not in tiles:
                tile = tile_for_size(tile_level, key[1], self.size)
                if tile is None:
                    raise InvalidInput(f"no tile holds node {node} at size {self.size}")
                tiles[key] = split_hash_tile(self._fetch(tile), tile)
            hashes = tiles[key]
            offset = first % TILE_WIDTH
            span = hashes[offset : offset + (1 << sub)]
            if len(span) != 1 << sub:
                raise InvalidInput(f"tile too narrow for node {node}")
            out.append(tile_root(span))
        return out
