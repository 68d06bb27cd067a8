"""Hypothesis: the tiled tree, appended in any batches, stores exactly the naive tree's hashes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rempart.errors import Conflict
from rempart.tlog.merkle import HASH_SIZE, leaf_hash, naive_root
from rempart.tlog.tiles import TILE_WIDTH
from rempart.tlog.tiletree import TiledTree, check_extends, edge_keys, locate, read_nodes, row_from_leaves
from tests.treeutil import DictTree

MAX = 3 * TILE_WIDTH + 40
_REFERENCE = DictTree([i.to_bytes(4, "big") for i in range(MAX)])
_LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(MAX)]


@given(st.lists(st.integers(1, 2 * TILE_WIDTH), min_size=1, max_size=5))
@settings(max_examples=60, deadline=None)
def test_any_batches_store_every_node_of_the_naive_tree(batches: list[int]) -> None:
    tree = TiledTree.empty()
    rows: dict[int, bytes] = {}
    for batch in batches:
        first = tree.size
        if first >= MAX:
            break
        changed = tree.extend(_LEAVES[first : first + batch])
        for key, row in changed.items():
            check_extends(rows.get(key), row)  # a row only ever fills zeros
            rows[key] = row
        size = tree.size
        assert tree.root() == naive_root(_LEAVES[:size])
        reopened = TiledTree(size, {key: rows[key] for key in edge_keys(size)})  # as recovery does
        assert reopened.root() == tree.root()
    stored = {node: h for node, h in _REFERENCE.nodes.items() if node.end <= tree.size}
    assert read_nodes(rows, list(stored)) == list(stored.values())
    edge_tile, filled = divmod(tree.size, TILE_WIDTH)
    if filled:  # storage may keep a partial level-0 tile as its leaves alone and rebuild the row
        key = locate(0, edge_tile * TILE_WIDTH)[0]
        leaves = b"".join(_LEAVES[edge_tile * TILE_WIDTH : tree.size])
        assert row_from_leaves(leaves) == rows[key]


@given(st.integers(1, MAX - 1).filter(lambda n: n % TILE_WIDTH), st.integers(0, HASH_SIZE * 8 - 1))
@settings(max_examples=60, deadline=None)
def test_a_changed_stored_hash_is_a_conflict(size: int, bit: int) -> None:
    tree = TiledTree.empty()
    before = tree.extend(_LEAVES[:size])
    after = tree.extend(_LEAVES[size : size + 1])
    key, offset = locate(0, size - 1)  # the last leaf stored before the append, in the same tile
    old = before[key]
    new = bytearray(after[key])
    new[offset + bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(Conflict, match="overwrite a stored node hash"):
        check_extends(old, bytes(new))
    check_extends(old, after[key])
