"""Bulk SQL shared by the store's tables: many ids or many rows in one statement, on either dialect."""

from __future__ import annotations

import base64
import json
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from rempart.db import Dialect, Transaction

CHUNK = 500
"""Ids per ``IN`` query: well under SQLite's parameter limit."""


def chunks(ids: Collection[str]) -> Iterator[list[str]]:
    """The distinct ids, sorted, :data:`CHUNK` at a time."""
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start : start + CHUNK]


def in_clause(dialect: Dialect, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
    """``column IN (…)`` for SQLite, ``column = ANY(?)`` (one array parameter) for PostgreSQL."""
    if dialect == "postgres":
        return f"{column} = ANY(?)", [list(values)]
    return f"{column} IN ({', '.join('?' for _ in values)})", list(values)


def insert_rows(
    tx: Transaction,
    dialect: Dialect,
    table: str,
    columns: Sequence[tuple[str, str]],
    rows: Sequence[Sequence[Any]],
    *,
    on_conflict: str = "",
) -> int:
    """Insert many rows in one statement; returns how many were inserted.

    On PostgreSQL the rows travel as one JSON array parameter (bytes in
    base64), unpacked by the server with ``jsonb_array_elements``: one round
    trip, and no per-value adaptation in Python (the driver's array dumping
    costs more than the sealing). On SQLite, ``executemany``. ``columns`` are
    (name, type: text, bigint or bytea); ``on_conflict`` is an optional
    ``ON CONFLICT …`` clause (rows it skips are not counted).
    """
    if not rows:
        return 0
    names = ", ".join(name for name, _ in columns)
    if dialect == "postgres":
        blobs = [i for i, (_, kind) in enumerate(columns) if kind == "bytea"]
        encoded: Sequence[Sequence[Any]] = rows
        if blobs:
            b64 = base64.b64encode
            encoded = []
            for row in rows:
                values = list(row)
                for i in blobs:
                    values[i] = b64(values[i]).decode("ascii")
                encoded.append(values)
        selected = ", ".join(
            f"decode(e->>{i}, 'base64')" if kind == "bytea" else f"(e->>{i})::{kind}"
            for i, (_, kind) in enumerate(columns)
        )
        cur = tx.execute(
            f"INSERT INTO {table} ({names}) SELECT {selected} FROM jsonb_array_elements(?::jsonb) AS e "
            f"{on_conflict}",
            (json.dumps(encoded, ensure_ascii=False, separators=(",", ":")),),
        )
        return int(cur.rowcount)
    before = tx.execute("SELECT total_changes()").fetchone()
    tx.executemany(
        f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' for _ in columns)}) {on_conflict}", rows
    )
    after = tx.execute("SELECT total_changes()").fetchone()
    return int(after[0]) - int(before[0]) if before and after else 0
