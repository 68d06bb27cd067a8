"""The SQLite :class:`~rempart.log.storage.LogStorage`: the embedded default.

Node hashes are stored one row per tile (:mod:`rempart.tlog.tiletree`).
WAL journal with ``synchronous=FULL``: a commit is fsynced to the WAL before
it returns, so an acknowledged append survives a crash or power loss. One
writer connection (guarded by a lock; SQLite allows one writer anyway) and one
reader connection per thread, which WAL lets run beside the writer.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from rempart.errors import Conflict, NotFound, StorageUnavailable
from rempart.log.storage import RowHashReads, StoredCheckpoint, chunk_entries, entries_from_chunks
from rempart.tlog.tiles import TILE_WIDTH
from rempart.tlog.tiletree import check_extends

__all__ = ["SqliteLogStorage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log_chunks (
    start INTEGER PRIMARY KEY, count INTEGER NOT NULL, data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS log_tiles (key INTEGER PRIMARY KEY, hashes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS log_checkpoints (size INTEGER PRIMARY KEY, note BLOB NOT NULL);
"""


_SIZE = "SELECT start + count FROM log_chunks ORDER BY start DESC LIMIT 1"


@contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise Conflict(f"{what}: {exc}") from exc
    except sqlite3.Error as exc:
        raise StorageUnavailable(f"{what}: SQLite error: {exc}") from exc


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class SqliteLogStorage(RowHashReads):
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        with _translated(f"opening log database {self.path}"):
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._writer = _connect(self.path)
            self._writer.executescript(_SCHEMA)
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._in_clauses: dict[int, str] = {}

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def size(self) -> int:
        with _translated("reading log size"):
            row = self._reader().execute(_SIZE).fetchone()
        return 0 if row is None else int(row[0])

    def append(self, first: int, entries: Sequence[bytes], rows: Mapping[int, bytes]) -> None:
        if not entries:
            return
        with self._write_lock, _translated("appending to the log"):
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(_SIZE).fetchone()
                stored = 0 if row is None else int(row[0])
                if stored != first:
                    raise Conflict(
                        f"log append at {first} but the log holds {stored} entries",
                        stored_size=stored,
                    )
                conn.executemany(
                    "INSERT INTO log_chunks (start, count, data) VALUES (?, ?, ?)",
                    chunk_entries(first, entries),
                )
                previous = self._fetch_rows(conn, list(rows))
                for key, new_row in rows.items():
                    check_extends(previous.get(key), new_row)
                conn.executemany(
                    "INSERT OR REPLACE INTO log_tiles (key, hashes) VALUES (?, ?)", rows.items()
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _in_clause(self, count: int) -> str:
        sql = self._in_clauses.get(count)
        if sql is None:
            marks = ",".join("?" * count)
            sql = f"SELECT key, hashes FROM log_tiles WHERE key IN ({marks})"
            self._in_clauses[count] = sql
        return sql

    def _fetch_rows(self, conn: sqlite3.Connection, keys: list[int]) -> dict[int, bytes]:
        rows: dict[int, bytes] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            rows.update(conn.execute(self._in_clause(len(chunk)), chunk).fetchall())
        return rows

    def read_rows(self, keys: Sequence[int]) -> dict[int, bytes]:
        with _translated("reading log hashes"):
            return self._fetch_rows(self._reader(), list(keys))

    def read_entries(self, start: int, end: int) -> list[bytes]:
        if start >= end:
            if start == end >= 0:
                return []
            raise NotFound(f"log entries [{start}, {end}) are not all stored")
        lower = start - start % TILE_WIDTH  # no chunk crosses a bundle boundary
        with _translated("reading log entries"):
            rows = (
                self._reader()
                .execute(
                    "SELECT start, count, data FROM log_chunks WHERE start >= ? AND start < ? ORDER BY start",
                    (lower, end),
                )
                .fetchall()
            )
        return entries_from_chunks(rows, start, end)

    def put_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        with self._write_lock, _translated("storing a checkpoint"):
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT MAX(size) FROM log_checkpoints").fetchone()
                if row[0] is not None and checkpoint.size < row[0]:
                    raise Conflict(
                        f"checkpoint of size {checkpoint.size} is older than the latest ({row[0]})"
                    )
                conn.execute(
                    "INSERT OR REPLACE INTO log_checkpoints (size, note) VALUES (?, ?)",
                    (checkpoint.size, checkpoint.note),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        with _translated("reading the checkpoint"):
            row = (
                self._reader()
                .execute("SELECT size, note FROM log_checkpoints ORDER BY size DESC LIMIT 1")
                .fetchone()
            )
        return None if row is None else StoredCheckpoint(int(row[0]), bytes(row[1]))

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        with _translated("reading a checkpoint"):
            row = (
                self._reader()
                .execute("SELECT note FROM log_checkpoints WHERE size = ?", (size,))
                .fetchone()
            )
        return None if row is None else StoredCheckpoint(size, bytes(row[0]))

    def close(self) -> None:
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        with self._write_lock:
            self._writer.close()
