"""The PostgreSQL :class:`~rempart.log.storage.LogStorage`: the production store.

Appends are one transaction: take the log's advisory transaction lock, check
the stored size (the fence), ``COPY`` the entries in, upsert the touched tile
rows (node hashes are stored one row per tile, :mod:`rempart.tlog.tiletree`), commit.
With PostgreSQL's default ``synchronous_commit=on`` the commit is flushed to
the WAL before it returns. Readers use a small connection pool.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

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

__all__ = ["PostgresLogStorage"]

# pg_advisory_xact_lock key held while appending: one sequencer at a time.
_SEQUENCER_LOCK = 0x52454D50  # "REMP"

_SIZE = "SELECT start + count FROM log_chunks ORDER BY start DESC LIMIT 1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log_chunks (start bigint PRIMARY KEY, count integer NOT NULL, data bytea NOT NULL);
CREATE TABLE IF NOT EXISTS log_tiles (key bigint PRIMARY KEY, hashes bytea NOT NULL);
CREATE TABLE IF NOT EXISTS log_edge (
    tile bigint NOT NULL, start integer NOT NULL, hashes bytea NOT NULL, PRIMARY KEY (tile, start)
);
CREATE TABLE IF NOT EXISTS log_checkpoints (size bigint PRIMARY KEY, note bytea NOT NULL);
"""


@contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict(f"{what}: {exc}") from exc
    except (psycopg.Error, OSError) as exc:
        raise StorageUnavailable(f"{what}: PostgreSQL error: {exc}") from exc
    except Exception as exc:
        # psycopg_pool raises its own PoolTimeout (a psycopg.OperationalError subclass
        # in current versions); anything else from the driver still means "unavailable".
        if type(exc).__module__.startswith(("psycopg", "psycopg_pool")):
            raise StorageUnavailable(f"{what}: PostgreSQL error: {exc}") from exc
        raise


