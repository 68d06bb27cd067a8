"""torchwood litewitness known answers: the log key, its signed checkpoints, consistency proofs.

The witness's HTTP statuses belong to the witness's own tests; here we pin the
formats and proofs those requests carry.
"""

from __future__ import annotations

import base64
import hashlib

import pytest

from rempart.errors import VerificationFailed
from rempart.tlog.checkpoint import Checkpoint, open_checkpoint
from rempart.tlog.merkle import naive_root, verify_consistency
from rempart.tlog.note import Verifier, open_note
from tests.conftest import load_vector

V = load_vector("witness-add-checkpoint-vectors.json")
ORIGIN: str = V["origin"]
LOG = Verifier(ORIGIN, bytes.fromhex(V["log_public_key_hex"]))
LEAVES = [base64.b64decode(h) for h in V["leaf_hashes_b64"]]
CHECKPOINTS: dict[int, dict[str, str]] = {int(k): v for k, v in V["checkpoints"].items()}
PROOFS = {
    tuple(int(n) for n in k.split("->")): [base64.b64decode(h) for h in v]
    for k, v in V["consistency_proofs"].items()
}


def signed_checkpoint(size: int, sig: str | None = None, origin: str = ORIGIN) -> str:
    c = CHECKPOINTS[size]
    return f"{origin}\n{size}\n{c['root']}\n\n— {origin} {sig or c['sig']}\n"


def root(size: int) -> bytes:
    return base64.b64decode(CHECKPOINTS[size]["root"])


def test_origin_is_derived_from_the_key() -> None:
    pub = bytes.fromhex(V["log_public_key_hex"])
    assert "sigsum.org/v1/tree/" + hashlib.sha256(pub).hexdigest() == ORIGIN


def test_log_vkey_is_derived_from_the_public_key_and_origin() -> None:
    assert LOG.vkey() == V["log_vkey_derived"]
    assert Verifier.parse(V["log_vkey_derived"]) == LOG
    assert LOG.key_id == 0x5202289B


def test_leaf_hashes_are_as_described() -> None:
    assert [bytes([0x2A, i]) + bytes(30) for i in range(5)] == LEAVES


@pytest.mark.parametrize("size", [1, 3, 5])
def test_roots_are_the_merkle_roots_of_the_leaf_hashes(size: int) -> None:
    assert naive_root(LEAVES[:size]) == root(size)


@pytest.mark.parametrize("size", [1, 3, 5])
def test_signed_checkpoints_verify(size: int) -> None:
    note = signed_checkpoint(size)
    opened = open_checkpoint(note.encode(), origin=ORIGIN, log=LOG)
    assert opened.checkpoint == Checkpoint(ORIGIN, size, root(size))
    assert opened.checkpoint.body() == note.split("\n\n")[0] + "\n"
    signature = opened.note.verified[0].signature
    assert signature.key_id == LOG.key_id
    assert signature.line() == f"— {ORIGIN} {CHECKPOINTS[size]['sig']}\n"


def test_corrupted_signature_is_rejected() -> None:
    """Request 2: the size-3 checkpoint with its signature ending in ...6gx= instead of ...6go=."""
    good = CHECKPOINTS[3]["sig"]
    assert good.endswith("6go=")
    corrupted = good[: -len("6go=")] + "6gx="
    with pytest.raises(VerificationFailed, match="signature by .* is not canonical base64"):
        open_checkpoint(signed_checkpoint(3, corrupted), origin=ORIGIN, log=LOG)


def test_corrupted_signature_bytes_are_rejected() -> None:
    """The same corruption with canonical padding bits: the signature itself fails."""
    good = CHECKPOINTS[3]["sig"]
    corrupted = good[: -len("6go=")] + "6gw="
    with pytest.raises(
        VerificationFailed, match=r"^Ed25519 signature by sigsum.org/.*\+5202289b does not verify"
    ):
        open_checkpoint(signed_checkpoint(3, corrupted), origin=ORIGIN, log=LOG)


def test_checkpoint_of_an_unknown_log_is_not_signed_by_a_known_key() -> None:
    """Request 3: origin ...e563, a log the witness does not know."""
    other = ORIGIN[:-1] + "3"
    assert other.endswith("e563")
    with pytest.raises(VerificationFailed, match="^no signature from a known key"):
        open_checkpoint(signed_checkpoint(3, origin=other), origin=ORIGIN, log=LOG)


@pytest.mark.parametrize(("old", "new"), [(1, 3), (1, 5), (3, 5)])
def test_consistency_proofs_verify(old: int, new: int) -> None:
    verify_consistency(old, new, root(old), root(new), PROOFS[(old, new)])


def test_corrupted_consistency_proof_fails() -> None:
    """Request 5: 1->3 with the last byte of its second hash changed (...AAA= to ...ABA=)."""
    second = V["consistency_proofs"]["1->3"][1]
    assert second.endswith("AAA=")
    corrupted = [PROOFS[(1, 3)][0], base64.b64decode(second[:-4] + "ABA=")]
    assert corrupted[1] == PROOFS[(1, 3)][1][:-1] + b"\x10"
    with pytest.raises(VerificationFailed, match="consistency proof 1→3 implies new root"):
        verify_consistency(1, 3, root(1), root(3), corrupted)


def test_empty_consistency_proof_between_different_sizes_fails() -> None:
    """Request 4: old 1, no proof, a size-3 checkpoint."""
    with pytest.raises(VerificationFailed, match="^consistency proof is empty$"):
        verify_consistency(1, 3, root(1), root(3), [])


def test_proof_for_other_sizes_fails() -> None:
    with pytest.raises(VerificationFailed):
        verify_consistency(1, 5, root(1), root(5), PROOFS[(1, 3)])


def test_log_signature_does_not_open_a_checkpoint_with_another_root() -> None:
    swapped = signed_checkpoint(3).replace(CHECKPOINTS[3]["root"], CHECKPOINTS[5]["root"])
    with pytest.raises(VerificationFailed, match="does not verify"):
        open_note(swapped, [LOG])
