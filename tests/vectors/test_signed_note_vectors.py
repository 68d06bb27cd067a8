"""C2SP signed-note known answers: Go's note package, the C2SP example, sum.golang.org."""

from __future__ import annotations

from typing import Any

import pytest

from rempart.crypto import SigningKey
from rempart.errors import VerificationFailed
from rempart.tlog.checkpoint import Checkpoint, open_checkpoint
from rempart.tlog.note import Note, Signer, Verifier, add_signatures, open_note, sign_note
from tests.conftest import load_vector

VECTORS: dict[str, dict[str, Any]] = {
    v["name"]: v for v in load_vector("signed-note-vectors.json")["vectors"]
}
PETER = VECTORS["go-note-PeterNeumann"]
ENOCH = VECTORS["go-note-EnochRoot"]
C2SP = VECTORS["c2sp-signed-note-example"]
SUMDB = VECTORS["sum.golang.org-production-checkpoint"]

KEY_IDS = {
    "go-note-PeterNeumann": ("PeterNeumann", 0xC74F20A3),
    "go-note-EnochRoot": ("EnochRoot", 0xAF0CFE78),
    "c2sp-signed-note-example": ("example.com/foo", 0x530D903A),
    "sum.golang.org-production-checkpoint": ("sum.golang.org", 0x033DE0AE),
}


def test_every_vector_is_covered() -> None:
    assert set(VECTORS) == set(KEY_IDS)


@pytest.mark.parametrize("name", sorted(KEY_IDS))
def test_vkey_parses_and_formats_back(name: str) -> None:
    vkey = VECTORS[name]["vkey"]
    verifier = Verifier.parse(vkey)
    assert (verifier.name, verifier.key_id) == KEY_IDS[name]
    assert f"{verifier.key_id:08x}" == vkey.split("+")[1]
    assert verifier.vkey() == vkey
    assert Verifier(verifier.name, verifier.public_key).vkey() == vkey


def _signer(vector: dict[str, Any]) -> Signer:
    if "skey" in vector:
        return Signer.parse(vector["skey"])
    return Signer(KEY_IDS[vector["name"]][0], SigningKey(bytes.fromhex(vector["seed_hex"])))


@pytest.mark.parametrize("vector", [PETER, ENOCH], ids=lambda v: v["name"])
def test_signing_reproduces_the_expected_line_byte_for_byte(vector: dict[str, Any]) -> None:
    signer = _signer(vector)
    assert signer.vkey() == vector["vkey"]
    signed = sign_note(vector["text"], [signer])
    expected = (vector["text"] + "\n" + vector["expected_signature_line"] + "\n").encode()
    assert signed == expected
    assert Note.parse(signed).signatures[0].line() == vector["expected_signature_line"] + "\n"
    assert open_note(signed, [Verifier.parse(vector["vkey"])]).text == vector["text"]


def test_go_private_key_formats_back() -> None:
    signer = Signer.parse(PETER["skey"])
    assert signer.skey() == PETER["skey"]
    assert (signer.name, signer.key_id) == KEY_IDS[PETER["name"]]


def test_go_signed_note_is_reproduced_and_opens() -> None:
    assert sign_note(PETER["text"], [_signer(PETER)]).decode() == PETER["signed_note"]
    opened = open_note(PETER["signed_note"].encode(), [Verifier.parse(PETER["vkey"])])
    assert opened.text == PETER["text"]
    assert [v.signature.line() for v in opened.verified] == [PETER["expected_signature_line"] + "\n"]


def test_go_add_signatures_example() -> None:
    """Go's ExampleSign_add_signatures: EnochRoot signs the note PeterNeumann signed."""
    both = add_signatures(PETER["signed_note"].encode(), [_signer(ENOCH)])
    assert both.decode() == (
        PETER["text"]
        + "\n"
        + PETER["expected_signature_line"]
        + "\n"
        + ENOCH["expected_signature_line"]
        + "\n"
    )
    verifiers = [Verifier.parse(PETER["vkey"]), Verifier.parse(ENOCH["vkey"])]
    opened = open_note(both, verifiers)
    assert opened.verifiers == tuple(verifiers)
    only_enoch = open_note(both, verifiers[1:])
    assert [s.name for s in only_enoch.unverified] == ["PeterNeumann"]


def test_a_vector_note_does_not_open_with_the_other_key() -> None:
    with pytest.raises(VerificationFailed, match="no signature from a known key"):
        open_note(PETER["signed_note"].encode(), [Verifier.parse(ENOCH["vkey"])])


def test_c2sp_example_opens() -> None:
    opened = open_note(C2SP["signed_note"].encode(), [Verifier.parse(C2SP["vkey"])])
    assert opened.text == "This is an example message.\n"
    assert Note.parse(C2SP["signed_note"]).to_bytes() == C2SP["signed_note"].encode()


def test_sum_golang_org_checkpoint_opens_though_its_origin_is_not_its_key_name() -> None:
    verifier = Verifier.parse(SUMDB["vkey"])
    opened = open_note(SUMDB["signed_note"].encode(), [verifier])
    checkpoint = Checkpoint.parse(opened.text)
    assert checkpoint.origin == "go.sum database tree" != verifier.name
    assert checkpoint.size == 35225469
    assert checkpoint.root.hex() == ("bede53e8668b097bf21c597d554bef22d478dd76717cb81fb44713c8edde2424")
    assert checkpoint.body() == opened.text
    via = open_checkpoint(SUMDB["signed_note"], origin="go.sum database tree", log=verifier)
    assert via.checkpoint == checkpoint
