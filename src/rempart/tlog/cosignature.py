r"""C2SP Ed25519 checkpoint cosignatures (https://c2sp.org/tlog-cosignature), type 0x04.

A witness that has checked a checkpoint is consistent with everything it saw
before signs ``cosignature/v1\ntime <unix seconds>\n`` followed by the whole
checkpoint body (extension lines included), and appends a note signature line
whose payload is ``key id ‖ timestamp (8 bytes, big-endian) ‖ Ed25519 signature``.
The key id is ``SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[:4]``. Time is always
passed in by the caller: nothing here reads a clock.

>>> from rempart.tlog.checkpoint import Checkpoint
>>> cosigner = Cosigner.generate("witness.example/w1")
>>> c = Checkpoint("example.com/log", 5, bytes(32))
>>> cosigner.cosign(c, timestamp=1679315147).timestamp
1679315147
>>> cosigned_message(c.body(), 1679315147)[:31]
b'cosignature/v1\ntime 1679315147\n'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rempart.crypto import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SigningKey, verify_ed25519
from rempart.errors import InvalidInput, VerificationFailed
from rempart.tlog.checkpoint import Checkpoint, open_checkpoint
from rempart.tlog.note import (
    EncodedKey,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    OpenedNote,
    _key,
    compute_key_id,
)

__all__ = [
    "COSIGNATURE_ALGORITHM",
    "COSIGNATURE_SIZE",
    "MAX_TIMESTAMP",
    "Cosignature",
    "CosignatureVerifier",
    "CosignedCheckpoint",
    "Cosigner",
    "cosigned_message",
    "open_cosigned_checkpoint",
]

COSIGNATURE_ALGORITHM = 0x04
MAX_TIMESTAMP = 2**63 - 1  # the spec's bound on the u64 timestamp
COSIGNATURE_SIZE = 8 + SIGNATURE_SIZE  # timestamp ‖ Ed25519 signature, after the key id
_ALGORITHM_NAME = "Ed25519 cosignature/v1"


def _check_timestamp(timestamp: int) -> None:
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise InvalidInput(f"cosignature timestamp {timestamp} is not in 0..{MAX_TIMESTAMP}")


def _cosigned(text: bytes, timestamp: int) -> bytes:
    return b"cosignature/v1\ntime %d\n" % timestamp + text


def cosigned_message(body: str, timestamp: int) -> bytes:
    """What a cosigner signs: the header line, the time line, then the checkpoint body."""
    _check_timestamp(timestamp)
    return _cosigned(body.encode("utf-8"), timestamp)


@dataclass(frozen=True, slots=True)
class Cosignature:
    """One witness's cosignature: who (name and key id), when, and the Ed25519 signature."""

    name: str
    key_id: int
    timestamp: int
    signature: bytes

    def __post_init__(self) -> None:
        _check_timestamp(self.timestamp)
        if len(self.signature) != SIGNATURE_SIZE:
            raise InvalidInput(f"an Ed25519 signature is {SIGNATURE_SIZE} bytes, got {len(self.signature)}")

    @classmethod
    def from_note_signature(cls, sig: NoteSignature) -> Cosignature:
        """Split a note signature's payload into timestamp and signature (nothing is verified)."""
        if len(sig.signature) != COSIGNATURE_SIZE:
            raise InvalidInput(
                f"cosignature by {_key(sig.name, sig.key_id)} is {len(sig.signature)} bytes after "
                f"its key id, expected {COSIGNATURE_SIZE} (8-byte timestamp, 64-byte signature)"
            )
        return cls(sig.name, sig.key_id, int.from_bytes(sig.signature[:8], "big"), sig.signature[8:])

    def to_note_signature(self) -> NoteSignature:
        return NoteSignature(self.name, self.key_id, self.timestamp.to_bytes(8, "big") + self.signature)

    def line(self) -> str:
        """The note signature line, as a witness returns it and a note carries it."""
        return self.to_note_signature().line()


