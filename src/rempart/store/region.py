"""One region's record store: encrypted records and wrapped subject keys in the region's own database.

Storage contract (every backend, checked by ``tests/conformance/test_record_store.py``):

* A region database holds that region's subjects' wrapped keys and records,
  and nothing else. It is stamped with its region name on first use; opening
  it as another region raises :class:`~rempart.errors.ConfigurationError`.
* Every write is one transaction, atomic and durable when the call returns.
  Records carry a version: a write names the version it replaces (or none,
  to create) and a stale one raises :class:`~rempart.errors.Conflict`, so two
  writers never silently overwrite each other.
* A record cannot exist without its subject's keys (a foreign key): deleting
  the keys deletes nothing by itself, so erasure removes both in one transaction.
* A record's protected and excepted values are sealed together in one
  AES-256-GCM envelope under the subject's data key: the plaintext is the
  canonical JSON object of those fields (names and values), the associated
  data binds it to its region, subject, collection, record, version and update
  time and to the record's public values, kept in clear beside it. One authenticated
  decryption per read; anything copied, swapped or edited in the database
  fails with :class:`~rempart.errors.VerificationFailed` naming the record.
* Subject keys are wrapped by the region's KEK through :class:`KeyCustody`;
  unwrapped data keys are kept in a bounded in-memory LRU, evicted on erasure,
  relocation and rotation.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from rempart.clock import format_time
from rempart.crypto import KEY_SIZE, AeadCipher, new_key
from rempart.db import Database, Transaction
from rempart.errors import (
    ConfigurationError,
    Conflict,
    InvalidInput,
    NotFound,
    ResidencyViolation,
    VerificationFailed,
)
from rempart.events import subject_commitment
from rempart.store._format1 import FORMAT_1, open_format_1
from rempart.store._sql import chunks, in_clause, insert_rows
from rempart.store.catalog import Catalog, Category, CollectionSpec
from rempart.store.keys import KeyCustody, WrappedKey
from rempart.store.records import (
    MAX_FIELD_BYTES,
    MAX_RECORD_BYTES,
    Page,
    Record,
    check_id,
    check_limit,
    decode_cursor,
    encode_cursor,
    encode_value,
    length_prefixed,
)

__all__ = [
    "SCHEMA",
    "PreparedKeys",
    "RegionStore",
    "SealedRecord",
    "SubjectKeyRow",
    "envelope_binding",
    "open_record",
    "open_subject_keys",
    "prepare_subject_keys",
    "seal_record",
]

_ENVELOPE_STEP = "store-region-0002"
_RESEAL_PAGE = 500  # format-1 records per transaction when a store upgrades them

SCHEMA: list[tuple[str, str]] = [
    (
        "store-region-0001",
        """
        CREATE TABLE store_region (name TEXT PRIMARY KEY, stamped_at TEXT NOT NULL);
        CREATE TABLE store_subject_keys (
            subject_id TEXT PRIMARY KEY,
            kek_id TEXT NOT NULL,
            wrapped_data_key {blob} NOT NULL,
            wrapped_commitment_key {blob} NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX store_subject_keys_by_kek ON store_subject_keys (kek_id, subject_id);
        CREATE TABLE store_records (
            subject_id TEXT NOT NULL REFERENCES store_subject_keys (subject_id),
            collection TEXT NOT NULL,
            record_id TEXT NOT NULL,
            version {bigint} NOT NULL,
            public_fields TEXT NOT NULL,
            sealed_fields {blob} NOT NULL,
            row_seal {blob} NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (subject_id, collection, record_id)
        );
        CREATE INDEX store_records_by_collection ON store_records (collection, subject_id, record_id);
        CREATE TABLE store_public_values (
            collection TEXT NOT NULL,
            field TEXT NOT NULL,
            value TEXT NOT NULL,
            subject_id TEXT NOT NULL,
            record_id TEXT NOT NULL,
            PRIMARY KEY (collection, field, value, subject_id, record_id)
        );
        CREATE INDEX store_public_values_by_record ON store_public_values (subject_id, collection, record_id)
        """,
    ),
    (
        # Sealed format 2: a record's sealed fields in one envelope that also binds its public
        # values, instead of one ciphertext per field and a row seal. RegionStore seals the
        # records of format 1 again (checking them as they were) before this step runs.
        _ENVELOPE_STEP,
        "ALTER TABLE store_records DROP COLUMN row_seal",
    ),
]

_SEALED_FORMAT = b"\x02"  # the first byte of ``sealed_fields``: one envelope per record (ADR 0003)
_MAX_INDEXED_VALUE = 512
_KINDS = ("data", "commitment")
_decode_json = msgspec.json.Decoder().decode  # json.loads, faster: every read decodes a record


def envelope_binding(
    region: str,
    subject_id: str,
    collection: str,
    record_id: str,
    version: int,
    updated_at: str,
    public_fields: str,
) -> bytes:
    """Associated data of a record's envelope: every other column of its row.

    ``rempart/record/v2 `` then the four names, each as ``<length>:<name>``
    (length in characters, netstring style), ``<version>:``, the update time as
    ``<length>:<time>``, and the public values' JSON text to the end, all UTF-8:
    an unambiguous encoding whatever the strings hold (the version is an
    integer: the reader checks the types first), cheap enough for every read.
    """
    return (
        f"rempart/record/v2 {len(region)}:{region}{len(subject_id)}:{subject_id}"
        f"{len(collection)}:{collection}{len(record_id)}:{record_id}{version}:"
        f"{len(updated_at)}:{updated_at}{public_fields}"
    ).encode()


def _key_binding(region: str, subject_id: str, kind: str) -> bytes:
    return length_prefixed("rempart/subject-key/v1", region, subject_id, kind)


@dataclass(frozen=True, slots=True)
class SubjectKeyRow:
    """A subject's wrapped keys as stored in the region database."""

    subject_id: str
    data_key: WrappedKey
    commitment_key: WrappedKey
    created_at: str

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Flat and fast to pickle: bulk paths send thousands of these between processes.
        return (
            _key_row,
            (
                self.subject_id,
                self.data_key.key_id,
                self.data_key.sealed,
                self.commitment_key.key_id,
                self.commitment_key.sealed,
                self.created_at,
            ),
        )


def _key_row(subject_id: str, dk_id: str, dk: bytes, ck_id: str, ck: bytes, created_at: str) -> SubjectKeyRow:
    return SubjectKeyRow(subject_id, WrappedKey(dk_id, dk), WrappedKey(ck_id, ck), created_at)


class PreparedKeys:
    """Fresh keys for a subject, wrapped and ready to install; plaintext held only in memory."""

    __slots__ = ("commitment_key", "data_key", "row")

    def __init__(self, row: SubjectKeyRow, data_key: bytes, commitment_key: bytes) -> None:
        self.row = row
        self.data_key = data_key
        self.commitment_key = commitment_key

    def commitment(self) -> str:
        return subject_commitment(self.commitment_key, self.row.subject_id)

    def __repr__(self) -> str:
        return f"PreparedKeys(kek_id={self.row.data_key.key_id!r}, <keys hidden>)"


class _OpenKeys:
    __slots__ = ("cipher", "commitment", "commitment_key", "kek_id")

    def __init__(self, cipher: AeadCipher, commitment_key: bytes, kek_id: str) -> None:
        self.cipher = cipher
        self.commitment_key = commitment_key
        self.kek_id = kek_id
        self.commitment: str | None = None  # computed on first use, with the keys it derives from

    def __repr__(self) -> str:
        return f"_OpenKeys(kek_id={self.kek_id!r}, <keys hidden>)"


@functools.lru_cache(maxsize=64)
def _stamp(when: datetime) -> str:
    """``format_time``, remembered: a bulk batch stamps thousands of rows with the same time."""
    return format_time(when)


_encode_text = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) uses for a str


