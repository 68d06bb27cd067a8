from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from rempart.errors import AuditUnavailable, InvalidInput, StorageUnavailable, VerificationFailed
from rempart.log.memory import MemoryLogStorage
from rempart.log.sequencer import TransparencyLog
from rempart.log.sqlite import SqliteLogStorage
from rempart.log.storage import StoredCheckpoint
from rempart.tlog.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from rempart.tlog.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from rempart.tlog.note import Signer
from rempart.tlog.tiletree import locate
from tests.treeutil import DictTree

SIGNER = Signer.generate("test.example/log")
ORIGIN = "test.example/log"


def open_log(storage: object, **kwargs: object) -> TransparencyLog:
    return TransparencyLog(
        storage=storage,  # type: ignore[arg-type]
        origin=ORIGIN,
        sign=lambda cp: sign_checkpoint(cp, [SIGNER]),
        **kwargs,  # type: ignore[arg-type]
    )


def test_append_returns_index_and_leaf_hash() -> None:
    with open_log(MemoryLogStorage()) as log:
        first = log.append(b"first")
        second = log.append(b"second")
        assert (first.index, first.leaf_hash) == (0, leaf_hash(b"first"))
        assert second.index == 1
        positions = log.append_many([b"a", b"b", b"c"])
        assert [p.index for p in positions] == [2, 3, 4]
        assert log.size == 5


def test_entries_over_the_bundle_limit_are_refused() -> None:
    with open_log(MemoryLogStorage()) as log:
        log.append(b"x" * 65535)
        with pytest.raises(InvalidInput, match="at most 65535 bytes"):
            log.append(b"x" * 65536)
        with pytest.raises(InvalidInput, match="is bytes"):
            log.append("text")  # type: ignore[arg-type]
        assert log.size == 1


