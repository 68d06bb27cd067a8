"""A thin portable layer over SQLite and PostgreSQL for Rempart's relational stores.

The record stores, the control database (principals, requests, grants,
proposals, releases) and the migration progress all speak to a
:class:`Database`. SQL is written once in the subset both engines share,
with ``?`` placeholders and three DDL words that differ, written in braces:
``{blob}`` (BLOB / bytea), ``{bigint}`` (INTEGER / bigint) and ``{serial}``
(an auto-incrementing integer primary key). Driver errors come out as
:class:`~rempart.errors.StorageUnavailable` or :class:`~rempart.errors.Conflict`.

The transparency log does not use this layer: its storage is tuned per engine
(``rempart.log.sqlite``, ``rempart.log.postgres``).

>>> db = Database.open("sqlite:///:memory:")
>>> db.migrate([("0001", "CREATE TABLE t (k TEXT PRIMARY KEY, v {blob} NOT NULL)")])
>>> with db.transaction() as tx:
...     _ = tx.execute("INSERT INTO t (k, v) VALUES (?, ?)", ("a", b"1"))
>>> db.query_one("SELECT v FROM t WHERE k = ?", ("a",))
(b'1',)
"""

from __future__ import annotations

import functools
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from rempart.errors import ConfigurationError, Conflict, StorageUnavailable

__all__ = ["Database", "Dialect", "Transaction", "parse_database_url"]

Dialect = Literal["sqlite", "postgres"]
Params = Sequence[Any]
Row = tuple[Any, ...]

