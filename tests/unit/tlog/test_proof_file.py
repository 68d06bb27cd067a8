"""Offline proof files: the exact format, strict parsing, and verification end to end."""

from __future__ import annotations

import base64
import doctest

import pytest

from rempart.crypto import SigningKey
from rempart.errors import InvalidInput, VerificationFailed
from rempart.tlog import proof_file as proof_file_module
from rempart.tlog.checkpoint import Checkpoint, sign_checkpoint
from rempart.tlog.cosignature import Cosigner
from rempart.tlog.merkle import inclusion_proof, leaf_hash
from rempart.tlog.note import Signer, add_signatures
from rempart.tlog.proof_file import MAX_PROOF_HASHES, ProofFile, verify_proof_file
from tests.treeutil import DictTree

ORIGIN = "example.com/fancylog"
LOG = Signer(ORIGIN, SigningKey(bytes([3] * 32)))
W1, W2 = (Cosigner(f"witness{i}.example", SigningKey(bytes([40 + i] * 32))) for i in (1, 2))
ENTRIES = [f"entry {i}".encode() for i in range(7)]
TREE = DictTree(ENTRIES)
SIZE = len(ENTRIES)
CHECKPOINT = Checkpoint(ORIGIN, SIZE, TREE.frontier.root())
NOTE = add_signatures(sign_checkpoint(CHECKPOINT, [LOG]), [W1.at(1700000000), W2.at(1700000001)])


def proof_for(index: int, extra: bytes | None = None) -> ProofFile:
    return ProofFile(index, tuple(inclusion_proof(index, SIZE, TREE)), NOTE, extra)


def verify(data: bytes | str | ProofFile, index: int, **overrides: object):  # type: ignore[no-untyped-def]
    kwargs: dict = {
        "origin": ORIGIN,
        "log": LOG.verifier(),
        "witnesses": [W1.verifier(), W2.verifier()],
        "threshold": 2,
        "entry": ENTRIES[index],
    } | overrides
    return verify_proof_file(data, **kwargs)


def test_public_api_is_pinned() -> None:
    assert sorted(proof_file_module.__all__) == [
        "MAX_PROOF_HASHES",
        "PROOF_HEADER",
        "ProofFile",
        "VerifiedProof",
        "verify_proof_file",
    ]


def test_module_example_runs() -> None:
    result = doctest.testmod(proof_file_module)
    assert (result.attempted, result.failed) == (7, 0)


def test_format_is_exact() -> None:
    hashes = inclusion_proof(5, SIZE, TREE)
    expected = (
        "c2sp.org/tlog-proof@v1\n"
        "extra aGk=\n"
        "index 5\n" + "".join(base64.b64encode(h).decode() + "\n" for h in hashes) + "\n"
    ).encode() + NOTE
    assert proof_for(5, extra=b"hi").to_bytes() == expected
    no_extra = proof_for(5).to_bytes()
    assert no_extra == expected.replace(b"extra aGk=\n", b"")
    assert no_extra.startswith(b"c2sp.org/tlog-proof@v1\nindex 5\n")


def test_an_empty_proof_for_a_one_leaf_tree() -> None:
    cp = Checkpoint(ORIGIN, 1, leaf_hash(b"only"))
    pf = ProofFile(0, (), sign_checkpoint(cp, [LOG]))
    data = pf.to_bytes()
    assert data.startswith(b"c2sp.org/tlog-proof@v1\nindex 0\n\nexample.com/fancylog\n1\n")
    result = verify_proof_file(
        data, entry=b"only", origin=ORIGIN, log=LOG.verifier(), witnesses=(), threshold=0
    )
    assert (result.index, result.checkpoint, result.cosignatures) == (0, cp, ())


@pytest.mark.parametrize("index", range(SIZE))
def test_parse_round_trips_and_verifies(index: int) -> None:
    pf = proof_for(index, extra=b"\x00opaque")
    assert ProofFile.parse(pf.to_bytes()) == pf
    assert ProofFile.parse(pf.to_bytes().decode()) == pf
    result = verify(pf.to_bytes(), index)
    assert result.index == index
    assert result.checkpoint == CHECKPOINT
    assert [c.name for c in result.cosignatures] == ["witness1.example", "witness2.example"]
    assert [c.timestamp for c in result.cosignatures] == [1700000000, 1700000001]
    assert result.extra == b"\x00opaque"