def _encode_field(value: Any, collection: str, name: str) -> bytes:
    """:func:`encode_value`, with a fast path for the common scalars (the same bytes, byte for byte).

    Anything unusual (containers, floats, huge or non-UTF-8 text, big integers)
    goes through :func:`encode_value`, which also raises its exact errors.
    """
    kind = type(value)
    if kind is str:
        try:
            data: bytes = _encode_text(value).encode("utf-8")
        except UnicodeEncodeError:
            data = b""
        if data and len(data) <= MAX_FIELD_BYTES:
            return data
    elif kind is bool:
        return b"true" if value else b"false"
    elif kind is int and -(2**63) < value < 2**63:
        return str(value).encode()
    elif value is None:
        return b"null"
    return encode_value(value, f"{collection}.{name}")


def _seal_fields(
    cipher: AeadCipher,
    region: str,
    spec: CollectionSpec,
    subject_id: str,
    record_id: str,
    version: int,
    updated_at: str,
    fields: Mapping[str, Any],
) -> tuple[str, bytes, list[tuple[str, str]]]:
    """Seal one record's values: (public JSON, sealed fields envelope, public-value index)."""
    if not isinstance(fields, Mapping):
        raise InvalidInput(f"fields of a {spec.name} record must be an object, got {type(fields).__name__}")
    public: dict[str, Any] = {}
    sealed: list[bytes] = []  # '"name":value', in name order
    index: list[tuple[str, str]] = []
    total = 0
    for name in sorted(fields):
        if not isinstance(name, str):
            raise InvalidInput(f"field names of a {spec.name} record must be strings")
        field = spec.field(name)
        value = fields[name]
        encoded = _encode_field(value, spec.name, name)
        total += len(encoded)
        if field.category is Category.PUBLIC:
            public[name] = value
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, list | dict):
                    continue
                text = encode_value(item, f"{spec.name}.{name}").decode()
                if len(text) <= _MAX_INDEXED_VALUE:
                    index.append((name, text))
        else:
            sealed.append(_encode_text(name).encode("utf-8") + b":" + encoded)
    if total > MAX_RECORD_BYTES:
        raise InvalidInput(f"a record holds at most {MAX_RECORD_BYTES} bytes of values, this one {total}")
    public_text = (
        json.dumps(public, sort_keys=True, separators=(",", ":"), ensure_ascii=False) if public else "{}"
    )
    binding = envelope_binding(region, subject_id, spec.name, record_id, version, updated_at, public_text)
    envelope = _envelope(cipher, binding, sealed)
    return public_text, envelope, sorted(set(index))


def _envelope(cipher: AeadCipher, binding: bytes, sealed: list[bytes]) -> bytes:
    """The ``sealed_fields`` value: the sealed fields (``"name":value``, in name order) in one envelope."""
    plaintext = b"{" + b",".join(sealed) + b"}"  # their canonical JSON object
    return _SEALED_FORMAT + cipher.encrypt(plaintext, binding)


def _stored_bytes(value: object) -> bytes:
    """A BLOB column's value as bytes; anything else a database edit left there reads as empty (malformed)."""
    return bytes(value) if isinstance(value, bytes | bytearray | memoryview) else b""


def _integrity_failure(region: str, collection: str, record_id: str, what: str) -> VerificationFailed:
    return VerificationFailed(
        f"integrity check failed for {region}/{collection}/{record_id}: {what}",
        region=region,
        collection=collection,
        record_id=record_id,
    )