class BatchCounting(MemoryLogStorage):
    """Memory storage that remembers how many entries each commit carried."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def append(self, first: int, entries: Sequence[bytes], nodes: object) -> None:
        self.batches.append(len(entries))
        super().append(first, entries, nodes)  # type: ignore[arg-type]


def run_threads(count: int, worker: Callable[[int], None]) -> None:
    """``worker(0)`` … ``worker(count - 1)``, each in its own thread, until all are done."""
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_concurrent_appenders_are_batched_and_all_land() -> None:
    storage = BatchCounting()
    results: dict[bytes, int] = {}
    lock = threading.Lock()

    def worker(w: int) -> None:
        for i in range(200):
            entry = f"{w}:{i}".encode()
            index = log.append(entry).index
            with lock:
                results[entry] = index

    with open_log(storage) as log:
        run_threads(16, worker)
        assert log.size == 3200
    assert sorted(results.values()) == list(range(3200))
    stored = storage.read_entries(0, 3200)
    assert all(stored[i] == e for e, i in results.items())
    assert len(storage.batches) < 3200  # group commit happened
    assert tree_root(3200, storage) == DictTree(stored).frontier.root()


def test_commits_gather_one_entry_per_concurrent_appender() -> None:
    """With steady concurrency each commit waits for the appenders the last one carried."""
    storage = BatchCounting()
    start = threading.Barrier(8)

    def worker(w: int) -> None:
        start.wait()
        for i in range(50):
            log.append(f"{w}:{i}".encode())

    with open_log(storage, gather_window=0.5) as log:  # long: the count ends waits early
        run_threads(8, worker)
        assert log.size == 400
    # After the first commits have taught the sequencer that eight appenders are about,
    # it waits for all eight each time: a handful of partial batches at the start and the end.
    full = storage.batches.count(8)
    assert full >= 40, storage.batches
    assert sum(storage.batches) == 400


def test_a_lone_appender_never_waits_for_the_window() -> None:
    storage = BatchCounting()
    with open_log(storage, gather_window=5.0) as log:
        started = time.monotonic()
        for i in range(20):
            log.append(f"{i}".encode())
        assert time.monotonic() - started < 5.0  # not one append waited the window out
        assert storage.batches == [1] * 20


def test_after_a_pause_the_gathering_starts_again_from_one() -> None:
    storage = BatchCounting()
    with open_log(storage, gather_window=0.2) as log:
        log.append_many([b"a", b"b", b"c", b"d"])  # a commit of four: four appenders expected
        threading.Event().wait(0.4)  # a pause longer than the window
        done = threading.Event()
        threading.Thread(target=lambda: (log.append(b"alone"), done.set())).start()
        # Without the reset the lone entry would wait the whole window for three more.
        assert done.wait(0.15), "the lone append waited for appenders who were gone"
    assert storage.batches == [4, 1]


def test_closing_ends_a_gathering_wait() -> None:
    storage = BatchCounting()
    log = open_log(storage, gather_window=5.0)
    log.append_many([b"a", b"b", b"c"])
    waiting = threading.Thread(target=log.append, args=(b"d",))
    waiting.start()
    while not storage.batches or log._queued == 0:  # the lone "d" is queued, gathering
        time.sleep(0.001)
    started = time.monotonic()
    log.close()  # commits "d" at once instead of waiting out the window for two more
    assert time.monotonic() - started < 5.0
    waiting.join(timeout=5)
    assert not waiting.is_alive()
    assert storage.batches == [3, 1]


def test_the_gather_window_is_checked() -> None:
    with pytest.raises(InvalidInput, match="gather_window"):
        open_log(MemoryLogStorage(), gather_window=-1.0)
    with pytest.raises(InvalidInput, match="gather_window"):
        open_log(MemoryLogStorage(), gather_window=20.0, append_timeout=10.0)


def test_async_appenders() -> None:
    async def main(log: TransparencyLog) -> list[int]:
        positions = await asyncio.gather(*(log.append_async(f"e{i}".encode()) for i in range(500)))
        return sorted(p.index for p in positions)

    with open_log(MemoryLogStorage()) as log:
        assert asyncio.run(main(log)) == list(range(500))


class FailingStorage(MemoryLogStorage):
    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    def append(self, first: int, entries: Sequence[bytes], nodes: object) -> None:
        if self.fail:
            raise StorageUnavailable("disk full")
        super().append(first, entries, nodes)  # type: ignore[arg-type]


def test_storage_failure_is_audit_unavailable_and_recovers() -> None:
    storage = FailingStorage()
    with open_log(storage) as log:
        log.append(b"ok")
        storage.fail = True
        with pytest.raises(AuditUnavailable, match="disk full"):
            log.append(b"lost")

        async def attempt() -> None:
            await log.append_async(b"lost too")

        with pytest.raises(AuditUnavailable):
            asyncio.run(attempt())
        storage.fail = False
        assert log.append(b"after").index == 1
    assert storage.read_entries(0, 2) == [b"ok", b"after"]


class StuckStorage(MemoryLogStorage):
    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def append(self, first: int, entries: Sequence[bytes], nodes: object) -> None:
        self.release.wait()
        super().append(first, entries, nodes)  # type: ignore[arg-type]


def test_a_stuck_log_times_out_as_audit_unavailable() -> None:
    storage = StuckStorage()
    log = open_log(storage, append_timeout=0.2)
    try:
        with pytest.raises(AuditUnavailable, match="within 0.2 s"):
            log.append(b"waits")
    finally:
        storage.release.set()
        log.close()


def test_checkpoints_are_signed_consistent_and_periodic() -> None:
    storage = MemoryLogStorage()
    with open_log(storage, checkpoint_interval=0.05) as log:
        log.append_many([b"a", b"b", b"c"])
        first = log.publish_checkpoint()
        assert first.size == 3
        opened = open_checkpoint(first.note, origin=ORIGIN, log=SIGNER.verifier())
        assert opened.checkpoint.root == tree_root(3, storage)
        log.append_many([b"d", b"e"])
        for _ in range(100):
            latest = storage.latest_checkpoint()
            if latest is not None and latest.size == 5:
                break
            threading.Event().wait(0.02)
        assert latest is not None and latest.size == 5  # published by the interval alone
        second = open_checkpoint(latest.note, origin=ORIGIN, log=SIGNER.verifier()).checkpoint
        verify_consistency(
            3,
            5,
            opened.checkpoint.root,
            second.root,
            consistency_proof(3, 5, storage),
        )
        proof = inclusion_proof(1, 5, storage)
        verify_inclusion(leaf_hash(b"b"), 1, 5, proof, second.root)


def test_close_publishes_the_final_checkpoint(tmp_path: Path) -> None:
    with open_log(SqliteLogStorage(tmp_path / "log.db"), checkpoint_interval=3600) as log:
        log.append_many([b"x"] * 10)
    storage = SqliteLogStorage(tmp_path / "log.db")
    latest = storage.latest_checkpoint()
    assert latest is not None and latest.size == 10
    with open_log(storage) as reopened:
        assert reopened.append(b"y").index == 10


def test_recovery_detects_altered_storage(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with open_log(SqliteLogStorage(path)) as log:
        log.append_many([b"a", b"b", b"c", b"d"])
    import sqlite3

    conn = sqlite3.connect(path)
    # The 4 entries fill part of tile 0: storage keeps their leaf hashes; flip a bit of one.
    (start, hashes) = conn.execute("SELECT start, hashes FROM log_edge WHERE tile = 0").fetchone()
    assert (start, len(hashes)) == (0, 4 * 32)
    tampered = bytes([hashes[0] ^ 1]) + hashes[1:]
    conn.execute("UPDATE log_edge SET hashes = ? WHERE tile = 0", (tampered,))
    conn.commit()
    conn.close()
    with pytest.raises(VerificationFailed, match="storage was altered"):
        open_log(SqliteLogStorage(path))


def test_recovery_detects_an_altered_full_tile(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with open_log(SqliteLogStorage(path)) as log:
        log.append_many([b"%d" % i for i in range(300)])  # tile 0 full, tile 1 partial
    import sqlite3

    conn = sqlite3.connect(path)
    key, offset = locate(8, 0)  # the root of tile 0, stored one tile level up (a partial row)
    (row,) = conn.execute("SELECT hashes FROM log_tiles WHERE key = ?", (key,)).fetchone()
    tampered = row[:offset] + bytes([row[offset] ^ 1]) + row[offset + 1 :]
    conn.execute("UPDATE log_tiles SET hashes = ? WHERE key = ?", (tampered, key))
    conn.commit()
    conn.close()
    with pytest.raises(VerificationFailed, match="storage was altered"):
        open_log(SqliteLogStorage(path))


def test_recovery_detects_lost_entries() -> None:
    storage = MemoryLogStorage()
    storage.put_checkpoint(
        StoredCheckpoint(2, sign_checkpoint(Checkpoint(ORIGIN, 2, leaf_hash(b"")), [SIGNER]))
    )
    with pytest.raises(VerificationFailed, match="committed entries were lost"):
        open_log(storage)


def test_two_writers_on_one_log_place_their_batches_after_each_other(tmp_path: Path) -> None:
    """A second process appending (a CLI beside the server) fences the first, which re-reads and goes on."""
    path = tmp_path / "log.db"
    first = open_log(SqliteLogStorage(path))
    second = open_log(SqliteLogStorage(path))
    try:
        assert first.append(b"a").index == 0
        assert second.append(b"b").index == 1  # second read size 0 at open: fenced, re-read, placed at 1
        assert first.append(b"c").index == 2  # first is stale too: the same
        assert second.append_many([b"d", b"e"])[-1].index == 4
        storage = first.storage
        entries = storage.read_entries(0, 5)
        assert entries == [b"a", b"b", b"c", b"d", b"e"]
        assert tree_root(5, storage) == DictTree(entries).frontier.root()
    finally:
        first.close()
        second.close()
