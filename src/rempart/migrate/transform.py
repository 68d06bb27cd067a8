"""One legacy row → the records it becomes and its home region, or the reason it is quarantined.

Pure: no I/O, no clock. The runner, the verifier and the purger all decide
with this same code, so a row migrated by the runner is recognised, record
for record and byte for byte, when the verifier and the purger read it again.

The canonical form of a migrated record is canonical JSON (sorted keys, no
spaces, UTF-8) of ``{"collection", "fields", "record_id", "region", "subject"}``;
its Merkle leaf is the RFC 6962 leaf hash of those bytes.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rempart.clock import format_time
from rempart.errors import InvalidInput
from rempart.migrate.mapping import MigrationMapping, ValueType
from rempart.migrate.source import SourceKey, SourceRow
from rempart.store.catalog import Catalog
from rempart.store.records import MAX_FIELD_BYTES, MAX_RECORD_BYTES, check_id, encode_value
from rempart.tlog.merkle import leaf_hash

__all__ = [
    "UNROUTED",
    "PlannedRecord",
    "Reason",
    "Rejection",
    "RowPlan",
    "RowTransformer",
    "batch_digest",
    "canonical_record",
    "decode_key",
    "encode_key",
    "record_leaf",
]

UNROUTED = "(unrouted)"
"""Where counts go for rows whose region could not be decided (no region name can clash: not a word)."""


class Reason(StrEnum):
    """Why a row was quarantined: a stable code (the message says the rest)."""

    UNDECODABLE_ROW = "undecodable_row"
    MISSING_SUBJECT_ID = "missing_subject_id"
    INVALID_SUBJECT_ID = "invalid_subject_id"
    UNKNOWN_REGION = "unknown_region"
    REGION_CONFLICT = "region_conflict"
    UNKNOWN_FIELD = "unknown_field"
    UNDECODABLE_VALUE = "undecodable_value"
    INVALID_VALUE = "invalid_value"
    INVALID_RECORD_ID = "invalid_record_id"
    EMPTY_RECORD = "empty_record"
    DUPLICATE_RECORD = "duplicate_record"


@dataclass(frozen=True, slots=True)
class PlannedRecord:
    collection: str
    record_id: str
    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RowPlan:
    """A row that migrates: its subject, the subject's home region, its records."""

    key: SourceKey
    subject_id: str
    region: str
    records: tuple[PlannedRecord, ...]


@dataclass(frozen=True, slots=True)
class Rejection:
    """A row that is quarantined: the code, a message, and its region if one could be decided."""

    key: SourceKey
    reason: Reason
    message: str
    region: str | None = None

    @property
    def counted_in(self) -> str:
        return self.region or UNROUTED


class _Undecodable(Exception):
    pass


_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise _Undecodable("bytes that are not UTF-8") from None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _Undecodable("text that is not valid UTF-8") from None
        return value
    raise _Undecodable(f"a {type(value).__name__} where text was expected")


def _convert(value: Any, kind: ValueType) -> Any:
    """A legacy value as a JSON value of the given type; _Undecodable says why not."""
    if kind is ValueType.AUTO:
        if isinstance(value, str | bytes | bytearray | memoryview):
            return _text(value)
        if isinstance(value, bool | int | float | list | dict):
            return value
        if isinstance(value, decimal.Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        if isinstance(value, dt.datetime):
            return format_time(value) if value.tzinfo is not None else value.isoformat()
        if isinstance(value, dt.date | dt.time):
            return value.isoformat()
        if isinstance(value, uuid.UUID):
            return str(value)
        raise _Undecodable(f"a {type(value).__name__} value has no JSON form")
    if kind is ValueType.TEXT:
        if isinstance(value, bool | int | float | decimal.Decimal):
            return str(value)
        return _text(value)
    if kind is ValueType.INTEGER:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, decimal.Decimal) and value == value.to_integral_value():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise _Undecodable(f"{_show(value)} is not an integer")
    if kind is ValueType.NUMBER:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        if isinstance(value, decimal.Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        if isinstance(value, str):
            text = value.strip()
            try:
                return int(text)
            except ValueError:
                try:
                    number = float(text)
                except ValueError:
                    pass
                else:
                    if math.isfinite(number):
                        return number
        raise _Undecodable(f"{_show(value)} is not a number")
    if kind is ValueType.BOOLEAN:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            word = value.strip().lower()
            if word in _TRUE:
                return True
            if word in _FALSE:
                return False
        raise _Undecodable(f"{_show(value)} is not a boolean")
    # JSON
    if isinstance(value, dict | list | bool | int | float) or value is None:
        return value
    text = _text(value)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Undecodable(f"not JSON ({exc.msg} at column {exc.colno})") from None


def _show(value: Any) -> str:
    """A value named in a quarantine message: its type and length, never its content (personal data)."""
    if isinstance(value, str | bytes):
        return f"a {type(value).__name__} of length {len(value)}"
    return f"a {type(value).__name__}"


_encode_text = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) uses for a str