def _open_fields(
    cipher: AeadCipher, region: str, row: Sequence[Any], wanted: Collection[str] | None
) -> Record:
    """Open a stored row's envelope (checking it and the public values) and return its fields."""
    subject_id, collection, record_id, version, public_text, sealed, updated_at = row
    if type(sealed) is not bytes:
        sealed = _stored_bytes(sealed)
    if type(version) is not int:
        # The one column whose type the binding relies on (it has no length prefix); a
        # string column of another type spells differently there and fails the check.
        raise _integrity_failure(
            region, collection, record_id, "its version is not an integer (altered in the database)"
        )
    if sealed[:1] != _SEALED_FORMAT:
        raise _integrity_failure(
            region,
            collection,
            record_id,
            f"its sealed fields are malformed (format byte {sealed[:1].hex() or 'missing'}, expected 02)",
        )
    try:
        plaintext = cipher.decrypt(
            sealed,
            envelope_binding(region, subject_id, collection, record_id, version, updated_at, public_text),
            start=1,
        )
    except VerificationFailed:
        raise _integrity_failure(
            region,
            collection,
            record_id,
            "its sealed fields, public fields, version or update time were altered in the database, or "
            "copied from another row, subject or region",
        ) from None
    fields: dict[str, Any] = (
        _decode_json(plaintext)
        if public_text == "{}"
        else {**_decode_json(public_text), **_decode_json(plaintext)}
    )
    if wanted is not None:
        fields = {k: v for k, v in fields.items() if k in wanted}
    return Record(subject_id, collection, record_id, version, fields, updated_at)


def _check_public_match(region: str, record: Record, filters: Mapping[str, bytes]) -> None:
    """A record a public-value filter selected must hold those values (checked against its envelope)."""
    for name, wanted in filters.items():
        value = record.fields.get(name)
        items = value if isinstance(value, list) else [value]
        if name not in record.fields or all(encode_value(item, name) != wanted for item in items):
            raise _integrity_failure(
                region,
                record.collection,
                record.record_id,
                f"the public-value index says {name} matches, but the record's {name} does not "
                "(the index was altered in the database)",
            )


def _only(record: Record, wanted: Collection[str]) -> Record:
    return msgspec.structs.replace(record, fields={k: v for k, v in record.fields.items() if k in wanted})


def prepare_subject_keys(
    custody: KeyCustody,
    ring: str,
    region: str,
    subject_id: str,
    created_at: datetime,
    *,
    commitment_key: bytes | None = None,
) -> PreparedKeys:
    """Fresh subject keys wrapped by ``ring`` for ``region``: what :meth:`RegionStore.prepare_keys` does.

    A function of its own so that a migration's worker processes, which hold
    their own handle on the custodian's keyring, prepare keys exactly as the store does.
    """
    check_id(subject_id, "subject id")
    data_key = new_key()
    ck = commitment_key if commitment_key is not None else os.urandom(KEY_SIZE)
    wrapped_dk = custody.wrap(ring, data_key, _key_binding(region, subject_id, "data"))
    wrapped_ck = custody.wrap(ring, ck, _key_binding(region, subject_id, "commitment"))
    if wrapped_dk.key_id != wrapped_ck.key_id:  # a rotation between the two calls
        wrapped_ck = custody.wrap(ring, ck, _key_binding(region, subject_id, "commitment"))
        wrapped_dk = custody.wrap(ring, data_key, _key_binding(region, subject_id, "data"))
    row = SubjectKeyRow(subject_id, wrapped_dk, wrapped_ck, _stamp(created_at))
    return PreparedKeys(row, data_key, ck)


def open_subject_keys(
    custody: KeyCustody, ring: str, region: str, row: SubjectKeyRow
) -> tuple[AeadCipher, bytes]:
    """Unwrap a subject's stored keys: its data-key cipher and its commitment key."""
    dk = custody.unwrap(ring, row.data_key, _key_binding(region, row.subject_id, "data"))
    ck = custody.unwrap(ring, row.commitment_key, _key_binding(region, row.subject_id, "commitment"))
    return AeadCipher(dk), ck


@dataclass(frozen=True, slots=True)
class SealedRecord:
    """A record as stored: public values in clear, the others in one envelope, the public index.

    Made by :func:`seal_record` (the store's own sealing) and written in bulk by
    :meth:`RegionStore.put_many`; read back raw by :meth:`RegionStore.sealed_records`.
    """

    subject_id: str
    collection: str
    record_id: str
    version: int
    public_fields: str
    sealed_fields: bytes
    updated_at: str
    index: tuple[tuple[str, str], ...] = ()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Flat and fast to pickle: a migration's workers send thousands of these per batch.
        return (SealedRecord, (*self.row(), self.index))

    def row(self) -> tuple[str, str, str, int, str, bytes, str]:
        """The ``store_records`` row, column by column."""
        return (
            self.subject_id,
            self.collection,
            self.record_id,
            self.version,
            self.public_fields,
            self.sealed_fields,
            self.updated_at,
        )


def seal_record(
    cipher: AeadCipher,
    *,
    region: str,
    spec: CollectionSpec,
    subject_id: str,
    record_id: str,
    fields: Mapping[str, Any],
    updated_at: datetime,
    version: int = 1,
) -> SealedRecord:
    """Seal a record for ``region`` under a subject's data key, exactly as :meth:`RegionStore.put` does.

    Ids and values are checked (InvalidInput names what is wrong); the result
    opens with the store's ordinary read path.
    """
    check_id(subject_id, "subject id")
    check_id(record_id, "record id")
    stamp = _stamp(updated_at)
    public_text, sealed, index = _seal_fields(
        cipher, region, spec, subject_id, record_id, version, stamp, fields
    )
    return SealedRecord(
        subject_id,
        spec.name,
        record_id,
        version,
        public_text,
        sealed,
        stamp,
        tuple(index),
    )


