"""The only package that imports ``cryptography``.

Everything else signs, verifies, encrypts and decrypts through these few
functions, so the choice of primitives lives in one place and every failure
comes out as a :class:`~rempart.errors.VerificationFailed`.
"""

from rempart.crypto._aead import (
    KEY_SIZE,
    NONCE_SIZE,
    AeadCipher,
    new_key,
)
from rempart.crypto._ed25519 import (
    PUBLIC_KEY_SIZE,
    SEED_SIZE,
    SIGNATURE_SIZE,
    SigningKey,
    verify_ed25519,
)

__all__ = [
    "KEY_SIZE",
    "NONCE_SIZE",
    "PUBLIC_KEY_SIZE",
    "SEED_SIZE",
    "SIGNATURE_SIZE",
    "AeadCipher",
    "SigningKey",
    "new_key",
    "verify_ed25519",
]
