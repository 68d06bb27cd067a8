r"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys.

A note is UTF-8 text ending in a newline, a blank line, then one line per
signature: ``— <key name> base64(key id ‖ signature)``. The signature covers
the text including its final newline. A key is known by its name *and* its
4-byte id, so signatures from other keys are kept aside, never trusted; a
signature from a known key that does not verify rejects the whole note.

>>> verifier = Verifier.parse(
...     "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k")
>>> signed = ("This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1"
...           "YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n")
>>> open_note(signed.encode(), [verifier]).text
'This is an example message.\n'
>>> signer = Signer.generate("example.com/log")
>>> opened = open_note(sign_note("hello\n", [signer]), [signer.verifier()])
>>> opened.signed_by(signer.verifier()), opened.unverified
(True, ())
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rempart.crypto import PUBLIC_KEY_SIZE, SEED_SIZE, SIGNATURE_SIZE, SigningKey, verify_ed25519
from rempart.errors import InvalidInput, RempartError, VerificationFailed

__all__ = [
    "ED25519_ALGORITHM",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "EncodedKey",
    "Note",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "OpenedNote",
    "Signer",
    "VerifiedSignature",
    "Verifier",
    "add_signatures",
    "compute_key_id",
    "open_note",
    "sign_note",
]

ED25519_ALGORITHM = 0x01
MAX_SIGNATURES = 100  # as Go's golang.org/x/mod/sumdb/note; the spec asks for at least 16
MAX_NOTE_SIZE = 1_000_000  # bytes; 100 post-quantum signatures of ~5 kB still fit

_SIGNATURE_PREFIX = "— "  # U+2014 EM DASH, U+0020 SPACE
_PRIVATE_PREFIX = "PRIVATE+KEY+"
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")
_HEX_ID = re.compile("[0-9a-f]{8}")
_MAX_KEY_ID = 0xFFFFFFFF


def _key(name: str, key_id: int) -> str:
    """How a key is named in messages: ``name+hexid``, as in a verifier key."""
    return f"{name}+{key_id:08x}"


def _check_name(name: str, what: str) -> None:
    """Key names are non-empty and hold no '+', no Unicode space and no control character."""
    if not name:
        raise InvalidInput(f"{what} name is empty")
    for ch in name:
        if ch == "+":
            raise InvalidInput(f"{what} name {name!r} contains '+'")
        if ch.isspace() or ord(ch) < 0x20:
            raise InvalidInput(f"{what} name {name!r} contains space or control character U+{ord(ch):04X}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{what} name {name!r} is not valid Unicode (lone surrogate)") from exc


def _decode_base64(
    text: str,
    what: str,
    *,
    show: bool = True,
    noncanonical: type[RempartError] = InvalidInput,
) -> bytes:
    """Strict RFC 4648 §4 base64: padded, no stray characters, unused bits zero.

    Canonical only, so that every encoded value has exactly one spelling and a
    changed character is always a changed value.
    """
    shown = f" {text[:64]!r}{'...' if len(text) > 64 else ''}" if show else ""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{what}{shown} is not valid base64 ({exc})") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise noncanonical(f"{what}{shown} is not canonical base64 (its unused padding bits are not zero)")
    return raw


def _encode_base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _check_text(text: str) -> None:
    """A note text: ends in a newline, no control character but newline, encodable as UTF-8."""
    if not text.endswith("\n"):
        raise InvalidInput("note text must end with a newline")
    bad = _CONTROL.search(text)
    if bad:
        raise InvalidInput(
            f"note text contains control character U+{ord(bad.group()):04X} at offset "
            f"{bad.start()}; only newline is allowed"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"note text has a lone surrogate at offset {exc.start}") from exc


def _decode_utf8(data: bytes | str, what: str, limit: int) -> str:
    """Bytes from outside to text: size-capped, valid UTF-8, no control character but newline."""
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInput(f"{what} has a lone surrogate at offset {exc.start}") from exc
    if len(data) > limit:
        raise InvalidInput(f"{what} is {len(data)} bytes, more than the {limit} allowed")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{what} is not valid UTF-8 (bad byte at offset {exc.start})") from exc
    bad = _CONTROL.search(text)
    if bad:
        raise InvalidInput(
            f"{what} contains control character U+{ord(bad.group()):04X} at offset "
            f"{bad.start()}; only newline is allowed"
        )
    return text


def _parse_decimal(text: str, what: str, maximum: int) -> int:
    """ASCII decimal without sign or leading zeros, at most ``maximum``."""
    if not re.fullmatch("0|[1-9][0-9]*", text):
        raise InvalidInput(f"{what} {text[:40]!r} is not a decimal number without sign or leading zeros")
    if len(text) > len(str(maximum)) or int(text) > maximum:
        raise InvalidInput(f"{what} {text[:40]} is larger than {maximum}")
    return int(text)


