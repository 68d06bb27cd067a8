"""RFC 6962 reference tree: every root and proof pinned byte for byte."""

from __future__ import annotations

import pytest

from rempart.errors import VerificationFailed
from rempart.tlog.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    naive_root,
    node_hash,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from tests.conftest import load_vector
from tests.treeutil import DictTree

V = load_vector("rfc6962-8leaf-reference.json")
LEAVES = [bytes.fromhex(x) for x in V["leaves_hex"]]
ROOTS = {int(k): bytes.fromhex(v) for k, v in V["roots_by_size_hex"].items()}
TREE = DictTree(LEAVES)


def test_hash_vectors() -> None:
    hv = V["hash_vectors"]
    assert EMPTY_ROOT.hex() == hv["empty_tree_root"]
    assert leaf_hash(b"").hex() == hv["leaf_hash_of_empty_leaf"]
    assert leaf_hash(b"L123456").hex() == hv["leaf_hash('L123456')"]
    assert node_hash(b"N123", b"N456").hex() == hv["node_hash('N123','N456')"]


@pytest.mark.parametrize("size", range(1, 9))
def test_roots(size: int) -> None:
    assert tree_root(size, TREE) == ROOTS[size]
    assert naive_root([leaf_hash(x) for x in LEAVES[:size]]) == ROOTS[size]
    sub = DictTree(LEAVES[:size])
    assert sub.frontier.root() == ROOTS[size]


def test_empty_root() -> None:
    assert tree_root(0, TREE) == EMPTY_ROOT
    assert DictTree().frontier.root() == EMPTY_ROOT


INCLUSION = V["inclusion_proofs_source"] + V["derived_all_inclusion_proofs"]
CONSISTENCY = V["consistency_proofs_source"] + V["derived_all_consistency_proofs"]


@pytest.mark.parametrize("case", INCLUSION, ids=lambda c: f"{c['leaf_index']}@{c['tree_size']}")
def test_inclusion(case: dict) -> None:
    index, size = case["leaf_index"], case["tree_size"]
    expected = [bytes.fromhex(h) for h in case["proof"]]
    assert inclusion_proof(index, size, TREE) == expected
    verify_inclusion(leaf_hash(LEAVES[index]), index, size, expected, ROOTS[size])


@pytest.mark.parametrize("case", CONSISTENCY, ids=lambda c: f"{c['size1']}->{c['size2']}")
def test_consistency(case: dict) -> None:
    m, n = case["size1"], case["size2"]
    expected = [bytes.fromhex(h) for h in case["proof"]]
    assert consistency_proof(m, n, TREE) == expected
    verify_consistency(m, n, ROOTS[m], ROOTS[n], expected)


def test_consistency_from_zero_is_rejected() -> None:
    with pytest.raises(VerificationFailed, match="empty tree"):
        verify_consistency(0, 8, EMPTY_ROOT, ROOTS[8], [])


def test_short_leaf_hash_is_rejected() -> None:
    proof = inclusion_proof(0, 8, TREE)
    with pytest.raises(VerificationFailed, match="leaf hash is 31 bytes"):
        verify_inclusion(leaf_hash(LEAVES[0])[:31], 0, 8, proof, ROOTS[8])
