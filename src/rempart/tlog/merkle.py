"""RFC 6962 / RFC 9162 Merkle tree math: hashing, appending, proofs. No I/O.

Every hash of the tree that is ever stored is the hash of a *complete* (perfect,
aligned) subtree, named by a :class:`NodeId` ``(level, index)``: the subtree
over leaves ``[index·2^level, (index+1)·2^level)``. Level 0 nodes are leaf
hashes. Like Go's ``golang.org/x/mod/sumdb/tlog``, a computation first works
out which nodes it needs, reads them in one batch through a :class:`HashReader`,
then computes: storage stays dumb and round trips stay at one.

>>> leaves = [leaf_hash(bytes([i])) for i in range(5)]
>>> frontier = Frontier()
>>> for h in leaves:
...     _ = frontier.append(h)
>>> frontier.size, frontier.root() == naive_root(leaves)
(5, True)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import NamedTuple, Protocol

from rempart.errors import InvalidInput, VerificationFailed

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Frontier",
    "HashReader",
    "NodeId",
    "consistency_proof",
    "covering_nodes",
    "fold_range",
    "inclusion_proof",
    "leaf_hash",
    "naive_root",
    "node_hash",
    "root_from_inclusion_proof",
    "tree_root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 ‖ data)``."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 ‖ left ‖ right)``."""
    return _sha256(b"\x01" + left + right).digest()


class NodeId(NamedTuple):
    """The complete subtree of height ``level`` covering leaves ``[index·2^level, (index+1)·2^level)``.

    A named tuple rather than a dataclass: appending creates two per entry.
    """

    level: int
    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose: the domain's word

    @property
    def start(self) -> int:
        return self.index << self.level

    @property
    def end(self) -> int:
        return (self.index + 1) << self.level


class HashReader(Protocol):
    """Reads stored hashes of complete subtrees, in the order asked."""

    def read_hashes(self, nodes: Sequence[NodeId]) -> Sequence[bytes]: ...


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def covering_nodes(start: int, end: int) -> list[NodeId]:
    """The maximal complete subtrees that cover ``[start, end)``, left to right.

    For the ranges RFC 6962 recursion produces (``start`` aligned to a power of
    two at least ``end - start``), folding their hashes from the right with
    :func:`fold_range` gives ``MTH(D[start:end])``.
    """
    if not 0 <= start <= end:
        raise InvalidInput(f"bad range [{start}, {end})")
    nodes: list[NodeId] = []
    while start < end:
        level = (start & -start).bit_length() - 1 if start else (end - start).bit_length() - 1
        while (1 << level) > end - start:
            level -= 1
        nodes.append(NodeId(level, start >> level))
        start += 1 << level
    return nodes


def fold_range(hashes: Sequence[bytes]) -> bytes:
    """Combine the hashes of :func:`covering_nodes` into the range's Merkle tree hash."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def tree_root(size: int, reader: HashReader) -> bytes:
    """The root of the tree of ``size`` leaves, from stored complete-subtree hashes."""
    if size < 0:
        raise InvalidInput(f"tree size must be non-negative, got {size}")
    nodes = covering_nodes(0, size)
    return fold_range(_read(reader, nodes))


def _read(reader: HashReader, nodes: Sequence[NodeId]) -> list[bytes]:
    hashes = list(reader.read_hashes(nodes))
    if len(hashes) != len(nodes):
        raise VerificationFailed(f"hash reader returned {len(hashes)} hashes for {len(nodes)} nodes")
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise VerificationFailed(f"stored hash is {len(h)} bytes, not {HASH_SIZE}")
    return hashes


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]) as the leaf ranges of its hashes, leaf first."""
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    ranges.reverse()
    return ranges


def _consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """RFC 9162 §2.1.4.1 SUBPROOF(old, D[0:new], true) as leaf ranges, deepest first."""
    ranges: list[tuple[int, int]] = []
    lo, hi, complete = 0, new, True
    while old != hi:
        k = _largest_power_of_two_below(hi - lo)
        if old <= lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
            complete = False
    if not complete:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def _hashes_for_ranges(ranges: Sequence[tuple[int, int]], reader: HashReader) -> list[bytes]:
    """Read every node the ranges need in one batch, then fold each range."""
    per_range = [covering_nodes(lo, hi) for lo, hi in ranges]
    wanted = sorted({node for nodes in per_range for node in nodes})
    by_node = dict(zip(wanted, _read(reader, wanted), strict=True))
    return [fold_range([by_node[n] for n in nodes]) for nodes in per_range]


