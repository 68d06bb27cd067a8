"""A dict-backed tree for tests: every stored node, as the log would persist it."""

from __future__ import annotations

from collections.abc import Sequence

from rempart.tlog.merkle import Frontier, NodeId, leaf_hash


class DictTree:
    def __init__(self, entries: Sequence[bytes] = ()) -> None:
        self.frontier = Frontier()
        self.nodes: dict[NodeId, bytes] = {}
        self.leaves: list[bytes] = []
        for e in entries:
            self.append(e)

    def append(self, entry: bytes) -> None:
        self.append_hash(leaf_hash(entry))

    def append_hash(self, h: bytes) -> None:
        self.leaves.append(h)
        self.nodes.update(self.frontier.append(h))

    def read_hashes(self, nodes: Sequence[NodeId]) -> list[bytes]:
        return [self.nodes[n] for n in nodes]
