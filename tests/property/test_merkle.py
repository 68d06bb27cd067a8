"""Hypothesis: proofs verify, every mutation fails, the incremental tree equals the naive one."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rempart.errors import VerificationFailed
from rempart.tlog.merkle import (
    consistency_proof,
    covering_nodes,
    fold_range,
    inclusion_proof,
    naive_root,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from tests.treeutil import DictTree

MAX = 300
_TREE = DictTree([i.to_bytes(4, "big") for i in range(MAX)])


def roots(size: int) -> bytes:
    return tree_root(size, _TREE)


@st.composite
def index_and_size(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX))
    return draw(st.integers(0, size - 1)), size


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(st.integers(1, MAX))
    return draw(st.integers(1, new)), new


def flip(h: bytes, bit: int) -> bytes:
    return h[: bit // 8] + bytes([h[bit // 8] ^ (1 << (bit % 8))]) + h[bit // 8 + 1 :]


@given(st.integers(0, MAX))
def test_incremental_root_equals_naive(size: int) -> None:
    assert roots(size) == naive_root(_TREE.leaves[:size])
    assert fold_range(_TREE.read_hashes(covering_nodes(0, size))) == roots(size)


@given(index_and_size(), st.data())
@settings(max_examples=300)
def test_inclusion_verifies_and_mutations_fail(case: tuple[int, int], data: st.DataObject) -> None:
    index, size = case
    leaf, root = _TREE.leaves[index], roots(size)
    proof = inclusion_proof(index, size, _TREE)
    verify_inclusion(leaf, index, size, proof, root)

    mutations: list[tuple[bytes, int, int, list[bytes], bytes]] = [
        (flip(leaf, data.draw(st.integers(0, 255))), index, size, proof, root),
        (leaf, index, size, proof, flip(root, data.draw(st.integers(0, 255)))),
        (leaf, index, size, [*proof, proof[0] if proof else leaf], root),
        (leaf, index, size * 2, proof, root),
    ]
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[i] = flip(bad[i], data.draw(st.integers(0, 255)))
        mutations.append((leaf, index, size, bad, root))
        mutations.append((leaf, index, size, proof[:-1], root))
    if size > 1:
        other = data.draw(st.integers(0, size - 1).filter(lambda j: j != index))
        mutations.append((leaf, other, size, proof, root))
    if index < size // 2:
        mutations.append((leaf, index, size // 2, proof, root))
    for args in mutations:
        with pytest.raises(VerificationFailed):
            verify_inclusion(*args)


@given(two_sizes(), st.data())
@settings(max_examples=300)
def test_consistency_verifies_and_mutations_fail(case: tuple[int, int], data: st.DataObject) -> None:
    old, new = case
    old_root, new_root = roots(old), roots(new)
    proof = consistency_proof(old, new, _TREE)
    verify_consistency(old, new, old_root, new_root, proof)

    mutations: list[tuple[int, int, bytes, bytes, list[bytes]]] = [
        (old, new, flip(old_root, data.draw(st.integers(0, 255))), new_root, proof),
        (old, new, old_root, flip(new_root, data.draw(st.integers(0, 255))), proof),
        (old, new, old_root, new_root, [*proof, old_root]),
    ]
    if old != new:
        mutations.append((old, new, new_root, old_root, proof))  # swapped roots
        i = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[i] = flip(bad[i], data.draw(st.integers(0, 255)))
        mutations.append((old, new, old_root, new_root, bad))
        mutations.append((old, new, old_root, new_root, proof[:-1]))
        mutations.append((old, new, old_root, new_root, proof[1:]))
    mutations.append((old, new * 2, old_root, new_root, proof))
    if old > 1:
        mutations.append((old // 2, new, old_root, new_root, proof))
    for args in mutations:
        with pytest.raises(VerificationFailed):
            verify_consistency(*args)