def inclusion_proof(index: int, size: int, reader: HashReader) -> list[bytes]:
    """The audit path proving leaf ``index`` is in the tree of ``size`` leaves."""
    if not 0 <= index < size:
        raise InvalidInput(f"leaf index {index} is not in a tree of size {size}")
    return _hashes_for_ranges(_inclusion_ranges(index, size), reader)


def consistency_proof(old_size: int, new_size: int, reader: HashReader) -> list[bytes]:
    """The proof that the tree of ``old_size`` is a prefix of the tree of ``new_size``."""
    if not 0 < old_size <= new_size:
        raise InvalidInput(
            f"a consistency proof needs 0 < old size ≤ new size, got {old_size} and {new_size}"
        )
    return _hashes_for_ranges(_consistency_ranges(old_size, new_size), reader)


def _check_hash(name: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise VerificationFailed(f"{name} is {len(value)} bytes, not {HASH_SIZE}")


def root_from_inclusion_proof(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """RFC 9162 §2.1.3.2: the root that ``proof`` implies for ``leaf`` at ``index``."""
    _check_hash("leaf hash", leaf)
    if not 0 <= index < size:
        raise VerificationFailed(f"leaf index {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for i, p in enumerate(proof):
        _check_hash(f"inclusion proof hash {i}", p)
        if sn == 0:
            raise VerificationFailed(
                f"inclusion proof has {len(proof)} hashes, more than a tree of size {size} needs"
            )
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationFailed(
            f"inclusion proof has {len(proof)} hashes, fewer than a tree of size {size} needs"
        )
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise :class:`VerificationFailed` unless ``proof`` puts ``leaf`` at ``index`` under ``root``."""
    _check_hash("root", root)
    computed = root_from_inclusion_proof(leaf, index, size, proof)
    if computed != root:
        raise VerificationFailed(
            f"inclusion proof for leaf {index} in tree of size {size} leads to root "
            f"{computed.hex()}, not {root.hex()}"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2: raise unless the tree (old_size, old_root) is a prefix of (new_size, new_root).

    A proof from size 0 is rejected here; the tlog-witness protocol's ``old 0``
    case is handled by the witness, not by this check.
    """
    _check_hash("old root", old_root)
    _check_hash("new root", new_root)
    for i, p in enumerate(proof):
        _check_hash(f"consistency proof hash {i}", p)
    if old_size <= 0:
        raise VerificationFailed("a consistency proof from an empty tree is not checked here")
    if old_size > new_size:
        raise VerificationFailed(f"old size {old_size} is larger than new size {new_size}")
    if old_size == new_size:
        if proof:
            raise VerificationFailed("a consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise VerificationFailed(
                f"two different roots for size {old_size}: {old_root.hex()} and {new_root.hex()}"
            )
        return
    if not proof:
        raise VerificationFailed("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationFailed("consistency proof has more hashes than the sizes need")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationFailed("consistency proof has fewer hashes than the sizes need")
    if fr != old_root:
        raise VerificationFailed(
            f"consistency proof {old_size}→{new_size} implies old root {fr.hex()}, "
            f"not {old_root.hex()}"
        )
    if sr != new_root:
        raise VerificationFailed(
            f"consistency proof {old_size}→{new_size} implies new root {sr.hex()}, "
            f"not {new_root.hex()}"
        )


class Frontier:
    """The right edge of a growing tree: one complete-subtree hash per set bit of its size.

    Appending a leaf returns every node hash it completes, which is exactly what
    storage must persist for the tree to be read back with a :class:`HashReader`.
    """

    __slots__ = ("_stack", "size")

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[bytes] = []

    def append(self, leaf: bytes) -> list[tuple[NodeId, bytes]]:
        """Add one leaf hash; return the new stored nodes, leaf first."""
        return self.extend((leaf,))

    def extend(self, leaves: Iterable[bytes]) -> list[tuple[NodeId, bytes]]:
        """Add leaf hashes in order; return every new stored node."""
        created: list[tuple[NodeId, bytes]] = []
        add = created.append
        stack = self._stack
        pop, push = stack.pop, stack.append
        sha = _sha256
        size = self.size
        for leaf in leaves:
            add((NodeId(0, size), leaf))
            h, index, level = leaf, size, 0
            while index & 1:
                h = sha(b"\x01" + pop() + h).digest()
                index >>= 1
                level += 1
                add((NodeId(level, index), h))
            push(h)
            size += 1
        self.size = size
        return created

    def root(self) -> bytes:
        return fold_range(self._stack)


def naive_root(leaves: Sequence[bytes]) -> bytes:
    """MTH by the RFC 6962 recursive definition, over leaf hashes. For tests and cross-checks."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = _largest_power_of_two_below(n)
    return node_hash(naive_root(leaves[:k]), naive_root(leaves[k:]))
