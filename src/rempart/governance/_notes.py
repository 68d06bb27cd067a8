"""Signed-note steps shared by trust roots, proposals and releases."""

from __future__ import annotations

from collections.abc import Sequence

from rempart.tlog.note import NoteSigner, add_signatures, sign_note


def key_label(name: str, key_id: int) -> str:
    """How messages and log entries name a note key: ``name+hexid``."""
    return f"{name}+{key_id:08x}"


def sign_or_extend(text_or_note: str | bytes, signers: Sequence[NoteSigner]) -> bytes:
    """Sign a bare text, or add signatures to an already signed note (its text ends at a blank line)."""
    raw = text_or_note.decode("utf-8") if isinstance(text_or_note, bytes) else text_or_note
    if "\n\n" in raw:
        return add_signatures(raw, signers)
    return sign_note(raw, signers)