@dataclass(frozen=True, slots=True)
class CosignatureVerifier:
    """A witness's cosignature/v1 key, written ``name+hexid+base64(0x04 ‖ pub)``.

    It is a :class:`~rempart.tlog.note.NoteVerifier`: pass it to ``open_note``
    with the checkpoint note's text as the message.
    """

    name: str
    public_key: bytes
    key_id: int = field(init=False)

    def __post_init__(self) -> None:
        if len(self.public_key) != PUBLIC_KEY_SIZE:
            raise InvalidInput(
                f"an Ed25519 public key is {PUBLIC_KEY_SIZE} bytes, got {len(self.public_key)}"
            )
        object.__setattr__(self, "key_id", compute_key_id(self.name, COSIGNATURE_ALGORITHM, self.public_key))

    @classmethod
    def parse(cls, vkey: str) -> CosignatureVerifier:
        encoded = EncodedKey.parse_ed25519(
            vkey, algorithm=COSIGNATURE_ALGORITHM, algorithm_name=_ALGORITHM_NAME
        )
        encoded.check_key_id(encoded.key)
        return cls(encoded.name, encoded.key)

    def vkey(self) -> str:
        return EncodedKey(self.name, self.key_id, COSIGNATURE_ALGORITHM, self.public_key).format()

    def verify(self, message: bytes, signature: bytes) -> None:
        """``message`` is the checkpoint note text; ``signature`` is ``timestamp ‖ signature``."""
        who = _key(self.name, self.key_id)
        if len(signature) != COSIGNATURE_SIZE:
            raise VerificationFailed(
                f"cosignature by {who} is {len(signature)} bytes after its key id, "
                f"expected {COSIGNATURE_SIZE} (8-byte timestamp, 64-byte signature)",
                key=who,
            )
        timestamp = int.from_bytes(signature[:8], "big")
        if timestamp > MAX_TIMESTAMP:
            raise VerificationFailed(
                f"cosignature by {who} has timestamp {timestamp}, above {MAX_TIMESTAMP}", key=who
            )
        try:
            verify_ed25519(self.public_key, signature[8:], _cosigned(message, timestamp))
        except VerificationFailed as exc:
            raise VerificationFailed(
                f"cosignature by {who} for time {timestamp} does not verify", key=who
            ) from exc


@dataclass(frozen=True, slots=True)
class _CosignerAt:
    """A :class:`NoteSigner` that cosigns at one fixed time (see :meth:`Cosigner.at`)."""

    cosigner: Cosigner
    timestamp: int

    @property
    def name(self) -> str:
        return self.cosigner.name

    @property
    def key_id(self) -> int:
        return self.cosigner.key_id

    def sign(self, message: bytes) -> bytes:
        return self.cosigner.sign(message, timestamp=self.timestamp)


