"""Checkpoints: the exact body, strict parsing, and opening a signed one."""

from __future__ import annotations

import doctest

import pytest

from rempart.crypto import SigningKey
from rempart.errors import InvalidInput, VerificationFailed
from rempart.tlog import checkpoint as checkpoint_module
from rempart.tlog.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    open_checkpoint,
    sign_checkpoint,
)
from rempart.tlog.note import Note, NoteSignature, Signer, sign_note

ROOT = bytes(range(32))
ROOT_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
ORIGIN = "example.com/log"
LOG = Signer("example.com/log", SigningKey(bytes(range(32))))
OTHER = Signer("example.com/other", SigningKey(bytes(32)))


def test_public_api_is_pinned() -> None:
    assert sorted(checkpoint_module.__all__) == [
        "Checkpoint",
        "MAX_ORIGIN_SIZE",
        "MAX_TREE_SIZE",
        "OpenedCheckpoint",
        "open_checkpoint",
        "sign_checkpoint",
    ]


def test_module_example_runs() -> None:
    result = doctest.testmod(checkpoint_module)
    assert (result.attempted, result.failed) == (3, 0)


def test_body_is_exact() -> None:
    assert Checkpoint(ORIGIN, 20852163, ROOT).body() == f"{ORIGIN}\n20852163\n{ROOT_B64}\n"
    with_ext = Checkpoint(ORIGIN, 0, ROOT, ("ext one", "— two"))
    assert with_ext.body() == f"{ORIGIN}\n0\n{ROOT_B64}\next one\n— two\n"


def test_parse_is_the_inverse_of_body() -> None:
    for cp in [
        Checkpoint(ORIGIN, 0, ROOT),
        Checkpoint("go.sum database tree", 35225469, ROOT),
        Checkpoint(ORIGIN, MAX_TREE_SIZE, ROOT, ("a", "b c")),
    ]:
        assert Checkpoint.parse(cp.body()) == cp


def test_extensions_given_as_a_list_become_a_tuple() -> None:
    cp = Checkpoint(ORIGIN, 1, ROOT, ["x"])  # type: ignore[arg-type]
    assert cp.extensions == ("x",)
    assert cp == Checkpoint(ORIGIN, 1, ROOT, ("x",))


def body(size: str = "5", root: str = ROOT_B64, origin: str = ORIGIN, ext: str = "") -> str:
    return f"{origin}\n{size}\n{root}\n{ext}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (body()[:-1], "^checkpoint text must end with a newline$"),
        ("", "^checkpoint text must end with a newline$"),
        (f"{ORIGIN}\n5\n", "^checkpoint has 2 lines; origin, tree size and root hash are required$"),
        ("\n", "^checkpoint has 1 line; origin"),
        (body(origin=""), "^checkpoint origin is empty$"),
        (body(origin="a\tb"), "^checkpoint origin 'a\\\\tb' contains control character U\\+0009$"),
        (body(origin="o" * 256), "^checkpoint origin is 256 bytes, more than the 255 allowed$"),
        (
            body(size="05"),
            "^checkpoint tree size '05' is not a decimal number without sign or leading zeros$",
        ),
        (body(size="00"), "tree size '00' is not a decimal number"),
        (body(size="+5"), "tree size '\\+5' is not a decimal"),
        (body(size="-5"), "tree size '-5' is not a decimal"),
        (body(size=" 5"), "tree size ' 5' is not a decimal"),
        (body(size="5 "), "tree size '5 ' is not a decimal"),
        (body(size="0x5"), "tree size '0x5' is not a decimal"),
        (body(size="\u0665"), "tree size '\u0665' is not a decimal"),  # ARABIC-INDIC DIGIT FIVE
        (body(size=""), "tree size '' is not a decimal"),
        (
            body(size=str(2**63)),
            "^checkpoint tree size 9223372036854775808 is larger than 9223372036854775807$",
        ),
        (body(size="9" * 5000), "tree size 9999.* is larger than 9223372036854775807$"),
        (body(root="AAEC!"), "^checkpoint root hash 'AAEC!' is not valid base64"),
        (body(root=ROOT_B64[:-1]), "checkpoint root hash .* is not valid base64"),
        (body(root=ROOT_B64[:-2] + "9="), "^checkpoint root hash .* is not canonical base64"),
        (body(root="AAAA"), "^checkpoint root hash is 3 bytes, not 32$"),
        (body(root=""), "^checkpoint root hash is 0 bytes, not 32$"),
        (body(root=ROOT_B64.replace("=", "")), "is not valid base64 \\(Incorrect padding\\)"),
        (body(ext="\n"), "^checkpoint extension line 0 is empty$"),
        (body(ext="a\n\n"), "^checkpoint extension line 1 is empty$"),
        (body(ext="a\rb\n"), "^checkpoint extension line 0 'a\\\\rb' contains control character U\\+000D$"),
    ],
)
def test_malformed_checkpoints(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Checkpoint.parse(text)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"origin": "a\nb"}, "checkpoint origin 'a\\\\nb' contains control character U\\+000A"),
        ({"origin": "x\ud800"}, "checkpoint origin 'x\\\\ud800' is not valid Unicode"),
        ({"size": -1}, "^checkpoint tree size -1 is not in 0..9223372036854775807$"),
        ({"size": 2**63}, "checkpoint tree size 9223372036854775808 is not in"),
        ({"root": ROOT[:31]}, "^checkpoint root hash is 31 bytes, not 32$"),
        ({"extensions": ("ok", "")}, "^checkpoint extension line 1 is empty$"),
        ({"extensions": ("a\nb",)}, "extension line 0 'a\\\\nb' contains control character U\\+000A"),
    ],
)
def test_checkpoint_values_are_checked_when_built(kwargs: dict, message: str) -> None:
    args = {"origin": ORIGIN, "size": 1, "root": ROOT, "extensions": ()} | kwargs
    with pytest.raises(InvalidInput, match=message):
        Checkpoint(**args)


