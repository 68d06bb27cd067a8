"""Full verification of a tiled log against a checkpoint root. No I/O.

:func:`verify_tiles` fetches every entry bundle and hash tile of a tree
through the caller's ``fetch``, recomputes every leaf hash and every tile
hash from the entries, checks each served tile byte for byte against the
recomputation, and checks the final root against the checkpoint's. It hashes
each leaf once and each inner node once, tile by tile: the floor of two
SHA-256 per entry, plus the reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rempart.errors import VerificationFailed
from rempart.tlog.merkle import covering_nodes, fold_range
from rempart.tlog.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    TilePath,
    decode_entry_bundle,
    tile_for_size,
    tile_root,
)

__all__ = ["VerifiedEntries", "verify_tiles"]

Fetch = Callable[[TilePath], bytes]
EntryCallback = Callable[[int, list[bytes]], None]


@dataclass(frozen=True, slots=True)
class VerifiedEntries:
    size: int
    root: bytes


def _leaf_hashes(entries: list[bytes]) -> list[bytes]:
    sha = hashlib.sha256
    return [sha(b"\x00" + e).digest() for e in entries]


def verify_tiles(
    size: int,
    root: bytes,
    fetch: Fetch,
    *,
    on_entries: EntryCallback | None = None,
) -> VerifiedEntries:
    """Recompute the whole tree of ``size`` from its tiles; raise on any mismatch.

    ``on_entries(first_index, entries)`` sees every bundle's entries once they
    have been checked against their level-0 tile (and, at the end, the root):
    a mirror can store them, an auditor can replay them.
    """
    # levels[k]: the hashes at tree level 8k computed so far. Level 0 keeps only
    # the last partial tile (offset0 is its first leaf index): every node of the
    # tree's right edge below level 8 lies inside it. Higher levels are small.
    levels: list[list[bytes]] = [[]]
    offset0 = 0

    def push(k: int, hashes: list[bytes]) -> None:
        while len(levels) <= k:
            levels.append([])
        levels[k].extend(hashes)

    bundles = size // TILE_WIDTH
    for n in range(bundles + (1 if size % TILE_WIDTH else 0)):
        width = min(TILE_WIDTH, size - n * TILE_WIDTH)
        bundle = TilePath(None, n, width)
        entries = decode_entry_bundle(fetch(bundle), width)
        leaves = _leaf_hashes(entries)
        tile = TilePath(0, n, width)
        if fetch(tile) != b"".join(leaves):
            raise VerificationFailed(
                f"{tile.path()} does not match the hashes of {bundle.path()}",
                tile=tile.path(),
            )
        if on_entries is not None:
            on_entries(n * TILE_WIDTH, entries)
        if width == TILE_WIDTH:
            push(1, [tile_root(leaves)])
        else:
            levels[0], offset0 = leaves, n * TILE_WIDTH
    k = 1
    while k < len(levels):
        hashes = levels[k]
        for tile in _tiles_at(k, size):
            start = tile.index * TILE_WIDTH
            expected = b"".join(hashes[start : start + tile.width])
            if fetch(tile) != expected:
                raise VerificationFailed(
                    f"{tile.path()} does not match the hashes recomputed from the entries",
                    tile=tile.path(),
                )
        full = len(hashes) // TILE_WIDTH
        if full:
            groups = [hashes[i * TILE_WIDTH : (i + 1) * TILE_WIDTH] for i in range(full)]
            push(k + 1, [tile_root(g) for g in groups])
        k += 1
    computed = _root_from_levels(size, levels, offset0)
    if computed != root:
        raise VerificationFailed(
            f"entries recompute to root {computed.hex()} at size {size}, "
            f"but the checkpoint says {root.hex()}",
            size=size,
        )
    return VerifiedEntries(size, computed)


def _tiles_at(k: int, size: int) -> Iterator[TilePath]:
    count = size >> (TILE_HEIGHT * k)
    for n in range((count + TILE_WIDTH - 1) // TILE_WIDTH):
        tile = tile_for_size(k, n, size)
        if tile is not None:
            yield tile


def _root_from_levels(size: int, levels: list[list[bytes]], offset0: int) -> bytes:
    hashes = []
    for node in covering_nodes(0, size):
        k, sub = divmod(node.level, TILE_HEIGHT)
        first = (node.index << sub) - (offset0 if k == 0 else 0)
        span = levels[k][first : first + (1 << sub)]
        hashes.append(tile_root(span))
    return fold_range(hashes)
