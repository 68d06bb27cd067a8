"""Egress: the one door through which records or fields leave a region.

The rules, checked by :meth:`rempart.store.service.RecordService.egress`:

* the destination must be one the region's rules list;
* public fields may leave;
* excepted fields only for a purpose the catalog lists for them, and within
  the region's optional per-purpose budget of records per UTC day;
* protected fields never, unless a governance-approved exception names them
  (the :class:`EgressExceptions` port; the default, :class:`NoEgressExceptions`,
  approves none).

Every transfer is recorded (``egress.transfer``) with the purpose, the
destination, the count and the SHA-256 digest of exactly the bytes that left;
every refusal too (``egress.refused``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from rempart.db import Database
from rempart.errors import InvalidInput
from rempart.log.sequencer import LogPosition
from rempart.store.catalog import Catalog, Category, check_purpose

__all__ = [
    "SCHEMA",
    "EgressBudgets",
    "EgressExceptions",
    "EgressRequest",
    "EgressTransfer",
    "FieldClasses",
    "NoEgressExceptions",
    "classify_fields",
    "encode_payload",
]

SCHEMA: list[tuple[str, str]] = [
    (
        "store-egress-0001",
        """
        CREATE TABLE store_egress_budget (
            region TEXT NOT NULL,
            purpose TEXT NOT NULL,
            day TEXT NOT NULL,
            used {bigint} NOT NULL,
            PRIMARY KEY (region, purpose, day)
        )
        """,
    )
]

MAX_EGRESS_RECORDS = 100_000


class EgressExceptions(Protocol):
    """Governance-approved exceptions that let named protected fields leave (issue: governance)."""

    def find(
        self, region: str, fields: Collection[str], purpose: str, destination: str, now: datetime
    ) -> str | None:
        """The id of an approved exception covering every one of ``fields`` ("collection.field"), or None."""
        ...


class NoEgressExceptions:
    """No exception is ever approved: protected fields never leave. The default."""

    def find(
        self, region: str, fields: Collection[str], purpose: str, destination: str, now: datetime
    ) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class EgressRequest:
    """What to send out of a region: which fields of which records, why, and where to."""

    region: str
    collection: str
    fields: tuple[str, ...]
    purpose: str
    destination: str
    subject_ids: tuple[str, ...] | None = None
    """Only these subjects (None: every subject of the region)."""
    where: Mapping[str, Any] = field(default_factory=dict)
    """Equality filters on public fields."""
    limit: int = 10_000

    def __post_init__(self) -> None:
        check_purpose(self.purpose)
        if not isinstance(self.fields, tuple) or not self.fields:
            raise InvalidInput("an egress names at least one field, as a tuple")
        if len(set(self.fields)) != len(self.fields):
            raise InvalidInput("an egress names each field once")
        if not isinstance(self.limit, int) or not 1 <= self.limit <= MAX_EGRESS_RECORDS:
            raise InvalidInput(f"an egress sends from 1 to {MAX_EGRESS_RECORDS} records, not {self.limit!r}")


@dataclass(frozen=True, slots=True)
class EgressTransfer:
    """What left: exactly ``payload``, whose SHA-256 is ``digest``, recorded at ``position``."""

    payload: bytes
    digest: str
    count: int
    position: LogPosition
    exception: str | None = None

    def records(self) -> list[dict[str, Any]]:
        data: dict[str, Any] = json.loads(self.payload)
        return list(data["records"])


@dataclass(frozen=True, slots=True)
class FieldClasses:
    public: tuple[str, ...]
    excepted_allowed: tuple[str, ...]
    excepted_refused: tuple[str, ...]
    protected: tuple[str, ...]


def classify_fields(catalog: Catalog, collection: str, fields: Sequence[str], purpose: str) -> FieldClasses:
    """Sort the requested fields by what the rules say about them for this purpose."""
    spec = catalog.collection(collection)
    public: list[str] = []
    allowed: list[str] = []
    refused: list[str] = []
    protected: list[str] = []
    for name in fields:
        f = spec.field(name)
        if f.category is Category.PUBLIC:
            public.append(name)
        elif f.category is Category.EXCEPTED:
            (allowed if purpose in f.purposes else refused).append(name)
        else:
            protected.append(name)
    return FieldClasses(tuple(public), tuple(allowed), tuple(refused), tuple(protected))


def encode_payload(header: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> tuple[bytes, str]:
    """The canonical bytes that leave (sorted keys, no spaces, UTF-8) and their hex SHA-256."""
    payload = json.dumps(
        {**header, "records": list(records)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")
    return payload, hashlib.sha256(payload).hexdigest()


class EgressBudgets:
    """Per region, purpose and UTC day: how many excepted records have left. In the control database."""

    def __init__(self, database: Database) -> None:
        self.db = database
        database.migrate(SCHEMA)

    def used(self, region: str, purpose: str, day: str) -> int:
        row = self.db.query_one(
            "SELECT used FROM store_egress_budget WHERE region = ? AND purpose = ? AND day = ?",
            (region, purpose, day),
        )
        return 0 if row is None else int(row[0])

    @contextmanager
    def reserve(self, region: str, purpose: str, day: str, count: int, limit: int) -> Iterator[int | None]:
        """Hold the day's budget row locked; yield the new total if ``count`` fits, else None.

        The caller records the transfer inside the block: the new total is
        committed only when the block exits cleanly, so a transfer the log did
        not record never spends budget, and two transfers cannot both take the
        last of it.
        """
        key = (region, purpose, day)
        lock = " FOR UPDATE" if self.db.dialect == "postgres" else ""
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO store_egress_budget (region, purpose, day, used) VALUES (?, ?, ?, 0) "
                "ON CONFLICT (region, purpose, day) DO NOTHING",
                key,
            )
            row = tx.execute(
                f"SELECT used FROM store_egress_budget WHERE region = ? AND purpose = ? AND day = ?{lock}",
                key,
            ).fetchone()
            used = 0 if row is None else int(row[0])
            if used + count > limit:
                yield None
                return
            yield used + count
            tx.execute(
                "UPDATE store_egress_budget SET used = used + ? WHERE region = ? AND purpose = ? AND day = ?",
                (count, *key),
            )