def test_origin_may_be_255_bytes() -> None:
    cp = Checkpoint("é" * 127 + "o", 1, ROOT)
    assert Checkpoint.parse(cp.body()) == cp


# --- signed checkpoints ----------------------------------------------------------------------


def test_sign_and_open() -> None:
    cp = Checkpoint(ORIGIN, 3, ROOT, ("ext",))
    opened = open_checkpoint(sign_checkpoint(cp, [LOG]), origin=ORIGIN, log=LOG.verifier())
    assert opened.checkpoint == cp
    assert opened.note.text == cp.body()
    assert opened.note.signed_by(LOG.verifier())


def test_key_name_may_differ_from_origin() -> None:
    cp = Checkpoint("go.sum database tree", 1, ROOT)
    opened = open_checkpoint(sign_checkpoint(cp, [OTHER]), origin=cp.origin, log=OTHER.verifier())
    assert opened.checkpoint == cp


def test_wrong_origin_is_rejected() -> None:
    data = sign_checkpoint(Checkpoint(ORIGIN, 3, ROOT), [LOG])
    with pytest.raises(
        VerificationFailed,
        match="^checkpoint origin 'example.com/log' is not the expected 'example.com/log2'$",
    ):
        open_checkpoint(data, origin="example.com/log2", log=LOG.verifier())


def test_the_log_must_have_signed() -> None:
    data = sign_checkpoint(Checkpoint(ORIGIN, 3, ROOT), [OTHER])
    with pytest.raises(
        VerificationFailed,
        match=f"^checkpoint is not signed by the log key example.com/log\\+{LOG.key_id:08x}$",
    ):
        open_checkpoint(data, origin=ORIGIN, log=LOG.verifier(), witnesses=[OTHER.verifier()])
    with pytest.raises(VerificationFailed, match="^no signature from a known key"):
        open_checkpoint(data, origin=ORIGIN, log=LOG.verifier())


def test_a_known_witness_signature_must_verify_when_present() -> None:
    cp = Checkpoint(ORIGIN, 3, ROOT)
    impostor = Signer(OTHER.name, SigningKey(bytes([7] * 32)))
    stolen = Note.parse(sign_checkpoint(cp, [impostor])).signatures[0].signature
    # OTHER's name and key id, but a signature by another key.
    forged = sign_checkpoint(cp, [LOG]) + NoteSignature(OTHER.name, OTHER.key_id, stolen).line().encode()
    with pytest.raises(
        VerificationFailed, match="^Ed25519 signature by example.com/other\\+.* does not verify"
    ):
        open_checkpoint(forged, origin=ORIGIN, log=LOG.verifier(), witnesses=[OTHER.verifier()])
    opened = open_checkpoint(forged, origin=ORIGIN, log=LOG.verifier())
    assert [s.name for s in opened.note.unverified] == [OTHER.name]


def test_a_signed_note_that_is_not_a_checkpoint_is_invalid_input() -> None:
    data = sign_note("just a note\n", [LOG])
    with pytest.raises(InvalidInput, match="^checkpoint has 1 line; origin, tree size and root"):
        open_checkpoint(data, origin=ORIGIN, log=LOG.verifier())


def test_tampered_size_fails_verification() -> None:
    data = sign_checkpoint(Checkpoint(ORIGIN, 3, ROOT), [LOG]).replace(b"\n3\n", b"\n4\n")
    with pytest.raises(VerificationFailed, match="does not verify"):
        open_checkpoint(data, origin=ORIGIN, log=LOG.verifier())