_DDL_WORDS: dict[Dialect, dict[str, str]] = {
    "sqlite": {"blob": "BLOB", "bigint": "INTEGER", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"},
    "postgres": {"blob": "bytea", "bigint": "bigint", "serial": "bigserial PRIMARY KEY"},
}


def parse_database_url(url: str) -> tuple[Dialect, str]:
    """``sqlite:///path`` or ``postgresql://…`` → (dialect, path or DSN); raises ConfigurationError."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if not path:
            raise ConfigurationError(f"SQLite URL {url!r} has no path", url=url)
        return "sqlite", path
    if url.startswith(("postgresql://", "postgres://")):
        try:
            conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise ConfigurationError(f"PostgreSQL URL does not parse: {exc}", url=url) from exc
        return "postgres", url
    raise ConfigurationError(f"database URL {url!r} is neither sqlite:///PATH nor postgresql://…", url=url)


class Transaction(Protocol):
    def execute(self, sql: str, params: Params = ()) -> Cursor: ...
    def executemany(self, sql: str, rows: Sequence[Params]) -> None: ...


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Row | None: ...
    def fetchall(self) -> list[Row]: ...


_MIGRATION_LOCK = 0x52454D51  # pg_advisory_xact_lock key for schema migrations

_QMARK = re.compile(r"\?")


@functools.lru_cache(maxsize=4096)
def _to_pyformat(sql: str) -> str:
    """``?`` placeholders → psycopg's ``%s`` (literal ``%`` doubled); cached per statement."""
    return _QMARK.sub("%s", sql.replace("%", "%%"))


@contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except (sqlite3.IntegrityError, psycopg.errors.IntegrityError) as exc:
        raise Conflict(f"{what}: {exc}") from exc
    except (sqlite3.Error, psycopg.Error) as exc:
        raise StorageUnavailable(f"{what}: {exc}") from exc
    except Exception as exc:
        if type(exc).__module__.startswith("psycopg_pool"):
            raise StorageUnavailable(f"{what}: {exc}") from exc
        raise


class _PgTransaction:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        return self._conn.execute(_to_pyformat(sql), tuple(params), prepare=True)  # type: ignore[return-value]

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(_to_pyformat(sql), [tuple(r) for r in rows])


class _SqliteTransaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        return self._conn.execute(sql, tuple(params))  # type: ignore[return-value]

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        self._conn.executemany(sql, rows)


class Database:
    """One database (SQLite file or PostgreSQL), safe to share between threads.

    * :meth:`transaction` is atomic; it is durable when the ``with`` block exits
      (SQLite WAL with ``synchronous=FULL``; PostgreSQL ``synchronous_commit``).
    * SQLite writes are serialized by ``BEGIN IMMEDIATE``; readers run beside them.
    * ``write_ahead_log=False`` (SQLite only) keeps a rollback journal instead of
      the WAL: for a database that is mostly appended to in bulk by one writer,
      where the WAL would write every page twice; readers then wait for writers,
      and every commit is synced. A WAL database another process holds open
      stays in WAL.
    """

    def __init__(
        self,
        dialect: Dialect,
        target: str,
        *,
        pool_size: int = 8,
        fsync_each_commit: bool = True,
        write_ahead_log: bool = True,
    ) -> None:
        self.dialect: Dialect = dialect
        self.target = target
        self._fsync = fsync_each_commit
        self._journal = "WAL" if write_ahead_log else "DELETE"
        self._local = threading.local()
        self._sqlite_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._pool: ConnectionPool[Any] | None = None
        if dialect == "postgres":
            with _translated("connecting to PostgreSQL"):
                self._pool = ConnectionPool(
                    target,
                    min_size=1,
                    max_size=pool_size,
                    kwargs={"autocommit": True},
                    timeout=10.0,
                    open=True,
                )
                self._pool.wait(timeout=10.0)
        else:
            if target != ":memory:":
                Path(target).parent.mkdir(parents=True, exist_ok=True)
            with _translated(f"opening {target}"):
                self._sqlite()

    @classmethod
    def open(
        cls, url: str, *, pool_size: int = 8, fsync_each_commit: bool = True, write_ahead_log: bool = True
    ) -> Database:
        dialect, target = parse_database_url(url)
        return cls(
            dialect,
            target,
            pool_size=pool_size,
            fsync_each_commit=fsync_each_commit,
            write_ahead_log=write_ahead_log,
        )

    @property
    def url(self) -> str:
        return f"sqlite:///{self.target}" if self.dialect == "sqlite" else self.target

    def _sqlite(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self.target == ":memory:" and self._sqlite_conns:
                conn = self._sqlite_conns[0]  # one shared in-memory database
            else:
                conn = sqlite3.connect(
                    self.target, timeout=30.0, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA busy_timeout=30000")
                journal = self._journal
                try:
                    journal = conn.execute(f"PRAGMA journal_mode={journal}").fetchone()[0].upper()
                except sqlite3.OperationalError:
                    # Leaving WAL needs the database to itself; another process has it
                    # open. It stays in WAL: slower for bulk appends, as safe.
                    journal = "WAL"
                # FULL: a commit is on disk when it returns. NORMAL (for caches a
                # crash may roll back by a few commits, never corrupt) only in WAL,
                # which syncs at checkpoints; a rollback journal needs FULL for that.
                durable = self._fsync or journal != "WAL"
                conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                conn.execute("PRAGMA foreign_keys=ON")
                with self._lock:
                    self._sqlite_conns.append(conn)
            self._local.conn = conn
        return conn

    def ddl(self, sql: str) -> str:
        """Fill the dialect words ``{blob}``, ``{bigint}``, ``{serial}`` of a DDL statement."""
        return sql.format(**_DDL_WORDS[self.dialect])

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """An atomic read-write transaction, committed when the block exits cleanly."""
        if self._pool is not None:
            with (
                _translated("PostgreSQL transaction"),
                self._pool.connection() as conn,
                conn.transaction(),
            ):
                yield _PgTransaction(conn)
            return
        conn = self._sqlite()
        with _translated("SQLite transaction"):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTransaction(conn)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def query_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Run one read outside any explicit transaction (a consistent snapshot of one statement)."""
        if self._pool is not None:
            with _translated("PostgreSQL query"), self._pool.connection() as conn:
                rows: list[Row] = conn.execute(_to_pyformat(sql), tuple(params), prepare=True).fetchall()
                return rows
        try:  # _translated, spelled out: point reads come through here
            return self._sqlite().execute(sql, params).fetchall()
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"SQLite query: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"SQLite query: {exc}") from exc

    def query_one(self, sql: str, params: Params = ()) -> Row | None:
        rows = self.query_all(sql, params)
        return rows[0] if rows else None

    def migrate(self, steps: Sequence[tuple[str, str]]) -> None:
        """Apply numbered DDL steps once each, in order, in one transaction.

        Applied steps are recorded in ``schema_steps``; on PostgreSQL an advisory
        lock keeps two processes starting at once from racing.
        """
        with self.transaction() as tx:
            if self.dialect == "postgres":
                tx.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
            tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_steps (step TEXT PRIMARY KEY, applied TEXT NOT NULL)"
            )
            done = {r[0] for r in tx.execute("SELECT step FROM schema_steps").fetchall()}
            for step, sql in steps:
                if step in done:
                    continue
                for statement in filter(None, (s.strip() for s in self.ddl(sql).split(";"))):
                    tx.execute(statement)
                tx.execute(
                    "INSERT INTO schema_steps (step, applied) VALUES (?, CURRENT_TIMESTAMP)",
                    (step,),
                )

    def release_thread(self) -> None:
        """Close the calling thread's SQLite connection, if it has its own (call it before a thread ends).

        Each thread opens its own connection on first use and keeps it until
        :meth:`close`; a short-lived thread would otherwise leave one open.
        """
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            return
        del self._local.conn
        with self._lock:
            if self.target == ":memory:" and self._sqlite_conns and conn is self._sqlite_conns[0]:
                return  # the one shared in-memory database stays open
            if conn in self._sqlite_conns:
                self._sqlite_conns.remove(conn)
        conn.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        with self._lock:
            for conn in self._sqlite_conns:
                conn.close()
            self._sqlite_conns.clear()