def test_verify_with_a_leaf_hash_or_a_parsed_file() -> None:
    pf = proof_for(2)
    assert verify(pf, 2, entry=None, leaf_hash=leaf_hash(ENTRIES[2])).index == 2


def test_wrong_entry_fails() -> None:
    with pytest.raises(
        VerificationFailed, match="inclusion proof for leaf 2 in tree of size 7 leads to root"
    ):
        verify(proof_for(2).to_bytes(), 3)


def test_wrong_index_fails() -> None:
    pf = proof_for(2)
    moved = ProofFile(3, pf.proof, pf.checkpoint)
    with pytest.raises(VerificationFailed, match="inclusion proof for leaf 3"):
        verify(moved, 2)


def test_index_beyond_the_checkpoint_fails() -> None:
    beyond = ProofFile(SIZE, proof_for(0).proof, NOTE)
    with pytest.raises(VerificationFailed, match="leaf index 7 is not in a tree of size 7"):
        verify(beyond, 0)


def test_tampered_proof_hash_fails() -> None:
    pf = proof_for(4)
    bad = ProofFile(4, (pf.proof[0], bytes(32), *pf.proof[2:]), NOTE)
    with pytest.raises(VerificationFailed, match="leads to root"):
        verify(bad, 4)


def test_checkpoint_must_be_signed_by_the_log_for_the_origin_and_cosigned() -> None:
    data = proof_for(1).to_bytes()
    stranger = Signer(ORIGIN, SigningKey(bytes([5] * 32)))
    with pytest.raises(VerificationFailed, match="no signature from a known key"):
        verify(data, 1, log=stranger.verifier(), witnesses=(), threshold=0)
    with pytest.raises(VerificationFailed, match="checkpoint is not signed by the log key"):
        verify(data, 1, log=stranger.verifier())
    with pytest.raises(VerificationFailed, match="is not the expected 'example.com/other'"):
        verify(data, 1, origin="example.com/other")
    only_log = ProofFile(1, proof_for(1).proof, sign_checkpoint(CHECKPOINT, [LOG]))
    with pytest.raises(VerificationFailed, match="has 0 of the 1 required cosignatures"):
        verify(only_log, 1, threshold=1)
    assert verify(only_log, 1, witnesses=(), threshold=0).cosignatures == ()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"entry": None}, "^give exactly one of entry and leaf_hash$"),
        ({"leaf_hash": leaf_hash(b"x")}, "^give exactly one of entry and leaf_hash$"),
        ({"threshold": 0}, "^threshold 0 would ignore the witness keys given; pass witnesses=\\(\\)"),
        ({"threshold": 3}, "cosignature threshold 3 is not in 1..2"),
        ({"witnesses": (), "threshold": 1}, "a cosignature threshold needs at least one witness key"),
    ],
)
def test_bad_verification_arguments(overrides: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        verify(proof_for(1), 1, **overrides)


def test_a_short_leaf_hash_fails() -> None:
    with pytest.raises(VerificationFailed, match="leaf hash is 31 bytes"):
        verify(proof_for(1), 1, entry=None, leaf_hash=leaf_hash(ENTRIES[1])[:31])


H = base64.b64encode(bytes(32)).decode()
CP = NOTE.decode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "^proof file has no empty line between the inclusion proof and the checkpoint$"),
        # Without its own empty line, the note's blank line ends the proof: the checkpoint
        # lines are then read as hashes.
        (
            "c2sp.org/tlog-proof@v1\nindex 0\n" + CP,
            "^inclusion proof hash 0 'example.com/fancylog' is not valid base64",
        ),
        (
            f"c2sp.org/tlog-proof@v2\nindex 0\n\n{CP}",
            "^proof file must start with the line 'c2sp.org/tlog-proof@v1', not 'c2sp.org/tlog-proof@v2'$",
        ),
        (f"\nc2sp.org/tlog-proof@v1\nindex 0\n\n{CP}", "must start with the line"),
        (
            f"c2sp.org/tlog-proof@v1\n\n{CP}",
            "^proof file needs an 'index <n>' line after its header \\(and extra line\\), found nothing$",
        ),
        (f"c2sp.org/tlog-proof@v1\n{H}\n\n{CP}", "needs an 'index <n>' line .*, found 'AAAA"),
        (f"c2sp.org/tlog-proof@v1\nextra\nindex 0\n\n{CP}", "needs an 'index <n>' line .*, found 'extra'"),
        (
            f"c2sp.org/tlog-proof@v1\nindex 0\nextra aGk=\n\n{CP}",
            "^inclusion proof hash 0 'extra aGk=' is not valid base64",
        ),
        (
            f"c2sp.org/tlog-proof@v1\nextra \nindex 0\n\n{CP}",
            "^proof file extra line is empty; the spec says to omit it instead$",
        ),
        (
            f"c2sp.org/tlog-proof@v1\nextra !!\nindex 0\n\n{CP}",
            "^proof file extra data '!!' is not valid base64",
        ),
        (
            f"c2sp.org/tlog-proof@v1\nextra aGl=\nindex 0\n\n{CP}",
            "^proof file extra data 'aGl=' is not canonical base64",
        ),
        (
            f"c2sp.org/tlog-proof@v1\nindex 01\n\n{CP}",
            "^proof file index '01' is not a decimal number without sign or leading zeros$",
        ),
        (f"c2sp.org/tlog-proof@v1\nindex -1\n\n{CP}", "proof file index '-1' is not a decimal"),
        (f"c2sp.org/tlog-proof@v1\nindex +1\n\n{CP}", "proof file index '\\+1' is not a decimal"),
        (f"c2sp.org/tlog-proof@v1\nindex  1\n\n{CP}", "proof file index ' 1' is not a decimal"),
        (f"c2sp.org/tlog-proof@v1\nindex\n\n{CP}", "needs an 'index <n>' line"),
        (
            f"c2sp.org/tlog-proof@v1\nindex 9223372036854775807\n\n{CP}",
            "proof file index 9223372036854775807 is larger than 9223372036854775806",
        ),
        (
            f"c2sp.org/tlog-proof@v1\nindex 0\n{H[:-1]}\n\n{CP}",
            "^inclusion proof hash 0 .* is not valid base64",
        ),
        (
            f"c2sp.org/tlog-proof@v1\nindex 0\n{H}\nAAAA\n\n{CP}",
            "^inclusion proof hash 1 is 3 bytes, not 32$",
        ),
        (
            f"c2sp.org/tlog-proof@v1\nindex 0\n{H[:-2]}B=\n\n{CP}",
            "^inclusion proof hash 0 .* is not canonical base64",
        ),
        (
            "c2sp.org/tlog-proof@v1\nindex 0\n" + f"{H}\n" * (MAX_PROOF_HASHES + 1) + f"\n{CP}",
            "^inclusion proof has 64 hashes, more than 63$",
        ),
        (
            "c2sp.org/tlog-proof@v1\r\nindex 0\n\n" + CP,
            "^proof file contains control character U\\+000D at offset 22",
        ),
        ("c2sp.org/tlog-proof@v1\nindex 0\n\n", "^proof file has no checkpoint after its empty line$"),
        (
            "c2sp.org/tlog-proof@v1\nindex 0\n\nnot a note\n",
            "^note has no blank line between its text and its signatures$",
        ),
    ],
)
def test_malformed_proof_files(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        ProofFile.parse(text)
    with pytest.raises(InvalidInput, match=message):
        verify(text.encode(), 0)


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(InvalidInput, match="^proof file is not valid UTF-8 \\(bad byte at offset 0\\)$"):
        ProofFile.parse(b"\xc0" + proof_for(0).to_bytes())


def test_oversized_file_is_refused() -> None:
    with pytest.raises(InvalidInput, match="^proof file is \\d+ bytes, more than the 1004096 allowed$"):
        ProofFile.parse(b"x" * 1_004_097)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"index": -1}, "^proof index -1 is not in 0..9223372036854775806$"),
        ({"proof": (bytes(31),)}, "^inclusion proof hash 0 is 31 bytes, not 32$"),
        ({"proof": (bytes(32),) * 64}, "^inclusion proof has 64 hashes, more than 63$"),
        ({"extra": b""}, "^proof extra data is empty; leave it out \\(None\\) instead$"),
        ({"checkpoint": b"not a note"}, "^note has no blank line"),
        ({"checkpoint": b""}, "^proof file has no checkpoint after its empty line$"),
    ],
)
def test_proof_file_values_are_checked_when_built(kwargs: dict, message: str) -> None:
    args = {"index": 0, "proof": (), "checkpoint": NOTE, "extra": None} | kwargs
    with pytest.raises(InvalidInput, match=message):
        ProofFile(**args)