def _encoded_size(value: Any, collection: str, name: str) -> int:
    """Size of the value as the store encodes it, checked as the store checks it (InvalidInput if not).

    Common scalars take a fast path with the same result; the rest goes
    through the store's own :func:`encode_value`.
    """
    kind = type(value)
    if kind is str:
        try:
            size = len(_encode_text(value).encode("utf-8"))
        except UnicodeEncodeError:
            size = 0
        if 0 < size <= MAX_FIELD_BYTES:
            return size
    elif kind is bool:
        return 4 if value else 5
    elif kind is int and -(2**63) < value < 2**63:
        return len(str(value))
    return len(encode_value(value, f"{collection}.{name}"))


class RowTransformer:
    """Applies a mapping to legacy rows, checking every value against the catalog as the store would."""

    def __init__(self, mapping: MigrationMapping, catalog: Catalog) -> None:
        self.mapping = mapping
        self.catalog = catalog
        self._specs = {r.collection: catalog.collection(r.collection) for r in mapping.records}

    def subject_of(self, row: SourceRow) -> str | None:
        """The row's subject id if it has a well-formed one (for directory lookups before planning)."""
        if row.values is None:
            return None
        value = row.values.get(self.mapping.subject_column)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            return None
        try:
            return check_id(value, "subject id")
        except InvalidInput:
            return None

    def subjects_of(self, rows: Iterable[SourceRow]) -> set[str]:
        """The well-formed subject ids of some rows: what to look up in the directory before planning."""
        return {s for s in map(self.subject_of, rows) if s is not None}

    def plan(self, row: SourceRow, homes: Mapping[str, str]) -> RowPlan | Rejection:
        """Decide one row. ``homes`` holds the directory's home region of subjects that already exist."""
        if row.values is None:
            return Rejection(row.key, Reason.UNDECODABLE_ROW, row.error)
        values = row.values
        mapping = self.mapping
        raw_subject = values.get(mapping.subject_column)
        if raw_subject is None or raw_subject == "":
            return Rejection(
                row.key, Reason.MISSING_SUBJECT_ID, f"column {mapping.subject_column!r} is empty"
            )
        subject_id = self.subject_of(row)
        if subject_id is None:
            return Rejection(
                row.key,
                Reason.INVALID_SUBJECT_ID,
                f"column {mapping.subject_column!r} is not a subject id "
                "(1 to 128 of letters, digits, . _ : @ -)",
            )
        ruled = mapping.region.region_for(values.get(mapping.region.column))
        home = homes.get(subject_id)
        if home is not None:
            if ruled is not None and ruled != home:
                return Rejection(
                    row.key,
                    Reason.REGION_CONFLICT,
                    f"the rule says region {ruled!r} but the subject already lives in {home!r}",
                    home,
                )
            region = home
        elif ruled is None:
            return Rejection(
                row.key,
                Reason.UNKNOWN_REGION,
                f"column {mapping.region.column!r} holds a value the region map does not list, and there "
                "is no default region",
            )
        else:
            region = ruled
        records: list[PlannedRecord] = []
        for rec in mapping.records:
            spec = self._specs[rec.collection]
            fields: dict[str, Any] = {}
            for fm in rec.fields:
                value = values.get(fm.column)
                if value is None:
                    continue
                try:
                    fields[fm.field] = _convert(value, fm.type)
                except _Undecodable as exc:
                    return Rejection(
                        row.key,
                        Reason.UNDECODABLE_VALUE,
                        f"{rec.collection}.{fm.field} (column {fm.column!r}, type {fm.type.value}): {exc}",
                        region,
                    )
            if rec.fields_from:
                extra = values.get(rec.fields_from)
                if extra is not None:
                    try:
                        extra = _convert(extra, ValueType.JSON)
                    except _Undecodable as exc:
                        return Rejection(
                            row.key, Reason.UNDECODABLE_VALUE, f"column {rec.fields_from!r}: {exc}", region
                        )
                    if not isinstance(extra, dict):
                        return Rejection(
                            row.key,
                            Reason.UNDECODABLE_VALUE,
                            f"column {rec.fields_from!r} holds a JSON {type(extra).__name__}, not an object",
                            region,
                        )
                    for name in sorted(extra):
                        if name not in spec.fields:
                            return Rejection(
                                row.key,
                                Reason.UNKNOWN_FIELD,
                                f"collection {rec.collection!r} has no field {name[:64]!r} in the catalog",
                                region,
                            )
                        if name in fields:
                            continue  # an explicitly mapped column wins
                        if extra[name] is not None:
                            fields[name] = extra[name]
            if not fields:
                continue
            if rec.record_id_column:
                rid = values.get(rec.record_id_column)
                if isinstance(rid, int) and not isinstance(rid, bool):
                    rid = str(rid)
                if not isinstance(rid, str):
                    return Rejection(
                        row.key, Reason.INVALID_RECORD_ID, f"column {rec.record_id_column!r} is empty", region
                    )
                try:
                    record_id = check_id(rid, "record id")
                except InvalidInput:
                    return Rejection(
                        row.key,
                        Reason.INVALID_RECORD_ID,
                        f"column {rec.record_id_column!r} is not a record id "
                        "(1 to 128 of letters, digits, . _ : @ -)",
                        region,
                    )
            else:
                record_id = rec.record_id
            total = 0
            for name, value in fields.items():
                try:
                    total += _encoded_size(value, rec.collection, name)
                except InvalidInput as exc:
                    return Rejection(row.key, Reason.INVALID_VALUE, exc.message, region)
            if total > MAX_RECORD_BYTES:
                return Rejection(
                    row.key,
                    Reason.INVALID_VALUE,
                    f"the {rec.collection} record would hold {total} bytes, more than {MAX_RECORD_BYTES}",
                    region,
                )
            records.append(PlannedRecord(rec.collection, record_id, fields))
        if not records:
            return Rejection(row.key, Reason.EMPTY_RECORD, "every mapped value of the row is empty", region)
        return RowPlan(row.key, subject_id, region, tuple(records))