class PostgresLogStorage(RowHashReads):
    def __init__(self, dsn: str, *, pool_size: int = 4, connect_timeout: float = 10.0) -> None:
        self.dsn = dsn
        self._connect_timeout = int(connect_timeout)
        with _translated("opening the log database"):
            self._writer = psycopg.connect(dsn, autocommit=True, connect_timeout=self._connect_timeout)
            self._writer.execute(_SCHEMA)
            self._pool = ConnectionPool(
                dsn,
                min_size=1,
                max_size=pool_size,
                kwargs={"autocommit": True},
                timeout=connect_timeout,
                open=True,
            )
        self._write_lock = threading.Lock()
        self._edge = EdgeRows()

    def _reconnect_writer_if_broken(self) -> None:
        if self._writer.closed or self._writer.broken:
            self._writer = psycopg.connect(
                self.dsn, autocommit=True, connect_timeout=self._connect_timeout
            )

    def size(self) -> int:
        with _translated("reading log size"), self._pool.connection() as conn:
            row = conn.execute(_SIZE).fetchone()
        return 0 if row is None else int(row[0])

    def append(self, first: int, entries: Sequence[bytes], rows: Mapping[int, bytes]) -> None:
        if not entries:
            return
        with self._write_lock, _translated("appending to the log"):
            self._reconnect_writer_if_broken()
            conn = self._writer
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SEQUENCER_LOCK,))
                row = conn.execute(_SIZE).fetchone()
                stored = 0 if row is None else int(row[0])
                if stored != first:
                    raise Conflict(
                        f"log append at {first} but the log holds {stored} entries",
                        stored_size=stored,
                    )
                with (
                    conn.cursor() as cur,
                    cur.copy("COPY log_chunks (start, count, data) FROM STDIN (FORMAT BINARY)") as cp,
                ):
                    cp.set_types(["int8", "int4", "bytea"])
                    for chunk in chunk_entries(first, entries):
                        cp.write_row(chunk)
                whole, runs = split_rows(first, len(entries), rows)
                previous = self._fetch_rows(conn, list(whole))
                for key, new_row in whole.items():
                    check_extends(previous.get(key), new_row)
                for run in runs:
                    last = conn.execute(
                        "SELECT start, hashes FROM log_edge WHERE tile = %s ORDER BY start DESC LIMIT 1",
                        (run.tile,),
                    ).fetchone()
                    check_run_follows(run, None if last is None else (int(last[0]), bytes(last[1])))
                with conn.cursor() as cur:
                    if whole:
                        cur.executemany(
                            "INSERT INTO log_tiles (key, hashes) VALUES (%s, %s) "
                            "ON CONFLICT (key) DO UPDATE SET hashes = EXCLUDED.hashes",
                            list(whole.items()),
                        )
                    if runs:
                        cur.executemany(
                            "INSERT INTO log_edge (tile, start, hashes) VALUES (%s, %s, %s)",
                            [(r.tile, r.start, r.hashes) for r in runs],
                        )
                    filled = [(split_key(k)[1],) for k in whole if split_key(k)[0] == 0]
                    if filled:
                        cur.executemany("DELETE FROM log_edge WHERE tile = %s", filled)

    @staticmethod
    def _fetch_rows(conn: psycopg.Connection[Any], keys: list[int]) -> dict[int, bytes]:
        if not keys:
            return {}
        rows = conn.execute(
            "SELECT key, hashes FROM log_tiles WHERE key = ANY(%s)", (keys,), prepare=True
        ).fetchall()
        return {int(k): bytes(h) for k, h in rows}

    def read_rows(self, keys: Sequence[int]) -> dict[int, bytes]:
        with _translated("reading log hashes"), self._pool.connection() as conn:
            found = self._fetch_rows(conn, list(keys))
            partial = [split_key(k)[1] for k in keys if k not in found and split_key(k)[0] == 0]
            if partial:
                runs = conn.execute(
                    "SELECT tile, start, hashes FROM log_edge WHERE tile = ANY(%s) ORDER BY tile, start",
                    (partial,),
                ).fetchall()
                found.update(self._edge.rows([(int(t), int(s), bytes(h)) for t, s, h in runs]))
        return found

    def read_entries(self, start: int, end: int) -> list[bytes]:
        if start >= end:
            if start == end >= 0:
                return []
            raise NotFound(f"log entries [{start}, {end}) are not all stored")
        lower = start - start % TILE_WIDTH  # no chunk crosses a bundle boundary
        with _translated("reading log entries"), self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT start, count, data FROM log_chunks WHERE start >= %s AND start < %s ORDER BY start",
                (lower, end),
            ).fetchall()
        return entries_from_chunks(rows, start, end)

    def put_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        with self._write_lock, _translated("storing a checkpoint"):
            self._reconnect_writer_if_broken()
            conn = self._writer
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SEQUENCER_LOCK,))
                row = conn.execute("SELECT MAX(size) FROM log_checkpoints").fetchone()
                latest = None if row is None else row[0]
                if latest is not None and checkpoint.size < latest:
                    raise Conflict(
                        f"checkpoint of size {checkpoint.size} is older than the latest ({latest})"
                    )
                conn.execute(
                    "INSERT INTO log_checkpoints (size, note) VALUES (%s, %s) "
                    "ON CONFLICT (size) DO UPDATE SET note = EXCLUDED.note",
                    (checkpoint.size, checkpoint.note),
                )

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        with _translated("reading the checkpoint"), self._pool.connection() as conn:
            row = conn.execute(
                "SELECT size, note FROM log_checkpoints ORDER BY size DESC LIMIT 1"
            ).fetchone()
        return None if row is None else StoredCheckpoint(int(row[0]), bytes(row[1]))

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        with _translated("reading a checkpoint"), self._pool.connection() as conn:
            row = conn.execute(
                "SELECT note FROM log_checkpoints WHERE size = %s", (size,)
            ).fetchone()
        return None if row is None else StoredCheckpoint(size, bytes(row[0]))

    def close(self) -> None:
        self._pool.close()
        with self._write_lock:
            self._writer.close()
