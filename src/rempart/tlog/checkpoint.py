r"""C2SP checkpoints (https://c2sp.org/tlog-checkpoint): a log's signed tree head.

The note text is the origin, the tree size in decimal, the base64 root hash,
then optional non-empty extension lines, each ending in a newline. Parsing is
strict, so a checkpoint has exactly one text and ``Checkpoint.parse(c.body()) == c``.

>>> c = Checkpoint("example.com/log", 5, bytes(32))
>>> print(c.body(), end="")
example.com/log
5
AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
>>> Checkpoint.parse(c.body()) == c
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rempart.errors import InvalidInput, VerificationFailed
from rempart.tlog.merkle import HASH_SIZE
from rempart.tlog.note import (
    NoteSigner,
    NoteVerifier,
    OpenedNote,
    _decode_base64,
    _encode_base64,
    _parse_decimal,
    open_note,
    sign_note,
)

__all__ = [
    "MAX_ORIGIN_SIZE",
    "MAX_TREE_SIZE",
    "Checkpoint",
    "OpenedCheckpoint",
    "open_checkpoint",
    "sign_checkpoint",
]

MAX_TREE_SIZE = 2**63 - 1  # Go's tlog uses int64 sizes
MAX_ORIGIN_SIZE = 255  # bytes; torchwood's limit, and what ML-DSA cosignatures can encode


def _check_line(line: str, what: str) -> None:
    for ch in line:
        if ord(ch) < 0x20:
            raise InvalidInput(f"{what} {line[:60]!r} contains control character U+{ord(ch):04X}")
    try:
        line.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{what} {line[:60]!r} is not valid Unicode (lone surrogate)") from exc


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The log named ``origin`` has ``size`` entries and this RFC 6962 ``root``."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "extensions", tuple(self.extensions))
        if not self.origin:
            raise InvalidInput("checkpoint origin is empty")
        _check_line(self.origin, "checkpoint origin")
        if len(self.origin.encode("utf-8")) > MAX_ORIGIN_SIZE:
            raise InvalidInput(
                f"checkpoint origin is {len(self.origin.encode('utf-8'))} bytes, "
                f"more than the {MAX_ORIGIN_SIZE} allowed"
            )
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise InvalidInput(f"checkpoint tree size {self.size} is not in 0..{MAX_TREE_SIZE}")
        if len(self.root) != HASH_SIZE:
            raise InvalidInput(f"checkpoint root hash is {len(self.root)} bytes, not {HASH_SIZE}")
        for i, line in enumerate(self.extensions):
            if not line:
                raise InvalidInput(f"checkpoint extension line {i} is empty")
            _check_line(line, f"checkpoint extension line {i}")

    def body(self) -> str:
        """The note text: ``origin\\nsize\\nbase64(root)\\n`` and the extension lines."""
        lines = [self.origin, str(self.size), _encode_base64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a note text strictly: decimal size without sign or leading zeros, 32-byte root."""
        if not text.endswith("\n"):
            raise InvalidInput("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise InvalidInput(
                f"checkpoint has {len(lines)} line{'s' if len(lines) > 1 else ''}; "
                "origin, tree size and root hash are required"
            )
        origin, size, root, *extensions = lines
        return cls(
            origin,
            _parse_decimal(size, "checkpoint tree size", MAX_TREE_SIZE),
            _decode_base64(root, "checkpoint root hash"),
            tuple(extensions),
        )


@dataclass(frozen=True, slots=True)
class OpenedCheckpoint:
    """A checkpoint whose log signature verified, with the opened note it came in."""

    checkpoint: Checkpoint
    note: OpenedNote


def open_checkpoint(
    data: bytes | str,
    *,
    origin: str,
    log: NoteVerifier,
    witnesses: Sequence[NoteVerifier] = (),
) -> OpenedCheckpoint:
    """Verify a signed checkpoint from the log named ``origin``.

    ``log`` must have signed. ``witnesses`` are further known keys: their
    signatures must verify when present, but none is required here (see
    :func:`rempart.tlog.cosignature.open_cosigned_checkpoint` for a threshold).
    The log's key name may differ from the origin (sum.golang.org's does).
    """
    opened = open_note(data, [log, *witnesses])
    if not opened.signed_by(log):
        raise VerificationFailed(f"checkpoint is not signed by the log key {log.name}+{log.key_id:08x}")
    checkpoint = Checkpoint.parse(opened.text)
    if checkpoint.origin != origin:
        raise VerificationFailed(f"checkpoint origin {checkpoint.origin!r} is not the expected {origin!r}")
    return OpenedCheckpoint(checkpoint, opened)


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[NoteSigner]) -> bytes:
    """The signed checkpoint note (the log's signer first, by convention)."""
    return sign_note(checkpoint.body(), signers)
