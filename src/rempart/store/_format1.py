"""Sealed format 1, read-only: what region databases held before schema step ``store-region-0002``.

Format 1 sealed each protected or excepted field on its own (AES-256-GCM, the
associated data naming the row and the field) and added a *row seal* (AES-GCM
over an empty text) binding the public values and the set of sealed names.
:meth:`RegionStore.__init__ <rempart.store.region.RegionStore>` opens such rows
once, with every check they had, and seals them again in format 2 (ADR 0003)
before the step drops the ``row_seal`` column. Nothing else reads this format.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from rempart.crypto import AeadCipher
from rempart.errors import VerificationFailed
from rempart.store.records import length_prefixed

__all__ = ["FORMAT_1", "open_format_1"]

FORMAT_1 = 1
"""The first byte of a format-1 ``sealed_fields`` value."""


def _row_binding(region: str, subject_id: str, collection: str, record_id: str, version: int) -> bytes:
    return length_prefixed("rempart/record/v1", region, subject_id, collection, record_id) + struct.pack(
        ">Q", version
    )


def _decode_sealed(data: bytes) -> list[tuple[str, bytes]]:
    """``0x01`` then (u8 name length, name, u32 length, sealed bytes)*; malformed fails the check."""
    if not data or data[0] != FORMAT_1:
        raise VerificationFailed("integrity check failed: the sealed fields of a record are malformed")
    fields: list[tuple[str, bytes]] = []
    pos, end = 1, len(data)
    try:
        while pos < end:
            n = data[pos]
            name = data[pos + 1 : pos + 1 + n].decode()
            pos += 1 + n
            (size,) = struct.unpack_from(">I", data, pos)
            pos += 4
            if pos + size > end:
                raise ValueError
            fields.append((name, bytes(data[pos : pos + size])))
            pos += size
    except (IndexError, ValueError, struct.error, UnicodeDecodeError):
        raise VerificationFailed(
            "integrity check failed: the sealed fields of a record are malformed"
        ) from None
    return fields


def open_format_1(cipher: AeadCipher, region: str, row: Sequence[Any]) -> list[tuple[str, bytes]]:
    """The sealed fields of a format-1 row ``(subject, collection, record, version, public, sealed, seal)``.

    Each as ``(name, canonical JSON of its value)``. The row seal and each
    field's ciphertext are checked as format 1 checked them; any failure raises
    VerificationFailed naming the record.
    """
    subject_id, collection, record_id, version, public_text, sealed_blob, seal = row
    where = f"{region}/{collection}/{record_id}"
    details = {"region": region, "collection": collection, "record_id": record_id}
    if type(version) is not int or type(public_text) is not str or type(seal) is not bytes:
        raise VerificationFailed(
            f"integrity check failed for {where}: a column has the wrong type", **details
        )
    binding = _row_binding(region, subject_id, collection, record_id, version)
    try:
        sealed = _decode_sealed(bytes(sealed_blob))
    except VerificationFailed:
        raise VerificationFailed(
            f"integrity check failed for {where}: its sealed fields are malformed", **details
        ) from None
    names = ",".join(n for n, _ in sealed)
    try:
        cipher.decrypt(seal, binding + b"\x02" + length_prefixed(public_text, names))
    except VerificationFailed:
        raise VerificationFailed(
            f"integrity check failed for {where}: the row seal does not match its public fields or its "
            "set of sealed fields (altered in the database, or copied from another row, subject or region)",
            **details,
        ) from None
    opened: list[tuple[str, bytes]] = []
    for name, ciphertext in sealed:
        try:
            opened.append((name, cipher.decrypt(ciphertext, binding + b"\x01" + length_prefixed(name))))
        except VerificationFailed:
            raise VerificationFailed(
                f"integrity check failed for {where} field {name!r}: the ciphertext was altered, or "
                "copied from another row, subject or region",
                **details,
                field=name,
            ) from None
    return opened
