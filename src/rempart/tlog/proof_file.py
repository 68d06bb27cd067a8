r"""C2SP offline inclusion proofs (https://c2sp.org/tlog-proof), ``.tlog-proof`` files.

A proof file is the line ``c2sp.org/tlog-proof@v1``, an optional
``extra <base64>`` line of opaque, *unauthenticated* application data, the line
``index <n>``, the RFC 6962 inclusion proof one base64 hash per line (leaf's
sibling first), an empty line, then the signed (and perhaps cosigned)
checkpoint note verbatim. Anyone holding the log's and witnesses' keys can
check it offline, like a detached signature.

>>> from rempart.tlog.checkpoint import Checkpoint, sign_checkpoint
>>> from rempart.tlog.merkle import leaf_hash
>>> from rempart.tlog.note import Signer
>>> log = Signer.generate("example.com/log")
>>> note = sign_checkpoint(Checkpoint("example.com/log", 1, leaf_hash(b"hi")), [log])
>>> data = ProofFile(index=0, proof=(), checkpoint=note).to_bytes()
>>> verify_proof_file(data, entry=b"hi", origin="example.com/log", log=log.verifier(),
...                   witnesses=(), threshold=0).checkpoint.size
1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rempart.errors import InvalidInput
from rempart.tlog import merkle
from rempart.tlog.checkpoint import MAX_TREE_SIZE, Checkpoint, open_checkpoint
from rempart.tlog.cosignature import Cosignature, CosignatureVerifier, open_cosigned_checkpoint
from rempart.tlog.merkle import HASH_SIZE
from rempart.tlog.note import (
    MAX_NOTE_SIZE,
    Note,
    NoteVerifier,
    _decode_base64,
    _decode_utf8,
    _encode_base64,
    _parse_decimal,
)

__all__ = [
    "MAX_PROOF_HASHES",
    "PROOF_HEADER",
    "ProofFile",
    "VerifiedProof",
    "verify_proof_file",
]

PROOF_HEADER = "c2sp.org/tlog-proof@v1"
MAX_PROOF_HASHES = 63  # an inclusion proof in a tree of at most 2^63 - 1 leaves
_MAX_PROOF_FILE_SIZE = MAX_NOTE_SIZE + 4096


@dataclass(frozen=True, slots=True)
class ProofFile:
    """A parsed proof file; nothing in it is trusted until :func:`verify_proof_file`.

    ``checkpoint`` is the signed checkpoint note, byte for byte; ``extra`` is
    None when the file has no extra line (an empty extra line is not allowed:
    the spec says to omit it).
    """

    index: int
    proof: tuple[bytes, ...]
    checkpoint: bytes
    extra: bytes | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "proof", tuple(self.proof))
        if not 0 <= self.index < MAX_TREE_SIZE:
            raise InvalidInput(f"proof index {self.index} is not in 0..{MAX_TREE_SIZE - 1}")
        if len(self.proof) > MAX_PROOF_HASHES:
            raise InvalidInput(f"inclusion proof has {len(self.proof)} hashes, more than {MAX_PROOF_HASHES}")
        for i, h in enumerate(self.proof):
            if len(h) != HASH_SIZE:
                raise InvalidInput(f"inclusion proof hash {i} is {len(h)} bytes, not {HASH_SIZE}")
        if self.extra is not None and not self.extra:
            raise InvalidInput("proof extra data is empty; leave it out (None) instead")
        if not self.checkpoint:
            raise InvalidInput("proof file has no checkpoint after its empty line")
        Note.parse(self.checkpoint)  # a signed note, structurally; verification comes later

    def to_bytes(self) -> bytes:
        lines = [PROOF_HEADER]
        if self.extra is not None:
            lines.append(f"extra {_encode_base64(self.extra)}")
        lines.append(f"index {self.index}")
        lines.extend(_encode_base64(h) for h in self.proof)
        return ("\n".join(lines) + "\n\n").encode("ascii") + self.checkpoint

    @classmethod
    def parse(cls, data: bytes | str) -> ProofFile:
        text = _decode_utf8(data, "proof file", _MAX_PROOF_FILE_SIZE)
        head, blank, checkpoint = text.partition("\n\n")
        if not blank:
            raise InvalidInput("proof file has no empty line between the inclusion proof and the checkpoint")
        lines = head.split("\n")
        if lines[0] != PROOF_HEADER:
            raise InvalidInput(f"proof file must start with the line {PROOF_HEADER!r}, not {lines[0][:60]!r}")
        rest = lines[1:]
        extra = None
        if rest and rest[0].startswith("extra "):
            extra = _decode_base64(rest.pop(0)[len("extra ") :], "proof file extra data")
            if not extra:
                raise InvalidInput("proof file extra line is empty; the spec says to omit it instead")
        if not rest or not rest[0].startswith("index "):
            found = repr(rest[0][:60]) if rest else "nothing"
            raise InvalidInput(
                f"proof file needs an 'index <n>' line after its header (and extra line), found {found}"
            )
        index = _parse_decimal(rest[0][len("index ") :], "proof file index", MAX_TREE_SIZE - 1)
        proof = tuple(_decode_base64(line, f"inclusion proof hash {i}") for i, line in enumerate(rest[1:]))
        return cls(index, proof, checkpoint.encode("utf-8"), extra)


@dataclass(frozen=True, slots=True)
class VerifiedProof:
    """The entry is at ``index`` in the log at ``checkpoint``, as witnessed by ``cosignatures``.

    ``extra`` is copied from the file and is *not* authenticated by anything.
    """

    index: int
    checkpoint: Checkpoint
    cosignatures: tuple[Cosignature, ...]
    extra: bytes | None


def verify_proof_file(
    data: bytes | str | ProofFile,
    *,
    origin: str,
    log: NoteVerifier,
    witnesses: Sequence[CosignatureVerifier],
    threshold: int,
    entry: bytes | None = None,
    leaf_hash: bytes | None = None,
) -> VerifiedProof:
    """Check a proof file offline for one entry (give ``entry`` or its RFC 6962 ``leaf_hash``).

    The checkpoint must be signed by ``log`` for ``origin`` and cosigned by at
    least ``threshold`` of ``witnesses``; ``threshold=0`` with no witnesses trusts
    the log alone, with no protection against a split view. Then the inclusion
    proof must lead from the leaf to the checkpoint's root.
    """
    if entry is not None and leaf_hash is None:
        leaf = merkle.leaf_hash(entry)
    elif leaf_hash is not None and entry is None:
        leaf = leaf_hash
    else:
        raise InvalidInput("give exactly one of entry and leaf_hash")
    proof = data if isinstance(data, ProofFile) else ProofFile.parse(data)
    if threshold == 0:
        if witnesses:
            raise InvalidInput(
                "threshold 0 would ignore the witness keys given; pass witnesses=() to trust the log alone"
            )
        checkpoint = open_checkpoint(proof.checkpoint, origin=origin, log=log).checkpoint
        cosignatures: tuple[Cosignature, ...] = ()
    else:
        cosigned = open_cosigned_checkpoint(
            proof.checkpoint, origin=origin, log=log, witnesses=witnesses, threshold=threshold
        )
        checkpoint, cosignatures = cosigned.checkpoint, cosigned.cosignatures
    merkle.verify_inclusion(leaf, proof.index, checkpoint.size, proof.proof, checkpoint.root)
    return VerifiedProof(proof.index, checkpoint, cosignatures, proof.extra)
