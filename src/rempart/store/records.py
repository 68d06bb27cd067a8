"""The values the record store takes and returns, and how they are checked and encoded.

A record is ``(subject_id, collection, record_id) → {field: value}`` with a
version counter. Values are JSON (null, booleans, integers, finite floats,
strings, arrays, objects with string keys); each is encoded canonically
(sorted keys, no spaces, UTF-8) before it is sealed, so the same value always
has the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

from rempart.errors import InvalidInput

__all__ = [
    "DESTINATION_NAME",
    "MAX_FIELD_BYTES",
    "MAX_PAGE",
    "MAX_RECORD_BYTES",
    "REGION_NAME",
    "Actor",
    "Page",
    "Record",
    "RecordKey",
    "check_id",
    "check_limit",
    "check_org",
    "decode_cursor",
    "decode_value",
    "encode_cursor",
    "encode_value",
    "length_prefixed",
]

MAX_FIELD_BYTES = 256 * 1024
MAX_RECORD_BYTES = 1024 * 1024
MAX_PAGE = 1000
_MAX_DEPTH = 32
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}\Z")
_ORG = re.compile(r"^[a-z][a-z0-9_]{0,62}\Z")
REGION_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}\Z")
"""The one rule for a region's name, wherever one is written: configuration, scopes, trust roots."""
DESTINATION_NAME = re.compile(r"^[a-z0-9][a-z0-9._:/-]{0,127}\Z")
"""The one rule for an egress destination's name: in a region's rules and in a transfer request."""

T = TypeVar("T")


def length_prefixed(*parts: str) -> bytes:
    """Each string as a 2-byte big-endian length and its UTF-8: a tuple of names, unambiguously."""
    out = bytearray()
    for part in parts:
        raw = part.encode("utf-8")
        out += len(raw).to_bytes(2, "big") + raw
    return bytes(out)


def check_id(value: object, what: str) -> str:
    """A subject, record or principal id: 1-128 characters of ``A-Z a-z 0-9 . _ : @ -``."""
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidInput(
            f"{what} {value!r} must be 1 to 128 characters of letters, digits and . _ : @ - "
            "(starting with a letter or digit)",
            field=what,
        )
    return value


def check_org(value: object) -> str:
    if not isinstance(value, str) or not _ORG.match(value):
        raise InvalidInput(f"org {value!r} must be a lower_snake word (e.g. operator, custodian)")
    return value


def check_limit(limit: object) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be an integer from 1 to {MAX_PAGE}, got {limit!r}")
    return limit


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting, as the store sees it: a principal id and the org it belongs to.

    Authentication and policy happen before the store (the gateway); the store
    only records who asked, in the log entries it writes.
    """

    principal: str
    org: str

    def __post_init__(self) -> None:
        check_id(self.principal, "principal id")
        check_org(self.org)

    def as_entry(self) -> dict[str, str]:
        return {"principal": self.principal, "org": self.org}


@dataclass(frozen=True, slots=True)
class RecordKey:
    subject_id: str
    collection: str
    record_id: str


class Record(msgspec.Struct, frozen=True):
    """One stored record, decrypted: only the fields asked for (all by default).

    A frozen ``msgspec.Struct`` rather than a frozen dataclass: every read makes
    one, and this is built in C (about 0.15 µs against 1 µs).
    """

    subject_id: str
    collection: str
    record_id: str
    version: int
    fields: Mapping[str, Any]
    updated_at: str

    @property
    def key(self) -> RecordKey:
        return RecordKey(self.subject_id, self.collection, self.record_id)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results and the cursor for the next (None when there is no more)."""

    items: Sequence[T]
    next_cursor: str | None


def _check_value(value: Any, path: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise InvalidInput(f"{path}: nested more than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | int | str):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
            raise InvalidInput(f"{path}: integer does not fit in 64 bits")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"{path}: {value} is not a finite number")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_value(item, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, Mapping):
        for k, item in value.items():
            if not isinstance(k, str):
                raise InvalidInput(f"{path}: object keys must be strings, got {type(k).__name__}")
            _check_value(item, f"{path}.{k}", depth + 1)
        return
    raise InvalidInput(f"{path}: a {type(value).__name__} is not a JSON value")


def encode_value(value: Any, path: str) -> bytes:
    """Check a field value and return its canonical JSON bytes; InvalidInput names ``path``."""
    _check_value(value, path, 0)
    try:
        data = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except (UnicodeEncodeError, ValueError) as exc:
        raise InvalidInput(f"{path}: not encodable as UTF-8 JSON ({exc.__class__.__name__})") from None
    if len(data) > MAX_FIELD_BYTES:
        raise InvalidInput(f"{path}: value is {len(data)} bytes, more than {MAX_FIELD_BYTES}")
    return data


def decode_value(data: bytes) -> Any:
    return json.loads(data)


def encode_cursor(*parts: str) -> str:
    """An opaque page cursor: the sort key of the last item returned."""
    return base64.urlsafe_b64encode(json.dumps(list(parts), separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: object, arity: int) -> tuple[str, ...]:
    """The parts of a cursor this store issued; InvalidInput for anything else."""
    try:
        if not isinstance(cursor, str) or len(cursor) > 2048:
            raise ValueError
        parts = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        raise InvalidInput("cursor is not one this store issued") from None
    if not isinstance(parts, list) or len(parts) != arity or not all(isinstance(p, str) for p in parts):
        raise InvalidInput("cursor is not one this store issued")
    return tuple(parts)
