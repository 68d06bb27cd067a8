"""write_ahead_log=False: a rollback journal and synced commits; a WAL file open elsewhere stays WAL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from rempart.db import Database


def pragma(db: Database, name: str) -> object:
    return db.query_all(f"PRAGMA {name}")[0][0]


def test_a_rollback_journal_syncs_every_commit(tmp_path: Path) -> None:
    db = Database.open(f"sqlite:///{tmp_path / 'a.db'}", fsync_each_commit=False, write_ahead_log=False)
    try:
        assert (pragma(db, "journal_mode"), pragma(db, "synchronous")) == ("delete", 2)  # 2: FULL
    finally:
        db.close()
    wal = Database.open(f"sqlite:///{tmp_path / 'b.db'}", fsync_each_commit=False)
    try:
        assert (pragma(wal, "journal_mode"), pragma(wal, "synchronous")) == ("wal", 1)  # 1: NORMAL
    finally:
        wal.close()


def test_a_wal_database_another_connection_holds_stays_in_wal(tmp_path: Path) -> None:
    path = tmp_path / "mirror.db"
    other = sqlite3.connect(path)
    try:
        other.execute("PRAGMA journal_mode=WAL")
        other.execute("CREATE TABLE t (x)")
        other.execute("BEGIN")
        other.execute("SELECT * FROM t").fetchall()  # a reader in the middle of its transaction
        db = Database.open(f"sqlite:///{path}", fsync_each_commit=False, write_ahead_log=False)
        try:
            assert pragma(db, "journal_mode") == "wal"
            assert pragma(db, "synchronous") == 1
            with db.transaction() as tx:
                tx.execute("INSERT INTO t VALUES (1)")
        finally:
            db.close()
    finally:
        other.close()
