"""Legacy sources: a PostgreSQL table or query, a JSON Lines file, a CSV file.

Every source hands out rows in the order of a stable key (the key column of a
PostgreSQL source; the line number of a JSON Lines file; the row number of a
CSV file, header excluded), in batches, from after a given key: that is what
makes a run resumable. A row that cannot even be decoded (a line that is not
UTF-8 JSON, a CSV row with the wrong number of values) still comes out, with
``values=None`` and the reason, so that it is quarantined rather than dropped.

Only a PostgreSQL source can be purged (:class:`PostgresSource.purge_range`).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg import sql

from rempart.errors import ConfigurationError, InvalidInput, StorageUnavailable
from rempart.migrate.mapping import MigrationMapping, SourceKind, SourceSpec

__all__ = [
    "CsvSource",
    "JsonLinesSource",
    "LegacySource",
    "PostgresSource",
    "SourceKey",
    "SourceRow",
    "open_source",
    "raw_text",
]

SourceKey = int | str


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One legacy row: its key, its values by column (None if undecodable), and why not."""

    key: SourceKey
    values: dict[str, Any] | None
    error: str = ""
    raw: str = ""
    """The row as read, for quarantine, when ``values`` could not be decoded."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (SourceRow, (self.key, self.values, self.error, self.raw))


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$base64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)  # Decimal, UUID and anything else the driver hands out


def raw_text(row: SourceRow) -> str:
    """The raw row as JSON text (bytes as ``{"$base64": …}``), kept with its quarantine entry."""
    if row.values is None:
        return row.raw
    return json.dumps(row.values, sort_keys=True, ensure_ascii=True, default=_jsonable)


class LegacySource(Protocol):
    spec: SourceSpec

    def count(self) -> int:
        """How many rows the source holds now (for progress bars and plans)."""
        ...

    def batches(self, *, after: SourceKey | None, size: int) -> Iterator[list[SourceRow]]:
        """Rows with a key above ``after`` (all if None), in key order, ``size`` at a time."""
        ...

    def read_range(self, first: SourceKey, last: SourceKey) -> list[SourceRow]:
        """The rows whose key is between ``first`` and ``last`` inclusive, in key order."""
        ...

    def close(self) -> None: ...


class PostgresSource:
    """A table or a query on a PostgreSQL server, read with a server-side cursor in key order."""

    def __init__(self, spec: SourceSpec, columns: Sequence[str]) -> None:
        self.spec = spec
        self.columns = tuple(columns)
        try:
            self._conn = psycopg.connect(spec.url, connect_timeout=10)
        except psycopg.Error as exc:
            raise StorageUnavailable(f"source: cannot connect to the legacy database: {exc}") from exc
        self._serial = 0
        self._check()

    def _relation(self) -> sql.Composable:
        if self.spec.table:
            return sql.Identifier(*self.spec.table.split("."))
        return sql.SQL("({}) AS legacy").format(sql.SQL(self.spec.query))

    def _select(self, where: sql.Composable, *, lock: bool = False) -> sql.Composed:
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in self.columns)
        key = sql.Identifier(self.spec.key)
        return sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {}{}").format(
            cols, self._relation(), where, key, sql.SQL(" FOR UPDATE" if lock else "")
        )

    def _check(self) -> None:
        """Refuse a source that lacks a mapped column, before anything is read."""
        try:
            cur = self._conn.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(self._relation()))
            have = {d.name for d in cur.description or ()}
            self._conn.rollback()
        except psycopg.Error as exc:
            self._conn.rollback()
            raise ConfigurationError(
                f"source: cannot read the legacy relation: {exc}", path="source"
            ) from exc
        missing = sorted(set(self.columns) - have)
        if missing:
            raise ConfigurationError(
                f"source: the legacy relation has no column {', '.join(missing)} "
                f"(it has: {', '.join(sorted(have))})",
                path="source",
            )

    def _rows(self, records: Sequence[tuple[Any, ...]]) -> list[SourceRow]:
        cols = self.columns
        index = cols.index(self.spec.key)
        out = []
        for rec in records:
            key = rec[index]
            if not isinstance(key, int | str) or isinstance(key, bool):
                raise ConfigurationError(
                    f"source.key: key column {self.spec.key!r} must be an integer or text column",
                    path="source.key",
                )
            out.append(SourceRow(key, dict(zip(cols, rec, strict=True))))
        return out

    def count(self) -> int:
        try:
            row = self._conn.execute(sql.SQL("SELECT count(*) FROM {}").format(self._relation())).fetchone()
            self._conn.rollback()
        except psycopg.Error as exc:
            self._conn.rollback()
            raise StorageUnavailable(f"source: counting rows failed: {exc}") from exc
        return int(row[0]) if row else 0

    def batches(self, *, after: SourceKey | None, size: int) -> Iterator[list[SourceRow]]:
        key = sql.Identifier(self.spec.key)
        where: sql.Composable = sql.SQL("TRUE") if after is None else sql.SQL("{} > %s").format(key)
        params = () if after is None else (after,)
        self._serial += 1
        try:
            with self._conn.cursor(name=f"rempart_migrate_{self._serial}") as cur:
                cur.itersize = size
                cur.execute(self._select(where), params)
                while True:
                    records = cur.fetchmany(size)
                    if not records:
                        break
                    yield self._rows(records)
            self._conn.rollback()
        except psycopg.Error as exc:
            self._conn.rollback()
            raise StorageUnavailable(f"source: reading the legacy rows failed: {exc}") from exc

    def read_range(self, first: SourceKey, last: SourceKey) -> list[SourceRow]:
        key = sql.Identifier(self.spec.key)
        try:
            records = self._conn.execute(
                self._select(sql.SQL("{} >= %s AND {} <= %s").format(key, key)), (first, last)
            ).fetchall()
            self._conn.rollback()
        except psycopg.Error as exc:
            self._conn.rollback()
            raise StorageUnavailable(f"source: reading the legacy rows failed: {exc}") from exc
        return self._rows(records)

    def purge_range(
        self,
        first: SourceKey,
        last: SourceKey,
        keep: set[SourceKey],
        check: Callable[[list[SourceRow]], None],
    ) -> int:
        """Delete the rows of a key range, except ``keep``, if ``check`` accepts them; one transaction.

        The rows are locked (``FOR UPDATE``) before ``check`` sees them, so what
        is deleted is exactly what was checked. ``check`` raises to refuse.
        """
        if not self.spec.table:
            raise InvalidInput("purge needs a table source: rows of a query cannot be deleted by key")
        key = sql.Identifier(self.spec.key)
        try:
            with self._conn.transaction():
                records = self._conn.execute(
                    self._select(sql.SQL("{} >= %s AND {} <= %s").format(key, key), lock=True), (first, last)
                ).fetchall()
                rows = [r for r in self._rows(records) if r.key not in keep]
                check(rows)
                cur = self._conn.execute(
                    sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(self._relation(), key),
                    ([r.key for r in rows],),
                )
                return int(cur.rowcount)
        except psycopg.Error as exc:
            raise StorageUnavailable(f"source: deleting legacy rows failed: {exc}") from exc

    def remaining(self, first: SourceKey, last: SourceKey, keep: set[SourceKey]) -> int:
        """How many rows of a key range are still there, ``keep`` excepted (the purge's second check)."""
        key = sql.Identifier(self.spec.key)
        try:
            records = self._conn.execute(
                sql.SQL("SELECT {} FROM {} WHERE {} >= %s AND {} <= %s").format(
                    key, self._relation(), key, key
                ),
                (first, last),
            ).fetchall()
            self._conn.rollback()
        except psycopg.Error as exc:
            self._conn.rollback()
            raise StorageUnavailable(f"source: counting legacy rows failed: {exc}") from exc
        return sum(1 for (k,) in records if k not in keep)

    def close(self) -> None:
        self._conn.close()


class _FileSource:
    """A file read from the start on every pass, keyed by position (line or row number, 1-based)."""

    def __init__(self, spec: SourceSpec) -> None:
        if spec.path is None or not spec.path.is_file():
            raise ConfigurationError(f"source.path: {spec.path} is not a file", path="source.path")
        self.spec = spec
        self.path = spec.path

    def _rows(self, after: int) -> Iterator[SourceRow]:
        """The rows whose number is above ``after``, in order."""
        raise NotImplementedError

    def batches(self, *, after: SourceKey | None, size: int) -> Iterator[list[SourceRow]]:
        batch: list[SourceRow] = []
        for row in self._rows(int(after or 0)):
            batch.append(row)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def read_range(self, first: SourceKey, last: SourceKey) -> list[SourceRow]:
        out = []
        for row in self._rows(int(first) - 1):
            if int(row.key) > int(last):
                break
            out.append(row)
        return out

    def close(self) -> None:
        pass


class JsonLinesSource(_FileSource):
    """One JSON object per line; the key is the line number (1-based); blank lines are not rows."""

    def _rows(self, after: int) -> Iterator[SourceRow]:
        with self.path.open("rb") as f:
            for number, line in enumerate(f, start=1):
                if number <= after or not line.strip():
                    continue
                yield self._decode(number, line)

    @staticmethod
    def _decode(number: int, line: bytes) -> SourceRow:
        raw = line.rstrip(b"\r\n").decode("utf-8", "backslashreplace")
        try:
            value = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            return SourceRow(number, None, "the line is not UTF-8", raw)
        except json.JSONDecodeError as exc:
            return SourceRow(number, None, f"the line is not JSON: {exc.msg} at column {exc.colno}", raw)
        if not isinstance(value, dict):
            return SourceRow(number, None, f"the line is a JSON {type(value).__name__}, not an object", raw)
        return SourceRow(number, value)

    def count(self) -> int:
        with self.path.open("rb") as f:
            return sum(1 for line in f if line.strip())


class CsvSource(_FileSource):
    """A CSV file with a header line; the key is the row number after the header (1-based).

    An empty value is a missing value (CSV cannot tell them apart). Bytes that
    are not UTF-8 are kept (as surrogates) so that the row is quarantined as
    undecodable, not silently altered.
    """

    def _rows(self, after: int) -> Iterator[SourceRow]:
        with self.path.open("r", encoding="utf-8", errors="surrogateescape", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                return
            width = len(header)
            for number, values in enumerate(reader, start=1):
                if number <= after:
                    continue
                if not values:
                    continue
                if len(values) != width:
                    raw = json.dumps(values, ensure_ascii=True)
                    yield SourceRow(
                        number, None, f"the row has {len(values)} values, the header {width}", raw
                    )
                    continue
                yield SourceRow(
                    number, {h: (v if v != "" else None) for h, v in zip(header, values, strict=True)}
                )

    def count(self) -> int:
        return sum(1 for _ in self._rows(0))


def open_source(mapping: MigrationMapping) -> LegacySource:
    """The source a mapping names, opened (and, for PostgreSQL, checked for its columns)."""
    spec = mapping.source
    if spec.kind is SourceKind.POSTGRESQL:
        return PostgresSource(spec, mapping.columns())
    if spec.kind is SourceKind.JSONL:
        return JsonLinesSource(spec)
    return CsvSource(spec)
