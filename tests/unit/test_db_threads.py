"""Each thread's own SQLite connection, and a thread that ends leaving none open."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from rempart.db import Database


def open_files(path: Path) -> int:
    """How many of this process's file descriptors point at ``path`` (Linux)."""
    target = str(path.resolve())
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == target:
                count += 1
        except OSError:
            continue
    return count


def in_thread(work: object) -> None:
    thread = threading.Thread(target=work)  # type: ignore[arg-type]
    thread.start()
    thread.join()


def test_a_released_thread_leaves_no_connection_open(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    db = Database.open(f"sqlite:///{path}")
    try:
        db.query_all("SELECT 1")
        before = open_files(path)

        def query_and_release() -> None:
            assert db.query_all("SELECT 2") == [(2,)]
            db.release_thread()

        for _ in range(5):
            in_thread(query_and_release)
        assert open_files(path) == before
        in_thread(lambda: db.query_all("SELECT 3"))  # without release: kept until close
        assert open_files(path) == before + 1
        db.release_thread()  # this thread's connection; it reconnects when used again
        assert db.query_all("SELECT 4") == [(4,)]
    finally:
        db.close()
    assert open_files(path) == 0


def test_the_shared_in_memory_database_survives_a_release() -> None:
    db = Database.open("sqlite:///:memory:")
    try:
        with db.transaction() as tx:
            tx.execute("CREATE TABLE t (x INTEGER)")
            tx.execute("INSERT INTO t VALUES (1)")

        def read_and_release() -> None:
            assert db.query_all("SELECT x FROM t") == [(1,)]
            db.release_thread()

        in_thread(read_and_release)
        assert db.query_all("SELECT x FROM t") == [(1,)]
    finally:
        db.close()