def open_record(
    cipher: AeadCipher, region: str, sealed: SealedRecord, *, fields: Collection[str] | None = None
) -> Record:
    """Check and open a stored record with its subject's data-key cipher (VerificationFailed if altered)."""
    return _open_fields(cipher, region, sealed.row(), None if fields is None else frozenset(fields))


_RECORD_COLUMNS = "subject_id, collection, record_id, version, public_fields, sealed_fields, updated_at"
_SELECT_RECORD = (
    f"SELECT {_RECORD_COLUMNS} FROM store_records WHERE subject_id = ? AND collection = ? AND record_id = ?"
)


class RegionStore:
    """The encrypted records and wrapped keys of one region, in one :class:`~rempart.db.Database`.

    Not the door to use from outside the store: :class:`~rempart.store.service.RecordService`
    routes each subject to its home region and records what must be recorded.
    This class still refuses to write for a subject whose keys it does not hold,
    so no path can put a subject's sealed fields in another region's database.
    """

    def __init__(
        self,
        *,
        region: str,
        database: Database,
        catalog: Catalog,
        custody: KeyCustody,
        ring: str,
        cache_size: int = 10_000,
    ) -> None:
        if cache_size < 1:
            raise InvalidInput("cache_size must be at least 1")
        self.region = region
        self.db = database
        self.catalog = catalog
        self.custody = custody
        self.ring = ring
        self._cache: OrderedDict[str, _OpenKeys] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        database.migrate(SCHEMA[:1])
        self._stamp(database)
        self._reseal_format_1(_RESEAL_PAGE)
        database.migrate(SCHEMA)

    def _reseal_format_1(self, page: int) -> int:
        """Seal records written before ``store-region-0002`` again, in one envelope each; how many.

        Two passes over the records still in format 1. The first opens each
        with every check its format had (row seal, each field) and writes
        nothing: one that fails raises VerificationFailed, and the database is
        left exactly as the previous release wrote it. The second seals each
        again, a page per transaction (after a crash, records already done,
        format byte 02, are passed over), keeping its public values, its split
        between public and sealed fields and its index as they are. Records
        whose subject's keys no longer unwrap (shredded by an erasure that did
        not finish, or altered) are left as they are: they could not be read
        before either, and finishing the erasure removes them.
        """
        steps = {row[0] for row in self.db.query_all("SELECT step FROM schema_steps")}
        if _ENVELOPE_STEP in steps:
            return 0
        ciphers: dict[str, AeadCipher | None] = {}
        self._format_1_pages(page, ciphers, write=False)
        return self._format_1_pages(page, ciphers, write=True)

    def _format_1_pages(self, page: int, ciphers: dict[str, AeadCipher | None], *, write: bool) -> int:
        done, after = 0, ("", "", "")
        while True:
            rows = self.db.query_all(
                "SELECT subject_id, collection, record_id, version, public_fields, sealed_fields, row_seal, "
                "updated_at FROM store_records WHERE (subject_id, collection, record_id) > (?, ?, ?) "
                "ORDER BY subject_id, collection, record_id LIMIT ?",
                (*after, page),
            )
            if not rows:
                return done
            after = (rows[-1][0], rows[-1][1], rows[-1][2])
            old = [r for r in rows if _stored_bytes(r[5])[:1] == bytes([FORMAT_1])]
            wanted = {r[0] for r in old} - set(ciphers)
            for subject_id, key_row in self.key_rows(wanted).items():
                try:
                    ciphers[subject_id] = open_subject_keys(self.custody, self.ring, self.region, key_row)[0]
                except VerificationFailed:
                    ciphers[subject_id] = None
            updates = []
            for subject_id, collection, record_id, version, public_text, blob, seal, updated_at in old:
                cipher = ciphers.get(subject_id)
                if cipher is None:
                    continue
                sealed = open_format_1(
                    cipher, self.region, (subject_id, collection, record_id, version, public_text, blob, seal)
                )
                if write:
                    parts = [
                        _encode_text(name).encode("utf-8") + b":" + value for name, value in sorted(sealed)
                    ]
                    binding = envelope_binding(
                        self.region, subject_id, collection, record_id, version, updated_at, public_text
                    )
                    envelope = _envelope(cipher, binding, parts)
                    updates.append((envelope, b"", subject_id, collection, record_id))
            if updates:
                with self.db.transaction() as tx:
                    tx.executemany(
                        "UPDATE store_records SET sealed_fields = ?, row_seal = ? "
                        "WHERE subject_id = ? AND collection = ? AND record_id = ?",
                        updates,
                    )
                done += len(updates)

    def _stamp(self, database: Database) -> None:
        with database.transaction() as tx:
            row = tx.execute("SELECT name FROM store_region").fetchone()
            if row is None:
                tx.execute(
                    "INSERT INTO store_region (name, stamped_at) VALUES (?, CURRENT_TIMESTAMP)",
                    (self.region,),
                )
            elif row[0] != self.region:
                raise ConfigurationError(
                    f"regions.{self.region}.store: this database belongs to region {row[0]!r}, "
                    f"not {self.region!r}; each region needs its own database",
                    path=f"regions.{self.region}.store",
                )

    def __repr__(self) -> str:
        return f"RegionStore(region={self.region!r}, {self.db.dialect})"

    # -- keys ---------------------------------------------------------------

    def prepare_keys(
        self, subject_id: str, created_at: datetime, *, commitment_key: bytes | None = None
    ) -> PreparedKeys:
        """Generate a data key (and a commitment key unless one is carried over) and wrap them here."""
        return prepare_subject_keys(
            self.custody, self.ring, self.region, subject_id, created_at, commitment_key=commitment_key
        )

    def install_keys(self, prepared: PreparedKeys) -> None:
        """Store a subject's wrapped keys; Conflict if this region already holds keys for it."""
        with self.db.transaction() as tx:
            self._insert_keys(tx, prepared.row)

    def _insert_keys(self, tx: Transaction, row: SubjectKeyRow) -> None:
        if row.data_key.key_id != row.commitment_key.key_id:
            raise InvalidInput("a subject's two keys must be wrapped under the same KEK version")
        cur = tx.execute(
            "INSERT INTO store_subject_keys (subject_id, kek_id, wrapped_data_key, wrapped_commitment_key, "
            "created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (subject_id) DO NOTHING",
            (
                row.subject_id,
                row.data_key.key_id,
                row.data_key.sealed,
                row.commitment_key.sealed,
                row.created_at,
            ),
        )
        if cur.rowcount != 1:
            raise Conflict(f"region {self.region!r} already holds keys for this subject")

    def key_row(self, subject_id: str) -> SubjectKeyRow | None:
        row = self.db.query_one(
            "SELECT kek_id, wrapped_data_key, wrapped_commitment_key, created_at "
            "FROM store_subject_keys WHERE subject_id = ?",
            (subject_id,),
        )
        if row is None:
            return None
        kek_id, dk, ck, created_at = row
        return SubjectKeyRow(
            subject_id, WrappedKey(kek_id, bytes(dk)), WrappedKey(kek_id, bytes(ck)), created_at
        )

    def holds(self, subject_id: str) -> bool:
        """Whether this region's database holds keys for the subject (is its home, as far as it knows)."""
        return self.key_row(subject_id) is not None

    def _open(self, subject_id: str) -> _OpenKeys:
        # A hit needs no lock: get and move_to_end are each atomic, and a key evicted
        # between the two is simply not moved.
        keys = self._cache.get(subject_id)
        if keys is not None:
            with contextlib.suppress(KeyError):
                self._cache.move_to_end(subject_id)
            return keys
        row = self.key_row(subject_id)
        if row is None:
            raise NotFound(
                f"region {self.region!r} holds no keys for this subject (not homed here, or erased)",
                region=self.region,
            )
        cipher, ck = open_subject_keys(self.custody, self.ring, self.region, row)
        keys = _OpenKeys(cipher, ck, row.data_key.key_id)
        with self._cache_lock:
            self._cache[subject_id] = keys
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return keys

    def evict(self, subject_id: str | None = None) -> None:
        """Forget unwrapped keys: one subject's, or (None) every subject's."""
        with self._cache_lock:
            if subject_id is None:
                self._cache.clear()
            else:
                self._cache.pop(subject_id, None)

    def commitment_key(self, subject_id: str) -> bytes:
        return self._open(subject_id).commitment_key

    def commitment(self, subject_id: str) -> str:
        """The subject's commitment for log entries (HMAC under its commitment key)."""
        keys = self._open(subject_id)
        if keys.commitment is None:
            keys.commitment = subject_commitment(keys.commitment_key, subject_id)
        return keys.commitment

    def rewrap(self, *, batch: int = 500) -> int:
        """Rewrap every subject key not under the ring's current KEK; returns how many subjects.

        Record ciphertext is not touched (the data keys do not change). Safe to
        run again after a crash: each subject is rewrapped by one conditional
        update, and keys under an older KEK still open until they are rewrapped.
        """
        current = self.custody.current_key_id(self.ring)
        done = 0
        while True:
            rows = self.db.query_all(
                "SELECT subject_id, kek_id, wrapped_data_key, wrapped_commitment_key FROM store_subject_keys "
                "WHERE kek_id <> ? ORDER BY subject_id LIMIT ?",
                (current, batch),
            )
            if not rows:
                return done
            updates = []
            for subject_id, kek_id, dk, ck in rows:
                old_dk, old_ck = WrappedKey(kek_id, bytes(dk)), WrappedKey(kek_id, bytes(ck))
                new = []
                for kind, old in (("data", old_dk), ("commitment", old_ck)):
                    binding = _key_binding(self.region, subject_id, kind)
                    new.append(
                        self.custody.wrap(self.ring, self.custody.unwrap(self.ring, old, binding), binding)
                    )
                if new[0].key_id != new[1].key_id:
                    raise Conflict("the current KEK changed during a rewrap; run it again")
                updates.append(
                    (new[0].key_id, new[0].sealed, new[1].sealed, subject_id, kek_id, old_dk.sealed)
                )
            with self.db.transaction() as tx:
                for params in updates:
                    # Conditional: a subject erased or rewrapped meanwhile is left alone.
                    cur = tx.execute(
                        "UPDATE store_subject_keys SET kek_id = ?, wrapped_data_key = ?, "
                        "wrapped_commitment_key = ? "
                        "WHERE subject_id = ? AND kek_id = ? AND wrapped_data_key = ?",
                        params,
                    )
                    done += cur.rowcount
            self.evict()
            if len(rows) < batch:
                return done

    def count_wrapped_under(self, key_id: str) -> int:
        row = self.db.query_one("SELECT COUNT(*) FROM store_subject_keys WHERE kek_id = ?", (key_id,))
        return int(row[0]) if row else 0

    def subjects(self, *, after: str = "", limit: int = 1000) -> list[str]:
        """Subject ids whose keys this region holds, in order, for reconciliation sweeps."""
        rows = self.db.query_all(
            "SELECT subject_id FROM store_subject_keys WHERE subject_id > ? ORDER BY subject_id LIMIT ?",
            (after, limit),
        )
        return [r[0] for r in rows]

    # -- bulk paths (migration) --------------------------------------------

    def key_rows(self, subject_ids: Collection[str]) -> dict[str, SubjectKeyRow]:
        """The stored key rows of those subjects this region holds keys for, in one query per 500 ids."""
        out: dict[str, SubjectKeyRow] = {}
        for ids in chunks(subject_ids):
            clause, params = in_clause(self.db.dialect, "subject_id", ids)
            for subject_id, kek_id, dk, ck, created_at in self.db.query_all(
                "SELECT subject_id, kek_id, wrapped_data_key, wrapped_commitment_key, created_at "
                f"FROM store_subject_keys WHERE {clause}",
                params,
            ):
                out[subject_id] = SubjectKeyRow(
                    subject_id, WrappedKey(kek_id, bytes(dk)), WrappedKey(kek_id, bytes(ck)), created_at
                )
        return out

    def sealed_records(self, subject_ids: Collection[str]) -> list[SealedRecord]:
        """Every stored record of those subjects, still sealed, ordered by subject, collection, record.

        For checks that open records elsewhere (a migration's verifier in worker
        processes, with :func:`open_record`); the public-value index is not read.
        """
        out: list[SealedRecord] = []
        for ids in chunks(subject_ids):
            clause, params = in_clause(self.db.dialect, "subject_id", ids)
            rows = self.db.query_all(f"SELECT {_RECORD_COLUMNS} FROM store_records WHERE {clause}", params)
            out += [SealedRecord(s, c, r, v, p, _stored_bytes(b), u) for s, c, r, v, p, b, u in rows]
        out.sort(key=lambda rec: (rec.subject_id, rec.collection, rec.record_id))
        return out

    def record_keys(self, subject_ids: Collection[str]) -> set[tuple[str, str, str]]:
        """(subject, collection, record id) of every stored record of those subjects."""
        out: set[tuple[str, str, str]] = set()
        for ids in chunks(subject_ids):
            clause, params = in_clause(self.db.dialect, "subject_id", ids)
            out.update(
                (s, c, r)
                for s, c, r in self.db.query_all(
                    f"SELECT subject_id, collection, record_id FROM store_records WHERE {clause}", params
                )
            )
        return out

    def put_many(
        self,
        keys: Sequence[SubjectKeyRow],
        records: Sequence[SealedRecord],
        *,
        within: Callable[[Transaction], None] | None = None,
    ) -> None:
        """Install subjects' wrapped keys and insert sealed records, all in one transaction.

        The bulk path of a migration: records must be new (an existing key, or a
        record that already exists, raises Conflict and nothing is written), and
        each record's subject must have its keys here, in this call or before
        (the foreign key refuses the rest). ``within(tx)`` runs last inside the
        same transaction: a migration writes its progress marker there, so rows
        and marker commit together or not at all.
        """
        for row in keys:
            if row.data_key.key_id != row.commitment_key.key_id:
                raise InvalidInput("a subject's two keys must be wrapped under the same KEK version")
        with self.db.transaction() as tx:
            inserted = insert_rows(
                tx,
                self.db.dialect,
                "store_subject_keys",
                [
                    ("subject_id", "text"),
                    ("kek_id", "text"),
                    ("wrapped_data_key", "bytea"),
                    ("wrapped_commitment_key", "bytea"),
                    ("created_at", "text"),
                ],
                [
                    (
                        r.subject_id,
                        r.data_key.key_id,
                        r.data_key.sealed,
                        r.commitment_key.sealed,
                        r.created_at,
                    )
                    for r in keys
                ],
                on_conflict="ON CONFLICT (subject_id) DO NOTHING",
            )
            if inserted != len(keys):
                raise Conflict(f"region {self.region!r} already holds keys for some of these subjects")
            insert_rows(
                tx,
                self.db.dialect,
                "store_records",
                [
                    ("subject_id", "text"),
                    ("collection", "text"),
                    ("record_id", "text"),
                    ("version", "bigint"),
                    ("public_fields", "text"),
                    ("sealed_fields", "bytea"),
                    ("updated_at", "text"),
                ],
                [rec.row() for rec in records],
            )
            insert_rows(
                tx,
                self.db.dialect,
                "store_public_values",
                [
                    ("collection", "text"),
                    ("field", "text"),
                    ("value", "text"),
                    ("subject_id", "text"),
                    ("record_id", "text"),
                ],
                [
                    (rec.collection, n, t, rec.subject_id, rec.record_id)
                    for rec in records
                    for n, t in rec.index
                ],
            )
            if within is not None:
                within(tx)

    # -- writing ------------------------------------------------------------

    def _seal(
        self,
        keys: _OpenKeys,
        spec: CollectionSpec,
        subject_id: str,
        record_id: str,
        version: int,
        updated_at: str,
        fields: Mapping[str, Any],
    ) -> tuple[str, bytes, list[tuple[str, str]]]:
        return _seal_fields(
            keys.cipher, self.region, spec, subject_id, record_id, version, updated_at, fields
        )

    def _keys_for_write(self, subject_id: str) -> _OpenKeys:
        try:
            return self._open(subject_id)
        except NotFound:
            raise ResidencyViolation(
                f"region {self.region!r} is not this subject's home: its store holds no keys "
                "for the subject, "
                "so it will not store the subject's fields",
                region=self.region,
            ) from None

    def put(
        self,
        subject_id: str,
        collection: str,
        record_id: str,
        fields: Mapping[str, Any],
        *,
        expected_version: int | None,
        now: datetime,
    ) -> Record:
        """Create (``expected_version=None``) or replace (the version it replaces) one record."""
        check_id(subject_id, "subject id")
        check_id(record_id, "record id")
        spec = self.catalog.collection(collection)
        if expected_version is not None and (
            not isinstance(expected_version, int)
            or isinstance(expected_version, bool)
            or expected_version < 1
        ):
            raise InvalidInput(
                f"expected_version must be a positive integer or None, got {expected_version!r}"
            )
        keys = self._keys_for_write(subject_id)
        version = 1 if expected_version is None else expected_version + 1
        updated_at = format_time(now)
        public_text, sealed, index = self._seal(
            keys, spec, subject_id, record_id, version, updated_at, fields
        )
        pk = (subject_id, collection, record_id)
        with self.db.transaction() as tx:
            if expected_version is None:
                cur = tx.execute(
                    f"INSERT INTO store_records ({_RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (subject_id, collection, record_id) DO NOTHING",
                    (*pk, version, public_text, sealed, updated_at),
                )
                if cur.rowcount != 1:
                    raise Conflict(
                        f"{collection} record {record_id!r} already exists; pass the version you replace",
                        current_version=self._version(tx, pk),
                    )
            else:
                cur = tx.execute(
                    "UPDATE store_records SET version = ?, public_fields = ?, sealed_fields = ?, "
                    "updated_at = ? "
                    "WHERE subject_id = ? AND collection = ? AND record_id = ? AND version = ?",
                    (version, public_text, sealed, updated_at, *pk, expected_version),
                )
                if cur.rowcount != 1:
                    current = self._version(tx, pk)
                    if current is None:
                        raise NotFound(f"{collection} record {record_id!r} does not exist")
                    raise Conflict(
                        f"{collection} record {record_id!r} is at version {current}, not {expected_version}: "
                        "someone else changed it; read it again",
                        current_version=current,
                    )
                tx.execute(
                    "DELETE FROM store_public_values "
                    "WHERE subject_id = ? AND collection = ? AND record_id = ?",
                    (subject_id, collection, record_id),
                )
            if index:
                tx.executemany(
                    "INSERT INTO store_public_values (collection, field, value, subject_id, record_id) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(collection, name, text, subject_id, record_id) for name, text in index],
                )
        return Record(subject_id, collection, record_id, version, dict(fields), updated_at)

    @staticmethod
    def _version(tx: Transaction, pk: tuple[str, str, str]) -> int | None:
        row = tx.execute(
            "SELECT version FROM store_records WHERE subject_id = ? AND collection = ? AND record_id = ?", pk
        ).fetchone()
        return None if row is None else int(row[0])

    def delete(self, subject_id: str, collection: str, record_id: str, *, expected_version: int) -> None:
        """Delete one record at the version the caller last read; Conflict if it changed."""
        self.catalog.collection(collection)
        pk = (subject_id, collection, record_id)
        with self.db.transaction() as tx:
            cur = tx.execute(
                "DELETE FROM store_records "
                "WHERE subject_id = ? AND collection = ? AND record_id = ? AND version = ?",
                (*pk, expected_version),
            )
            if cur.rowcount != 1:
                current = self._version(tx, pk)
                if current is None:
                    raise NotFound(f"{collection} record {record_id!r} does not exist")
                raise Conflict(
                    f"{collection} record {record_id!r} is at version {current}, not {expected_version}",
                    current_version=current,
                )
            tx.execute(
                "DELETE FROM store_public_values WHERE subject_id = ? AND collection = ? AND record_id = ?",
                pk,
            )

    # -- reading ------------------------------------------------------------

    def _open_row(self, row: Sequence[Any], wanted: Collection[str] | None) -> Record:
        return _open_fields(self._open(row[0]).cipher, self.region, row, wanted)

    def _check_wanted(self, collection: str, fields: Collection[str] | None) -> frozenset[str] | None:
        spec = self.catalog.collection(collection)
        if fields is None:
            return None
        if isinstance(fields, str):
            raise InvalidInput("fields must be a list of field names, not one string")
        for name in fields:
            spec.field(name)
        return frozenset(fields)

    def get(
        self, subject_id: str, collection: str, record_id: str, *, fields: Collection[str] | None = None
    ) -> Record:
        """One record, decrypted (only ``fields`` if given); NotFound if absent."""
        wanted = self._check_wanted(collection, fields)
        rows = self.db.query_all(_SELECT_RECORD, (subject_id, collection, record_id))
        if not rows:
            raise NotFound(f"{collection} record {record_id!r} does not exist", collection=collection)
        return _open_fields(self._open(subject_id).cipher, self.region, rows[0], wanted)

    def list_records(
        self,
        subject_id: str,
        *,
        collection: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        fields: Collection[str] | None = None,
    ) -> Page[Record]:
        """A subject's records (of one collection, or all), ordered by collection then record id."""
        check_limit(limit)
        if fields is not None and collection is None:
            raise InvalidInput("choosing fields needs a collection")
        wanted = self._check_wanted(collection, fields) if collection is not None else None
        after_c, after_r = decode_cursor(cursor, 2) if cursor is not None else ("", "")
        if collection is not None:
            if cursor is not None and after_c != collection:
                raise InvalidInput("cursor is not one this store issued")
            rows = self.db.query_all(
                f"SELECT {_RECORD_COLUMNS} FROM store_records WHERE subject_id = ? AND collection = ? "
                "AND record_id > ? ORDER BY record_id LIMIT ?",
                (subject_id, collection, after_r, limit + 1),
            )
        else:
            rows = self.db.query_all(
                f"SELECT {_RECORD_COLUMNS} FROM store_records WHERE subject_id = ? "
                "AND (collection > ? OR (collection = ? AND record_id > ?)) "
                "ORDER BY collection, record_id LIMIT ?",
                (subject_id, after_c, after_c, after_r, limit + 1),
            )
        items = [self._open_row(r, wanted) for r in rows[:limit]]
        more = len(rows) > limit
        next_cursor = encode_cursor(items[-1].collection, items[-1].record_id) if more else None
        return Page(items, next_cursor)

    def query(
        self,
        collection: str,
        *,
        where: Mapping[str, Any] | None = None,
        limit: int = 100,
        cursor: str | None = None,
        fields: Collection[str] | None = None,
        subject_ids: Collection[str] | None = None,
    ) -> Page[Record]:
        """Records of a collection in this region whose public fields equal ``where`` (all must match).

        A filter on a list-valued public field matches records whose list holds
        the value. Only public fields can be filtered: the others are sealed.
        """
        check_limit(limit)
        spec = self.catalog.collection(collection)
        wanted = self._check_wanted(collection, fields)
        clauses = ["r.collection = ?"]
        params: list[Any] = [collection]
        for name, value in sorted((where or {}).items()):
            field = spec.field(name)
            if field.category is not Category.PUBLIC:
                raise InvalidInput(
                    f"{collection}.{name} is {field.category}: only public fields can be filtered on",
                    field=name,
                )
            if isinstance(value, list | dict):
                raise InvalidInput(f"{collection}.{name}: filter on a single value, not a list or object")
            clauses.append(
                "EXISTS (SELECT 1 FROM store_public_values v WHERE v.collection = r.collection AND "
                "v.subject_id = r.subject_id AND v.record_id = r.record_id AND v.field = ? AND v.value = ?)"
            )
            params += [name, encode_value(value, f"{collection}.{name}").decode()]
        if subject_ids is not None:
            ids = sorted(set(subject_ids))
            if not ids:
                return Page([], None)
            clauses.append(f"r.subject_id IN ({', '.join('?' for _ in ids)})")
            params += ids
        if cursor is not None:
            after_s, after_r = decode_cursor(cursor, 2)
            clauses.append("(r.subject_id > ? OR (r.subject_id = ? AND r.record_id > ?))")
            params += [after_s, after_s, after_r]
        cols = ", ".join(f"r.{c.strip()}" for c in _RECORD_COLUMNS.split(","))
        rows = self.db.query_all(
            f"SELECT {cols} FROM store_records r WHERE {' AND '.join(clauses)} "
            "ORDER BY r.subject_id, r.record_id LIMIT ?",
            (*params, limit + 1),
        )
        items = [self._open_row(r, None) for r in rows[:limit]]
        # The index is not sealed: a row planted in it must not pass a record off as a match.
        filters = {name: encode_value(value, name) for name, value in (where or {}).items()}
        for item in items:
            _check_public_match(self.region, item, filters)
        if wanted is not None:
            items = [_only(item, wanted) for item in items]
        more = len(rows) > limit
        next_cursor = encode_cursor(items[-1].subject_id, items[-1].record_id) if more else None
        return Page(items, next_cursor)

    def census(self, subject_id: str) -> dict[str, int]:
        """How many records the subject has here, per collection (for receipts)."""
        rows = self.db.query_all(
            "SELECT collection, COUNT(*) FROM store_records WHERE subject_id = ? GROUP BY collection",
            (subject_id,),
        )
        return {c: int(n) for c, n in rows}

    def versions(self, subject_id: str) -> dict[tuple[str, str], int]:
        rows = self.db.query_all(
            "SELECT collection, record_id, version FROM store_records WHERE subject_id = ?", (subject_id,)
        )
        return {(c, r): int(v) for c, r, v in rows}

    def export_subject(self, subject_id: str) -> list[Record]:
        """Every record of the subject, decrypted (for relocation)."""
        rows = self.db.query_all(
            f"SELECT {_RECORD_COLUMNS} FROM store_records "
            "WHERE subject_id = ? ORDER BY collection, record_id",
            (subject_id,),
        )
        return [self._open_row(r, None) for r in rows]

    def import_subject(self, prepared: PreparedKeys, records: Sequence[Record]) -> None:
        """Install a relocated subject's keys and records in one transaction, sealed for this region."""
        keys = _OpenKeys(AeadCipher(prepared.data_key), prepared.commitment_key, prepared.row.data_key.key_id)
        subject_id = prepared.row.subject_id
        rows = []
        index_rows = []
        for rec in records:
            if rec.subject_id != subject_id:
                raise InvalidInput("every imported record must belong to the imported subject")
            spec = self.catalog.collection(rec.collection)
            public_text, sealed, index = self._seal(
                keys, spec, subject_id, rec.record_id, rec.version, rec.updated_at, rec.fields
            )
            rows.append(
                (
                    subject_id,
                    rec.collection,
                    rec.record_id,
                    rec.version,
                    public_text,
                    sealed,
                    rec.updated_at,
                )
            )
            index_rows += [(rec.collection, n, t, subject_id, rec.record_id) for n, t in index]
        with self.db.transaction() as tx:
            self._insert_keys(tx, prepared.row)
            if rows:
                tx.executemany(
                    f"INSERT INTO store_records ({_RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", rows
                )
            if index_rows:
                tx.executemany(
                    "INSERT INTO store_public_values (collection, field, value, subject_id, record_id) "
                    "VALUES (?, ?, ?, ?, ?)",
                    index_rows,
                )

    def purge_subject(self, subject_id: str) -> int:
        """Delete a subject's records and wrapped keys in one transaction; returns the records deleted."""
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM store_public_values WHERE subject_id = ?", (subject_id,))
            count = tx.execute("DELETE FROM store_records WHERE subject_id = ?", (subject_id,)).rowcount
            tx.execute("DELETE FROM store_subject_keys WHERE subject_id = ?", (subject_id,))
        self.evict(subject_id)
        return int(count)