def compute_key_id(name: str, algorithm: int, public_key: bytes) -> int:
    """``SHA-256(name ‖ 0x0A ‖ algorithm ‖ public key)[:4]`` as a big-endian uint32."""
    _check_name(name, "key")
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([algorithm]) + public_key)
    return int.from_bytes(digest.digest()[:4], "big")


@dataclass(frozen=True, slots=True)
class EncodedKey:
    """A key written ``name+hexid+base64(algorithm ‖ key)``, or with ``PRIVATE+KEY+`` before it.

    This is the syntax alone, shared by every signature type; :class:`Verifier`,
    :class:`Signer` and the cosignature keys check the algorithm, the key size
    and that the id is the one the key implies. ``key`` is never in ``repr``.
    """

    name: str
    key_id: int
    algorithm: int
    key: bytes = field(repr=False)

    @classmethod
    def parse(cls, text: str, *, private: bool = False) -> EncodedKey:
        """Split on '+' at most twice after the name: the base64 part may hold '+' itself."""
        what = "private key" if private else "verifier key"
        if private:
            if not text.startswith(_PRIVATE_PREFIX):
                raise InvalidInput(f"a private key starts with {_PRIVATE_PREFIX!r}")
            text = text[len(_PRIVATE_PREFIX) :]
        parts = text.split("+", 2)
        if len(parts) != 3:
            raise InvalidInput(
                f"{what} must be name+hexid+base64(type‖key), found {len(parts)} '+'-separated "
                f"part{'s' if len(parts) > 1 else ''}"
            )
        name, hex_id, material = parts
        _check_name(name, what)
        if not _HEX_ID.fullmatch(hex_id):
            shown = "" if private else f" {hex_id!r}"
            raise InvalidInput(f"{what} id{shown} is not 8 lowercase hex digits")
        raw = _decode_base64(material, f"{what} material", show=not private)
        if not raw:
            raise InvalidInput(f"{what} has no key material after its id")
        return cls(name, int(hex_id, 16), raw[0], raw[1:])

    def format(self, *, private: bool = False) -> str:
        prefix = _PRIVATE_PREFIX if private else ""
        material = _encode_base64(bytes([self.algorithm]) + self.key)
        return f"{prefix}{self.name}+{self.key_id:08x}+{material}"

    @classmethod
    def parse_ed25519(
        cls, text: str, *, algorithm: int, algorithm_name: str, private: bool = False
    ) -> EncodedKey:
        """Parse an Ed25519 key of signature type ``algorithm``: a 32-byte public key or seed.

        The caller still checks the key id, against the public key (derived from
        the seed for a private key).
        """
        what = "private key" if private else "verifier key"
        encoded = cls.parse(text, private=private)
        if encoded.algorithm != algorithm:
            raise InvalidInput(
                f"{what} {encoded.name!r} has signature type 0x{encoded.algorithm:02x}, "
                f"not {algorithm_name} (0x{algorithm:02x})"
            )
        size, material = (SEED_SIZE, "seed") if private else (PUBLIC_KEY_SIZE, "public key")
        if len(encoded.key) != size:
            raise InvalidInput(
                f"{what} {encoded.name!r} holds {len(encoded.key)} key bytes, "
                f"an Ed25519 {material} is {size}"
            )
        return encoded

    def check_key_id(self, public_key: bytes) -> None:
        """Raise unless the written id is the one ``public_key`` and the name imply."""
        expected = compute_key_id(self.name, self.algorithm, public_key)
        if expected != self.key_id:
            raise InvalidInput(
                f"key id {self.key_id:08x} of {self.name!r} does not match its key, "
                f"which has id {expected:08x}"
            )


class NoteVerifier(Protocol):
    """A known key: a note signature counts only if its name *and* key id match.

    ``verify`` raises :class:`VerificationFailed`, naming the key, unless
    ``signature`` (the bytes after the key id) is valid for ``message``.
    """

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, message: bytes, signature: bytes) -> None: ...


