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
from rempart.log.storage import (
    EdgeRows,
    RowHashReads,
    StoredCheckpoint,
    check_run_follows,
    chunk_entries,
    entries_from_chunks,
    split_rows,
)
from rempart.tlog.tiles import TILE_WIDTH
from rempart.tlog.tiletree import check_extends, split_key

__all__ = ["SqliteLogStorage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log_chunks (
    start INTEGER PRIMARY KEY, count INTEGER NOT NULL, data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS log_tiles (key INTEGER PRIMARY KEY, hashes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS log_edge (
    tile INTEGER NOT NULL, start INTEGER NOT NULL, hashes BLOB NOT NULL, PRIMARY KEY (tile, start)
);
CREATE TABLE IF NOT EXISTS log_checkpoints (size INTEGER PRIMARY KEY, note BLOB NOT NULL);
"""


_SIZE = "SELECT start + count FROM log_chunks ORDER BY start DESC LIMIT 1"
_TAIL = "SELECT start, hashes FROM log_edge WHERE tile = ? ORDER BY start DESC LIMIT 1"
_SIZE_AND_TAIL = (
    f"SELECT ({_SIZE}), "
    "(SELECT start FROM log_edge WHERE tile = ? ORDER BY start DESC LIMIT 1), "
    "(SELECT hashes FROM log_edge WHERE tile = ? ORDER BY start DESC LIMIT 1)"
)


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
        self._edge = EdgeRows()

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
                # Each call into SQLite lets other threads take the GIL and must win it
                # back, so the common small batch makes as few calls as it can: one
                # query for the size (the fence) and the tail of the partial tile.
                whole, runs = split_rows(first, len(entries), rows)
                tail = runs[0].tile if len(runs) == 1 else -1
                stored, last_start, last_hashes = conn.execute(_SIZE_AND_TAIL, (tail, tail)).fetchone()
                stored = 0 if stored is None else int(stored)
                if stored != first:
                    raise Conflict(
                        f"log append at {first} but the log holds {stored} entries",
                        stored_size=stored,
                    )
                chunks = chunk_entries(first, entries)
                if len(chunks) == 1:
                    conn.execute("INSERT INTO log_chunks (start, count, data) VALUES (?, ?, ?)", chunks[0])
                else:
                    conn.executemany("INSERT INTO log_chunks (start, count, data) VALUES (?, ?, ?)", chunks)
                if whole:
                    previous = self._fetch_rows(conn, list(whole))
                    for key, new_row in whole.items():
                        check_extends(previous.get(key), new_row)
                    conn.executemany(
                        "INSERT OR REPLACE INTO log_tiles (key, hashes) VALUES (?, ?)", whole.items()
                    )
                    filled = [(split_key(k)[1],) for k in whole if split_key(k)[0] == 0]
                    if filled:
                        conn.executemany("DELETE FROM log_edge WHERE tile = ?", filled)
                for run in runs:
                    last = (
                        (last_start, last_hashes)
                        if run.tile == tail
                        else conn.execute(_TAIL, (run.tile,)).fetchone()
                    )
                    check_run_follows(run, None if last is None or last[0] is None else last)
                    conn.execute(
                        "INSERT INTO log_edge (tile, start, hashes) VALUES (?, ?, ?)",
                        (run.tile, run.start, run.hashes),
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
            conn = self._reader()
            found = self._fetch_rows(conn, list(keys))
            partial = [split_key(k)[1] for k in keys if k not in found and split_key(k)[0] == 0]
            if partial:
                marks = ",".join("?" * len(partial))
                runs = conn.execute(
                    f"SELECT tile, start, hashes FROM log_edge WHERE tile IN ({marks}) ORDER BY tile, start",
                    partial,
                ).fetchall()
                found.update(self._edge.rows(runs))
        return found

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