def canonical_record(region: str, subject_id: str, record: PlannedRecord | Any) -> bytes:
    """The canonical bytes of a migrated record (a :class:`PlannedRecord` or a store ``Record``).

    Canonical JSON of ``{"collection", "fields", "record_id", "region",
    "subject"}``: sorted keys, no spaces, UTF-8, as ``json.dumps(…, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)`` writes it (built around the
    fields' own encoding, which is the only part that needs the general encoder).
    """
    fields = json.dumps(
        record.fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    text = (
        f'{{"collection":{_encode_text(record.collection)},"fields":{fields},'
        f'"record_id":{_encode_text(record.record_id)},"region":{_encode_text(region)},'
        f'"subject":{_encode_text(subject_id)}}}'
    )
    return text.encode("utf-8")


def record_leaf(region: str, subject_id: str, record: PlannedRecord | Any) -> bytes:
    """RFC 6962 leaf hash of the record's canonical form."""
    return leaf_hash(canonical_record(region, subject_id, record))


def batch_digest(leaves: Iterable[bytes]) -> str:
    """Hex SHA-256 of a batch's leaf hashes in source order (what ``migration.batch`` carries)."""
    return hashlib.sha256(b"".join(leaves)).hexdigest()


def encode_key(key: SourceKey) -> str:
    """A source key as stored in the control database (JSON: keeps int and text apart)."""
    return json.dumps(key)


def decode_key(text: str) -> SourceKey:
    value = json.loads(text)
    if not isinstance(value, int | str) or isinstance(value, bool):
        raise InvalidInput(f"stored source key {text!r} is neither an integer nor text")
    return value
