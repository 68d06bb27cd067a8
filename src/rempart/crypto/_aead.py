"""AES-256-GCM authenticated encryption with associated data."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rempart.errors import InvalidInput, VerificationFailed

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return AESGCM.generate_key(bit_length=256)


class AeadCipher:
    """AES-256-GCM under one key; build once and reuse on hot paths.

    Sealed values are ``nonce ‖ ciphertext ‖ tag`` with a random 96-bit nonce.
    """

    __slots__ = ("_aes",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise InvalidInput(f"an AES-256 key is {KEY_SIZE} bytes, got {len(key)}")
        self._aes = AESGCM(key)

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aes.encrypt(nonce, plaintext, associated_data)

    def decrypt(self, sealed: bytes, associated_data: bytes, *, start: int = 0) -> bytes:
        """Any tampering, wrong key or wrong binding raises :class:`VerificationFailed`.

        ``start``: where the sealed value begins in ``sealed`` (after a header), saving a copy.
        """
        nonce_end = start + NONCE_SIZE
        if len(sealed) < nonce_end + TAG_SIZE:
            raise VerificationFailed("ciphertext is too short to hold a nonce and a tag")
        try:
            return self._aes.decrypt(sealed[start:nonce_end], sealed[nonce_end:], associated_data)
        except InvalidTag as exc:
            raise VerificationFailed(
                "ciphertext failed its integrity check "
                "(wrong key, or bound to another row or region)"
            ) from exc

    def __repr__(self) -> str:
        return "AeadCipher(<key hidden>)"