class NoteSigner(Protocol):
    """Signs note texts; ``sign`` returns the bytes written after the key id."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def sign(self, message: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Verifier:
    """An Ed25519 (type 0x01) note verifier key, written ``name+hexid+base64(0x01 ‖ pub)``."""

    name: str
    public_key: bytes
    key_id: int = field(init=False)

    def __post_init__(self) -> None:
        if len(self.public_key) != PUBLIC_KEY_SIZE:
            raise InvalidInput(
                f"an Ed25519 public key is {PUBLIC_KEY_SIZE} bytes, got {len(self.public_key)}"
            )
        object.__setattr__(self, "key_id", compute_key_id(self.name, ED25519_ALGORITHM, self.public_key))

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        encoded = EncodedKey.parse_ed25519(vkey, algorithm=ED25519_ALGORITHM, algorithm_name="Ed25519")
        encoded.check_key_id(encoded.key)
        return cls(encoded.name, encoded.key)

    def vkey(self) -> str:
        return EncodedKey(self.name, self.key_id, ED25519_ALGORITHM, self.public_key).format()

    def verify(self, message: bytes, signature: bytes) -> None:
        who = _key(self.name, self.key_id)
        if len(signature) != SIGNATURE_SIZE:
            raise VerificationFailed(
                f"Ed25519 signature by {who} is {len(signature)} bytes, not {SIGNATURE_SIZE}", key=who
            )
        try:
            verify_ed25519(self.public_key, signature, message)
        except VerificationFailed as exc:
            raise VerificationFailed(f"Ed25519 signature by {who} does not verify", key=who) from exc


class Signer:
    """An Ed25519 note signing key; its ``repr`` shows the name and key id, never the key."""

    __slots__ = ("_key", "key_id", "name")

    def __init__(self, name: str, key: SigningKey) -> None:
        _check_name(name, "signer")
        self.name = name
        self._key = key
        self.key_id = compute_key_id(name, ED25519_ALGORITHM, key.public_key)

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(name, SigningKey.generate())

    @classmethod
    def parse(cls, skey: str) -> Signer:
        """Read Go's ``PRIVATE+KEY+name+hexid+base64(0x01 ‖ seed)``; the id is the public key's."""
        encoded = EncodedKey.parse_ed25519(
            skey, algorithm=ED25519_ALGORITHM, algorithm_name="Ed25519", private=True
        )
        key = SigningKey(encoded.key)
        encoded.check_key_id(key.public_key)
        return cls(encoded.name, key)

    def skey(self) -> str:
        """The private key in Go's encoding, for a file only its owner can read."""
        return EncodedKey(self.name, self.key_id, ED25519_ALGORITHM, self._key.seed()).format(private=True)

    def verifier(self) -> Verifier:
        return Verifier(self.name, self._key.public_key)

    def vkey(self) -> str:
        return self.verifier().vkey()

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"Signer({_key(self.name, self.key_id)})"


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: the key name, its 4-byte id and the signature bytes after it."""

    name: str
    key_id: int
    signature: bytes

    def __post_init__(self) -> None:
        _check_name(self.name, "signature key")
        if not 0 <= self.key_id <= _MAX_KEY_ID:
            raise InvalidInput(f"key id {self.key_id} is not a 32-bit unsigned number")
        if not self.signature:
            raise InvalidInput(f"signature by {_key(self.name, self.key_id)} is empty")

    @classmethod
    def parse_line(cls, line: str) -> NoteSignature:
        """Parse one signature line, without its final newline."""
        if not line.startswith(_SIGNATURE_PREFIX):
            raise InvalidInput(
                f"signature line {line[:60]!r} does not start with an em dash (U+2014) and a space"
            )
        name, space, payload = line[len(_SIGNATURE_PREFIX) :].partition(" ")
        if not space:
            raise InvalidInput(f"signature line {line[:60]!r} has no space between key name and signature")
        _check_name(name, "signature key")
        # A changed padding bit is a tampered signature, not a formatting slip: report it
        # as a verification failure (litewitness answers 403 to such a note).
        raw = _decode_base64(payload, f"signature by {name!r}", noncanonical=VerificationFailed)
        if len(raw) < 5:
            raise InvalidInput(
                f"signature by {name!r} is {len(raw)} bytes; a 4-byte key id and a signature "
                "of at least 1 byte are needed"
            )
        return cls(name, int.from_bytes(raw[:4], "big"), raw[4:])

    def line(self) -> str:
        payload = _encode_base64(self.key_id.to_bytes(4, "big") + self.signature)
        return f"{_SIGNATURE_PREFIX}{self.name} {payload}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A signed note's structure, *unverified*: its text must be ignored until :func:`open_note`."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "signatures", tuple(self.signatures))
        _check_text(self.text)
        if not self.signatures:
            raise InvalidInput("a signed note has at least one signature line")
        if len(self.signatures) > MAX_SIGNATURES:
            raise InvalidInput(
                f"note has {len(self.signatures)} signatures, more than the {MAX_SIGNATURES} allowed"
            )

    @classmethod
    def parse(cls, data: bytes | str) -> Note:
        """Split at the last blank line; every line after it must be a signature line."""
        text = _decode_utf8(data, "note", MAX_NOTE_SIZE)
        split = text.rfind("\n\n")
        if split < 0:
            raise InvalidInput("note has no blank line between its text and its signatures")
        body, block = text[: split + 1], text[split + 2 :]
        if not block:
            raise InvalidInput("note has no signature line after its last blank line")
        if not block.endswith("\n"):
            raise InvalidInput("note does not end with a newline")
        lines = block[:-1].split("\n")
        if len(lines) > MAX_SIGNATURES:
            raise InvalidInput(
                f"note has {len(lines)} signature lines, more than the {MAX_SIGNATURES} allowed"
            )
        return cls(body, tuple(NoteSignature.parse_line(line) for line in lines))

    def with_signatures(self, new: Sequence[NoteSignature]) -> Note:
        """This note with ``new`` signature lines added; one from a key already here replaces its line.

        As Go's ``note.Sign`` does. Nothing is verified: open the note to trust it.
        """
        replaced = {(s.name, s.key_id) for s in new}
        kept = tuple(s for s in self.signatures if (s.name, s.key_id) not in replaced)
        return Note(self.text, kept + tuple(new))

    def to_bytes(self) -> bytes:
        data = (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode("utf-8")
        if len(data) > MAX_NOTE_SIZE:
            raise InvalidInput(f"note would be {len(data)} bytes, more than the {MAX_NOTE_SIZE} allowed")
        return data


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """A signature line and the known key that verified it."""

    verifier: NoteVerifier
    signature: NoteSignature


@dataclass(frozen=True, slots=True)
class OpenedNote:
    """A note whose every signature from a known key verified (at least one did).

    ``unverified`` holds the signatures of unknown keys, for display or for
    passing the note on; nothing about them is trusted.
    """

    text: str
    verified: tuple[VerifiedSignature, ...]
    unverified: tuple[NoteSignature, ...]

    @property
    def verifiers(self) -> tuple[NoteVerifier, ...]:
        return tuple(v.verifier for v in self.verified)

    def signed_by(self, verifier: NoteVerifier) -> bool:
        return any(v.verifier == verifier for v in self.verified)


def _index(verifiers: Iterable[NoteVerifier]) -> dict[tuple[str, int], NoteVerifier]:
    known: dict[tuple[str, int], NoteVerifier] = {}
    for verifier in verifiers:
        other = known.setdefault((verifier.name, verifier.key_id), verifier)
        if other != verifier:
            raise InvalidInput(
                "two different known keys share the name and id " + _key(verifier.name, verifier.key_id)
            )
    return known


def open_note(data: bytes | str, verifiers: Iterable[NoteVerifier]) -> OpenedNote:
    """Parse a signed note and verify it against the known keys.

    Signatures from unknown keys (no known key with the same name *and* id) are
    kept unverified; a known key's signature that does not verify raises
    :class:`VerificationFailed`, and so does a note no known key signed.
    """
    note = Note.parse(data)
    known = _index(verifiers)
    message = note.text.encode("utf-8")
    verified: list[VerifiedSignature] = []
    unverified: list[NoteSignature] = []
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            if sig not in unverified:
                unverified.append(sig)
            continue
        verifier.verify(message, sig.signature)  # every copy must verify, not just the first
        if all(v.verifier != verifier for v in verified):
            verified.append(VerifiedSignature(verifier, sig))
    if not verified:
        signed = ", ".join(dict.fromkeys(_key(s.name, s.key_id) for s in note.signatures))
        trusted = ", ".join(_key(name, kid) for name, kid in known) or "none"
        raise VerificationFailed(
            f"no signature from a known key: the note is signed by {signed}; known keys: {trusted}"
        )
    return OpenedNote(note.text, tuple(verified), tuple(unverified))


def _sign_all(text: str, signers: Sequence[NoteSigner]) -> tuple[NoteSignature, ...]:
    if not signers:
        raise InvalidInput("signing a note needs at least one signer")
    message = text.encode("utf-8")
    seen: set[tuple[str, int]] = set()
    signatures: list[NoteSignature] = []
    for signer in signers:
        ident = (signer.name, signer.key_id)
        if ident in seen:
            raise InvalidInput(f"two signers share the key {_key(*ident)}")
        seen.add(ident)
        signatures.append(NoteSignature(signer.name, signer.key_id, signer.sign(message)))
    return tuple(signatures)


def sign_note(text: str, signers: Sequence[NoteSigner]) -> bytes:
    """The signed note: ``text``, a blank line, one signature line per signer."""
    _check_text(text)
    return Note(text, _sign_all(text, signers)).to_bytes()


def add_signatures(signed: bytes | str, signers: Sequence[NoteSigner]) -> bytes:
    """Add signature lines to a signed note (a witness cosigning a checkpoint, say).

    Existing lines are kept as they are, except one from a key that signs again,
    which the new signature replaces (as Go's ``note.Sign`` does). Existing
    signatures are not checked here: open the note first to trust it.
    """
    note = Note.parse(signed)
    return note.with_signatures(_sign_all(note.text, signers)).to_bytes()