class Cosigner:
    """A witness's Ed25519 cosigning key; its ``repr`` never shows the key."""

    __slots__ = ("_key", "key_id", "name")

    def __init__(self, name: str, key: SigningKey) -> None:
        self.key_id = compute_key_id(name, COSIGNATURE_ALGORITHM, key.public_key)
        self.name = name
        self._key = key

    @classmethod
    def generate(cls, name: str) -> Cosigner:
        return cls(name, SigningKey.generate())

    @classmethod
    def parse(cls, skey: str) -> Cosigner:
        """Read ``PRIVATE+KEY+name+hexid+base64(0x04 ‖ seed)``; the id is the 0x04 public key's."""
        encoded = EncodedKey.parse_ed25519(
            skey, algorithm=COSIGNATURE_ALGORITHM, algorithm_name=_ALGORITHM_NAME, private=True
        )
        key = SigningKey(encoded.key)
        encoded.check_key_id(key.public_key)
        return cls(encoded.name, key)

    def skey(self) -> str:
        return EncodedKey(self.name, self.key_id, COSIGNATURE_ALGORITHM, self._key.seed()).format(
            private=True
        )

    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier(self.name, self._key.public_key)

    def vkey(self) -> str:
        return self.verifier().vkey()

    def sign(self, message: bytes, *, timestamp: int) -> bytes:
        """``timestamp ‖ signature`` over the cosigned form of a checkpoint note text."""
        _check_timestamp(timestamp)
        return timestamp.to_bytes(8, "big") + self._key.sign(_cosigned(message, timestamp))

    def cosign(self, checkpoint: Checkpoint, timestamp: int) -> Cosignature:
        """Cosign ``checkpoint`` as of ``timestamp`` (Unix seconds, given by the caller)."""
        payload = self.sign(checkpoint.body().encode("utf-8"), timestamp=timestamp)
        return Cosignature(self.name, self.key_id, timestamp, payload[8:])

    def at(self, timestamp: int) -> NoteSigner:
        """A note signer that cosigns at ``timestamp``, for ``add_signatures``."""
        _check_timestamp(timestamp)
        return _CosignerAt(self, timestamp)

    def __repr__(self) -> str:
        return f"Cosigner({_key(self.name, self.key_id)})"


@dataclass(frozen=True, slots=True)
class CosignedCheckpoint:
    """A checkpoint signed by its log and cosigned by at least a threshold of witnesses."""

    checkpoint: Checkpoint
    note: OpenedNote
    cosignatures: tuple[Cosignature, ...]

    @property
    def witnesses(self) -> tuple[str, ...]:
        """The names of the witnesses that cosigned, in the order they were configured."""
        return tuple(c.name for c in self.cosignatures)


def _check_witnesses(witnesses: Sequence[CosignatureVerifier], threshold: int) -> None:
    """Fail closed on a policy that cannot mean what it says."""
    if not witnesses:
        raise InvalidInput("a cosignature threshold needs at least one witness key")
    if not 1 <= threshold <= len(witnesses):
        raise InvalidInput(
            f"cosignature threshold {threshold} is not in 1..{len(witnesses)} (the number of witness keys)"
        )
    names: set[str] = set()
    keys: set[bytes] = set()
    for w in witnesses:
        # cosignature/v1 does not sign the witness name: one key under two names
        # would be one witness counted twice.
        if w.name in names or w.public_key in keys:
            raise InvalidInput(
                f"witness {_key(w.name, w.key_id)} repeats a name or a public key already "
                "listed; each witness must count once toward the threshold"
            )
        names.add(w.name)
        keys.add(w.public_key)


def open_cosigned_checkpoint(
    data: bytes | str,
    *,
    origin: str,
    log: NoteVerifier,
    witnesses: Sequence[CosignatureVerifier],
    threshold: int,
) -> CosignedCheckpoint:
    """Verify the log's signature and at least ``threshold`` of the ``witnesses``' cosignatures.

    Every cosignature from a listed witness must verify; cosignatures from
    other keys are ignored. Below the threshold, :class:`VerificationFailed`
    says how many cosigned and which witnesses are missing.
    """
    _check_witnesses(witnesses, threshold)
    opened = open_checkpoint(data, origin=origin, log=log, witnesses=witnesses)
    cosignatures = tuple(
        Cosignature.from_note_signature(v.signature)
        for w in witnesses
        for v in opened.note.verified
        if v.verifier == w
    )
    if len(cosignatures) < threshold:
        signed = {c.name for c in cosignatures}
        missing = [w.name for w in witnesses if w.name not in signed]
        raise VerificationFailed(
            f"checkpoint has {len(cosignatures)} of the {threshold} required cosignatures "
            f"from {len(witnesses)} known witnesses; missing: {', '.join(missing)}",
            cosigned=sorted(signed),
            missing=missing,
            threshold=threshold,
        )
    return CosignedCheckpoint(opened.checkpoint, opened.note, cosignatures)
