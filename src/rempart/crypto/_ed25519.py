"""Ed25519 signing keys and verification."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from rempart.errors import InvalidInput, VerificationFailed

SEED_SIZE = 32
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64


class SigningKey:
    """An Ed25519 private key. Its seed is never part of ``repr``."""

    __slots__ = ("_key", "public_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_SIZE:
            raise InvalidInput(f"an Ed25519 seed is {SEED_SIZE} bytes, got {len(seed)}")
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key: bytes = self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(os.urandom(SEED_SIZE))

    def seed(self) -> bytes:
        """The 32-byte private seed, for writing a key file the owner alone can read."""
        return self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"SigningKey(public_key={self.public_key.hex()})"


def verify_ed25519(public_key: bytes, signature: bytes, message: bytes) -> None:
    """Raise :class:`VerificationFailed` unless ``signature`` is valid for ``message``."""
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise VerificationFailed(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
    if len(signature) != SIGNATURE_SIZE:
        raise VerificationFailed(f"an Ed25519 signature is 64 bytes, got {len(signature)}")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature as exc:
        raise VerificationFailed("Ed25519 signature does not verify") from exc
