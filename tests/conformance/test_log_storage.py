"""One contract, every backend: the log storage conformance suite."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rempart.errors import Conflict, NotFound
from rempart.log.memory import MemoryLogStorage
from rempart.log.postgres import PostgresLogStorage
from rempart.log.sqlite import SqliteLogStorage
from rempart.log.storage import LogStorage, StoredCheckpoint
from rempart.tlog.merkle import NodeId, consistency_proof, inclusion_proof, leaf_hash
from rempart.tlog.merkle import tree_root as root_of
from rempart.tlog.tiletree import TiledTree, edge_keys, locate
from tests.treeutil import DictTree


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def open_storage(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> LogStorage:
    if kind == "memory":
        return MemoryLogStorage()
    if kind == "sqlite":
        return SqliteLogStorage(tmp_path / "log.db")
    dsn = request.getfixturevalue("pg_dsn")
    return PostgresLogStorage(dsn)


@pytest.fixture
def storage(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LogStorage]:
    s = open_storage(backend, tmp_path, request)
    yield s
    s.close()


def append_entries(storage: LogStorage, tree: TiledTree, entries: list[bytes]) -> None:
    first = tree.size
    rows = tree.extend([leaf_hash(e) for e in entries])
    storage.append(first, entries, rows)


def test_empty(storage: LogStorage) -> None:
    assert storage.size() == 0
    assert storage.latest_checkpoint() is None
    assert storage.read_hashes([]) == []
    with pytest.raises(NotFound):
        storage.read_hashes([NodeId(0, 0)])
    with pytest.raises(NotFound):
        storage.read_entries(0, 1)


def test_append_and_read_back(storage: LogStorage) -> None:
    entries = [f"entry {i}".encode() for i in range(1000)]
    tree = TiledTree.empty()
    for chunk in range(0, 1000, 137):
        append_entries(storage, tree, entries[chunk : chunk + 137])
    assert storage.size() == 1000
    assert storage.read_entries(0, 1000) == entries
    assert storage.read_entries(500, 503) == entries[500:503]
    assert storage.read_entries(255, 257) == entries[255:257]  # across a bundle boundary
    assert storage.read_entries(274, 275) == entries[274:275]  # inside a run written in one go
    assert storage.read_entries(7, 7) == []
    with pytest.raises(NotFound):
        storage.read_entries(999, 1001)
    reference = DictTree(entries)
    assert root_of(1000, storage) == reference.frontier.root()
    for index, size in [(0, 1), (999, 1000), (513, 777)]:
        assert inclusion_proof(index, size, storage) == inclusion_proof(index, size, reference)
    assert consistency_proof(300, 1000, storage) == consistency_proof(300, 1000, reference)
    assert storage.read_level(8, 0, 3) == reference.read_hashes([NodeId(8, i) for i in range(3)])
    with pytest.raises(NotFound):
        storage.read_level(8, 0, 4)  # 1000 leaves complete only 3 level-8 nodes


def test_append_is_fenced(storage: LogStorage) -> None:
    tree = TiledTree.empty()
    append_entries(storage, tree, [b"a", b"b"])
    stale = TiledTree.empty()
    rows = stale.extend([leaf_hash(b"x")])
    with pytest.raises(Conflict, match="holds 2 entries"):
        storage.append(0, [b"x"], rows)
    ahead = tree.copy()
    ahead.extend([leaf_hash(b"c")])
    rows = ahead.extend([leaf_hash(b"d")])
    with pytest.raises(Conflict):
        storage.append(3, [b"d"], rows)
    assert storage.size() == 2
    assert storage.read_entries(0, 2) == [b"a", b"b"]


def test_failed_append_writes_nothing(storage: LogStorage) -> None:
    """A batch that breaks partway (it would change a stored hash) leaves no trace."""
    tree = TiledTree.empty()
    append_entries(storage, tree, [b"a"])
    rows = tree.copy().extend([leaf_hash(b"b")])
    key, offset = locate(0, 0)
    row = rows[key]
    rewritten = {key: row[:offset] + leaf_hash(b"not a") + row[offset + 32 :]}
    with pytest.raises(Conflict, match="overwrite a stored node hash"):
        storage.append(1, [b"b"], rewritten)
    assert storage.size() == 1
    with pytest.raises(NotFound):
        storage.read_hashes([NodeId(0, 1)])


def test_concurrent_appenders_never_fork(storage: LogStorage) -> None:
    """Two would-be sequencers race for the same index: exactly one wins each round."""
    wins: list[str] = []
    lock = threading.Lock()

    def attempt(name: str, first: int) -> None:
        t = TiledTree(first, storage.read_rows(edge_keys(first)))
        rows = t.extend([leaf_hash(name.encode())])
        try:
            storage.append(first, [name.encode()], rows)
        except Conflict:
            return
        with lock:
            wins.append(name)

    for round_ in range(20):
        size = storage.size()
        threads = [threading.Thread(target=attempt, args=(f"{w}-{round_}", size)) for w in "ab"]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert storage.size() == size + 1
    assert len(wins) == 20
    assert storage.read_entries(0, 20) == [w.encode() for w in wins]


def test_checkpoints_only_grow(storage: LogStorage) -> None:
    storage.put_checkpoint(StoredCheckpoint(5, b"five"))
    storage.put_checkpoint(StoredCheckpoint(7, b"seven"))
    with pytest.raises(Conflict, match="older than the latest"):
        storage.put_checkpoint(StoredCheckpoint(6, b"six"))
    storage.put_checkpoint(StoredCheckpoint(7, b"seven, cosigned"))
    assert storage.latest_checkpoint() == StoredCheckpoint(7, b"seven, cosigned")
    assert storage.checkpoint_at(5) == StoredCheckpoint(5, b"five")
    assert storage.checkpoint_at(6) is None


def test_reopen_keeps_everything(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "memory":
        pytest.skip("the in-memory backend lives only as long as its process")
    first = open_storage(backend, tmp_path, request)
    tree = TiledTree.empty()
    append_entries(first, tree, [b"one", b"two", b"three"])
    first.put_checkpoint(StoredCheckpoint(3, b"note"))
    first.close()
    again = open_storage(backend, tmp_path, request)
    try:
        assert again.size() == 3
        assert again.read_entries(0, 3) == [b"one", b"two", b"three"]
        assert again.latest_checkpoint() == StoredCheckpoint(3, b"note")
        assert root_of(3, again) == tree.root()
    finally:
        again.close()
