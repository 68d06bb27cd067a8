"""The SQLite :class:`~rempart.log.storage.LogStorage`: the embedded default.

WAL journal with ``synchronous=FULL``: a commit is fsynced to the WAL before
it returns, so an acknowledged append survives a crash or power loss. One
writer connection (guarded by a lock; SQLite allows one writer anyway) and one
reader connection per thread, which WAL lets run beside the writer.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rempart.errors import Conflict, NotFound, StorageUnavailable
from rempart.log.storage import StoredCheckpoint, node_key
from rempart.tlog.merkle import NodeId

__all__ = ["SqliteLogStorage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log_entries (idx INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS log_nodes (key INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS log_checkpoints (size INTEGER PRIMARY KEY, note BLOB NOT NULL);
"""


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


class SqliteLogStorage:
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
            row = self._reader().execute("SELECT MAX(idx) FROM log_entries").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def append(
        self, first: int, entries: Sequence[bytes], nodes: Sequence[tuple[NodeId, bytes]]
    ) -> None:
        if not entries:
            return
        with self._write_lock, _translated("appending to the log"):
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT MAX(idx) FROM log_entries").fetchone()
                stored = 0 if row[0] is None else int(row[0]) + 1
                if stored != first:
                    raise Conflict(
                        f"log append at {first} but the log holds {stored} entries",
                        stored_size=stored,
                    )
                conn.executemany(
                    "INSERT INTO log_entries (idx, data) VALUES (?, ?)",
                    zip(range(first, first + len(entries)), entries, strict=True),
                )
                conn.executemany(
                    "INSERT INTO log_nodes (key, hash) VALUES (?, ?)",
                    [(node_key(n), h) for n, h in nodes],
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
            sql = f"SELECT key, hash FROM log_nodes WHERE key IN ({marks})"
            self._in_clauses[count] = sql
        return sql

    def read_hashes(self, nodes: Sequence[NodeId]) -> list[bytes]:
        if not nodes:
            return []
        keys = [node_key(n) for n in nodes]
        found: dict[int, bytes] = {}
        with _translated("reading log hashes"):
            conn = self._reader()
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                found.update(conn.execute(self._in_clause(len(chunk)), chunk).fetchall())
        try:
            return [found[k] for k in keys]
        except KeyError as exc:
            raise NotFound("a log node hash is not stored") from exc

    def read_level(self, level: int, start: int, end: int) -> list[bytes]:
        lo, hi = node_key(NodeId(level, start)), node_key(NodeId(level, end))
        with _translated("reading log hashes"):
            rows = (
                self._reader()
                .execute(
                    "SELECT hash FROM log_nodes WHERE key >= ? AND key < ? ORDER BY key", (lo, hi)
                )
                .fetchall()
            )
        if len(rows) != end - start:
            raise NotFound(f"log hashes ({level}, {start}…{end - 1}) are not all stored")
        return [r[0] for r in rows]

    def read_entries(self, start: int, end: int) -> list[bytes]:
        with _translated("reading log entries"):
            rows = (
                self._reader()
                .execute(
                    "SELECT data FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx",
                    (start, end),
                )
                .fetchall()
            )
        if len(rows) != end - start:
            raise NotFound(f"log entries [{start}, {end}) are not all stored")
        return [r[0] for r in rows]

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
