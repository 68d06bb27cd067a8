"""The one format of transparency-log entries, and the port through which they are recorded.

Every entry is an *event*: canonical JSON (sorted keys, no spaces, UTF-8, no
floats) of an object ``{"v": 1, "type": …, "time": …, …body}``. Canonical bytes
mean an auditor who re-encodes a parsed entry gets the same leaf hash.
Entries never carry personal data in clear: a subject appears as a
:func:`subject_commitment`.

>>> from datetime import UTC, datetime
>>> e = Event("example.thing", datetime(2026, 1, 1, tzinfo=UTC), {"n": 1})
>>> e.encode()
b'{"n":1,"time":"2026-01-01T00:00:00.000000Z","type":"example.thing","v":1}'
>>> Event.decode(e.encode()) == e
True
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import msgspec

from rempart.clock import format_time, parse_time
from rempart.errors import InvalidInput
from rempart.log.sequencer import LogPosition, TransparencyLog
from rempart.tlog.tiles import MAX_ENTRY_SIZE

__all__ = [
    "ENVELOPE_KEYS",
    "Event",
    "EventRecorder",
    "LogRecorder",
    "canonical_json",
    "subject_commitment",
]

VERSION = 1
ENVELOPE_KEYS = frozenset({"v", "type", "time"})
_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\Z")


_SCALARS = frozenset({str, int, bool, type(None)})


def _find_bad_value(value: Any, path: str) -> str | None:
    """The path and reason of the first value canonical JSON cannot hold, or None.

    Written for the hot path (every log entry passes here): exact type checks
    first, ABC checks only for unusual types, and the path is only built once
    something is wrong.
    """
    kind = type(value)
    if kind in _SCALARS:
        return None
    if kind is dict or (kind not in (list, tuple) and isinstance(value, Mapping)):
        for key, item in value.items():
            if type(key) is not str:
                return f"{path}: object keys must be strings"
            if type(item) not in _SCALARS:
                bad = _find_bad_value(item, f"{path}.{key}")
                if bad is not None:
                    return bad
        return None
    if kind is list or kind is tuple:
        for i, item in enumerate(value):
            if type(item) not in _SCALARS:
                bad = _find_bad_value(item, f"{path}[{i}]")
                if bad is not None:
                    return bad
        return None
    if kind is float:
        return f"{path}: floats are not allowed in log entries (not canonical)"
    if isinstance(value, str | int):  # subclasses (enums): JSON writes them as their value
        return None
    return f"{path}: {kind.__name__} cannot go into a log entry"


# msgspec writes exactly what json.dumps(sort_keys=True, separators=(",", ":"),
# ensure_ascii=False) writes for the values _find_bad_value lets through
# (pinned by tests/property/test_canonical_json.py), several times faster.
_encoder = msgspec.json.Encoder(order="sorted")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8; floats refused."""
    bad = _find_bad_value(value, "$")
    if bad is not None:
        raise InvalidInput(bad)
    try:
        return _encoder.encode(value)
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"log entries are UTF-8: {exc.reason} in a string") from exc


def reference_canonical_json(value: Any) -> bytes:
    """The standard library's spelling of canonical JSON, which :func:`canonical_json` must equal."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Event:
    """One log entry: a dotted ``type``, when it happened, and its facts."""

    type: str
    time: datetime
    body: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _TYPE.match(self.type):
            raise InvalidInput(f"event type {self.type!r} is not dotted lower_snake words")
        if self.time.tzinfo is None:
            raise InvalidInput("event time must be timezone-aware")
        clash = ENVELOPE_KEYS & set(self.body)
        if clash:
            raise InvalidInput(f"event body may not use the envelope keys {sorted(clash)}")

    def encode(self) -> bytes:
        data = canonical_json(
            {**self.body, "v": VERSION, "type": self.type, "time": format_time(self.time)}
        )
        if len(data) > MAX_ENTRY_SIZE:
            raise InvalidInput(f"event {self.type} encodes to {len(data)} bytes, over {MAX_ENTRY_SIZE}")
        return data

    @classmethod
    def decode(cls, data: bytes) -> Event:
        """Parse and validate an entry; non-canonical bytes are refused."""
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"log entry is not UTF-8 JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise InvalidInput("log entry is not a JSON object")
        if obj.get("v") != VERSION:
            raise InvalidInput(f"log entry version is {obj.get('v')!r}, expected {VERSION}")
        kind, when = obj.get("type"), obj.get("time")
        if not isinstance(kind, str) or not isinstance(when, str):
            raise InvalidInput("log entry lacks a string 'type' and 'time'")
        try:
            time = parse_time(when)
        except ValueError as exc:
            raise InvalidInput(f"log entry time {when!r} is not RFC 3339: {exc}") from exc
        body = {k: v for k, v in obj.items() if k not in ENVELOPE_KEYS}
        event = cls(kind, time, body)
        if event.encode() != data:
            raise InvalidInput("log entry is not in canonical form")
        return event


def subject_commitment(key: bytes, subject_id: str) -> str:
    """The keyed commitment under which a subject appears in the log: hex HMAC-SHA256.

    The key is per subject and held with the subject's data key in its home
    region, so the custodian can find a subject's entries, the subject can be
    handed the key to check them, and crypto-shredding the key unlinks them.
    """
    return hmac.new(key, b"rempart/subject/v1\x00" + subject_id.encode(), hashlib.sha256).hexdigest()


class EventRecorder(Protocol):
    """Where events go: durably into the transparency log, or an error (fail closed)."""

    def record(self, event: Event) -> LogPosition: ...

    async def record_async(self, event: Event) -> LogPosition: ...


class LogRecorder:
    """An :class:`EventRecorder` that appends to a :class:`~rempart.log.sequencer.TransparencyLog`."""

    def __init__(self, log: TransparencyLog) -> None:
        self.log = log

    def record(self, event: Event) -> LogPosition:
        return self.log.append(event.encode())

    async def record_async(self, event: Event) -> LogPosition:
        return await self.log.append_async(event.encode())
