"""Signed notes: keys, parsing, opening and signing, and every way input can be malformed."""

from __future__ import annotations

import base64
import doctest
from dataclasses import dataclass

import pytest

from rempart.crypto import SigningKey
from rempart.errors import InvalidInput, VerificationFailed
from rempart.tlog import note as note_module
from rempart.tlog.note import (
    MAX_NOTE_SIZE,
    MAX_SIGNATURES,
    EncodedKey,
    Note,
    NoteSignature,
    Signer,
    Verifier,
    add_signatures,
    compute_key_id,
    open_note,
    sign_note,
)

EXAMPLE_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
EXAMPLE_PUB = bytes.fromhex("e932791ae6e7a840a46164c904786426d5e7821dd8b29a00d61cae72afdd4da4")
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER = Signer.parse(PETER_SKEY)
ENOCH = Signer("EnochRoot", SigningKey(bytes(32)))
TEXT = "hello\nworld\n"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_public_api_is_pinned() -> None:
    assert sorted(note_module.__all__) == sorted(
        [
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
    )


def test_module_example_runs() -> None:
    result = doctest.testmod(note_module)
    assert result.attempted >= 5
    assert result.failed == 0


# --- keys -----------------------------------------------------------------------------------


def test_key_id_is_sha256_of_name_newline_type_and_key() -> None:
    assert compute_key_id("example.com/foo", 0x01, EXAMPLE_PUB) == 0x530D903A


def test_verifier_parses_and_formats_back() -> None:
    v = Verifier.parse(EXAMPLE_VKEY)
    assert (v.name, v.key_id, v.public_key) == ("example.com/foo", 0x530D903A, EXAMPLE_PUB)
    assert v.vkey() == EXAMPLE_VKEY
    assert Verifier("example.com/foo", EXAMPLE_PUB) == v


def test_verifier_key_whose_base64_holds_a_plus() -> None:
    # transparency-dev/formats note/note_cosigv1_test.go: a type 0x01 key with '+' in its base64.
    vkey = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
    v = Verifier.parse(vkey)
    assert (v.name, v.key_id) == ("TEST", 0x7997405C)
    assert v.vkey() == vkey


def _vkey(name: str, key_id: str, raw: bytes) -> str:
    return f"{name}+{key_id}+{b64(raw)}"


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("", r"found 1 '\+'-separated part$"),
        ("example.com/foo+530d903a", r"found 2 '\+'-separated parts"),
        ("+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "verifier key name is empty"),
        (
            "exa\u00a0mple+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
            "contains space or control character U\\+00A0",
        ),
        (
            "exa mple+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
            "contains space or control character U\\+0020",
        ),
        (
            "example.com/foo+530D903A+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
            "verifier key id '530D903A' is not 8 lowercase hex digits",
        ),
        (
            "example.com/foo+530d903+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
            "verifier key id '530d903' is not 8 lowercase hex digits",
        ),
        ("example.com/foo+530d903a+Aeky!!", "verifier key material 'Aeky!!' is not valid base64"),
        ("example.com/foo+530d903a+AQ", "verifier key material 'AQ' is not valid base64"),
        ("example.com/foo+530d903a+AR==", "is not canonical base64"),
        ("example.com/foo+530d903a+", "verifier key has no key material after its id"),
        (
            _vkey("example.com/foo", "530d903a", b"\x04" + EXAMPLE_PUB),
            r"signature type 0x04, not Ed25519 \(0x01\)",
        ),
        (
            _vkey("example.com/foo", "530d903a", b"\x01" + EXAMPLE_PUB[:31]),
            "holds 31 key bytes, an Ed25519 public key is 32",
        ),
        (
            "example.com/foo+00000000+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
            "key id 00000000 of 'example.com/foo' does not match its key, which has id 530d903a",
        ),
        (
            "example.com/bar+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
            "key id 530d903a of 'example.com/bar' does not match its key",
        ),
    ],
)
def test_malformed_verifier_keys(vkey: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Verifier.parse(vkey)


def test_verifier_needs_a_32_byte_key() -> None:
    with pytest.raises(InvalidInput, match="an Ed25519 public key is 32 bytes, got 31"):
        Verifier("example.com/foo", EXAMPLE_PUB[:31])


def test_signer_parses_go_private_key_and_formats_it_back() -> None:
    assert (PETER.name, PETER.key_id) == ("PeterNeumann", 0xC74F20A3)
    assert PETER.skey() == PETER_SKEY
    assert PETER.vkey() == "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"


def test_signer_repr_never_shows_key_material() -> None:
    seed_b64 = PETER_SKEY.rsplit("+", 1)[1]
    shown = repr(PETER)
    assert shown == "Signer(PeterNeumann+c74f20a3)"
    for secret in (seed_b64, PETER_SKEY, base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7h").hex()):
        assert secret not in shown
    assert "key=" not in repr(EncodedKey.parse(PETER_SKEY, private=True))


def test_generated_signer_round_trips() -> None:
    signer = Signer.generate("example.com/new")
    again = Signer.parse(signer.skey())
    assert again.vkey() == signer.vkey()
    assert open_note(sign_note(TEXT, [again]), [signer.verifier()]).text == TEXT


@pytest.mark.parametrize(
    ("skey", "message"),
    [
        ("PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr", "a private key starts with 'PRIVATE\\+KEY\\+'"),
        ("PRIVATE+KEY+PeterNeumann+c74f20a3", r"found 2 '\+'-separated parts"),
        ("PRIVATE+KEY+PeterNeumann+C74F20A3+AA==", r"^private key id is not 8 lowercase hex digits$"),
        ("PRIVATE+KEY+PeterNeumann+c74f20a3+!!", "^private key material is not valid base64"),
        (
            "PRIVATE+KEY+PeterNeumann+c74f20a3+" + b64(b"\x04" + bytes(32)),
            r"signature type 0x04, not Ed25519 \(0x01\)",
        ),
        (
            "PRIVATE+KEY+PeterNeumann+c74f20a3+" + b64(b"\x01" + bytes(31)),
            "holds 31 key bytes, an Ed25519 seed is 32",
        ),
        (
            "PRIVATE+KEY+PeterNeumann+00000000+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            "key id 00000000 of 'PeterNeumann' does not match its key, which has id c74f20a3",
        ),
    ],
)
def test_malformed_private_keys(skey: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Signer.parse(skey)


def test_private_key_errors_do_not_echo_the_secret() -> None:
    # The id is missing, so the base64 seed lands where the id should be.
    skey = "PRIVATE+KEY+PeterNeumann+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
    with pytest.raises(InvalidInput) as caught:
        Signer.parse(skey)
    assert str(caught.value) == "private key id is not 8 lowercase hex digits"
    skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDF"
    with pytest.raises(InvalidInput) as caught:
        Signer.parse(skey)
    assert "AYEKF" not in str(caught.value)
    assert str(caught.value).startswith("private key material is not valid base64")


def test_signer_name_is_checked() -> None:
    with pytest.raises(InvalidInput, match="signer name 'a\\+b' contains '\\+'"):
        Signer("a+b", SigningKey(bytes(32)))


# --- parsing and opening ----------------------------------------------------------------------


def signed_by(*signers: Signer, text: str = TEXT) -> bytes:
    return sign_note(text, list(signers))


def test_sign_and_open() -> None:
    data = signed_by(PETER)
    opened = open_note(data, [PETER.verifier()])
    assert opened.text == TEXT
    assert opened.signed_by(PETER.verifier())
    assert opened.verifiers == (PETER.verifier(),)
    assert opened.unverified == ()
    assert data == (TEXT + "\n" + opened.verified[0].signature.line()).encode()


def test_signature_covers_text_with_final_newline_and_not_the_blank_line() -> None:
    line = Note.parse(signed_by(PETER)).signatures[0]
    PETER.verifier().verify(TEXT.encode(), line.signature)
    with pytest.raises(
        VerificationFailed, match=r"^Ed25519 signature by PeterNeumann\+c74f20a3 does not verify$"
    ):
        PETER.verifier().verify(TEXT.encode() + b"\n", line.signature)


def test_text_may_hold_blank_lines_and_end_with_one() -> None:
    for text in ["a\n\nb\n", "a\n\n", "\n", "— not a signature\n\n— x\n"]:
        assert open_note(signed_by(PETER, text=text), [PETER.verifier()]).text == text


def test_unknown_keys_are_kept_unverified_and_deduplicated() -> None:
    data = signed_by(PETER, ENOCH)
    enoch_line = Note.parse(data).signatures[1]
    twice = data + enoch_line.line().encode()
    opened = open_note(twice, [PETER.verifier()])
    assert opened.verifiers == (PETER.verifier(),)
    assert opened.unverified == (enoch_line,)


def test_same_name_other_id_is_an_unknown_key() -> None:
    impostor = Signer("PeterNeumann", SigningKey(bytes(32)))
    data = signed_by(impostor)
    with pytest.raises(VerificationFailed) as caught:
        open_note(data, [PETER.verifier()])
    assert str(caught.value) == (
        f"no signature from a known key: the note is signed by PeterNeumann+{impostor.key_id:08x}; "
        "known keys: PeterNeumann+c74f20a3"
    )


def test_same_id_other_name_is_an_unknown_key() -> None:
    line = NoteSignature("PeterNeumanm", PETER.key_id, PETER.sign(TEXT.encode())).line()
    with pytest.raises(VerificationFailed, match="no signature from a known key"):
        open_note(TEXT + "\n" + line, [PETER.verifier()])


def test_no_verifiers_means_no_trust() -> None:
    with pytest.raises(VerificationFailed, match="known keys: none$"):
        open_note(signed_by(PETER), [])


def test_a_bad_signature_from_a_known_key_rejects_the_note() -> None:
    forged = NoteSignature(PETER.name, PETER.key_id, ENOCH.sign(TEXT.encode()))
    data = signed_by(ENOCH) + forged.line().encode()
    with pytest.raises(
        VerificationFailed,
        match=r"^Ed25519 signature by PeterNeumann\+c74f20a3 does not verify$",
    ):
        open_note(data, [PETER.verifier(), ENOCH.verifier()])


def test_every_copy_of_a_known_signature_must_verify() -> None:
    good = Note.parse(signed_by(PETER)).signatures[0]
    bad = NoteSignature(PETER.name, PETER.key_id, bytes(64))
    opened = open_note(TEXT + "\n" + good.line() + good.line(), [PETER.verifier()])
    assert len(opened.verified) == 1
    with pytest.raises(VerificationFailed, match="PeterNeumann\\+c74f20a3 does not verify"):
        open_note(TEXT + "\n" + good.line() + bad.line(), [PETER.verifier()])


def test_a_wrong_length_signature_from_a_known_key_fails_verification() -> None:
    short = NoteSignature(PETER.name, PETER.key_id, bytes(10))
    with pytest.raises(
        VerificationFailed, match="^Ed25519 signature by PeterNeumann\\+c74f20a3 is 10 bytes, not 64$"
    ):
        open_note(TEXT + "\n" + short.line(), [PETER.verifier()])


@dataclass(frozen=True)
class OtherVerifier:
    name: str
    key_id: int

    def verify(self, message: bytes, signature: bytes) -> None:
        return None


def test_two_known_keys_with_the_same_name_and_id_are_refused() -> None:
    clash = OtherVerifier(PETER.name, PETER.key_id)
    with pytest.raises(
        InvalidInput, match="two different known keys share the name and id PeterNeumann\\+c74f20a3"
    ):
        open_note(signed_by(PETER), [PETER.verifier(), clash])
    assert open_note(signed_by(PETER), [PETER.verifier(), PETER.verifier()]).text == TEXT


def sig_line(name: str = "a", payload: str = b64(b"\x00\x00\x00\x01" + bytes(64))) -> str:
    return f"— {name} {payload}\n"


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (
            b"\xffhello\n\n" + sig_line().encode(),
            InvalidInput,
            r"^note is not valid UTF-8 \(bad byte at offset 0\)$",
        ),
        (b"hel\xc3\n\n", InvalidInput, "not valid UTF-8 \\(bad byte at offset 3\\)"),
        (b"\xed\xa0\x80\n\n" + sig_line().encode(), InvalidInput, "not valid UTF-8"),  # a surrogate
        (
            "a\tb\n\n" + sig_line(),
            InvalidInput,
            "^note contains control character U\\+0009 at offset 1; only newline is allowed$",
        ),
        ("ab\r\n\n" + sig_line(), InvalidInput, "control character U\\+000D at offset 2"),
        (
            "hello\n" + sig_line(),
            InvalidInput,
            "^note has no blank line between its text and its signatures$",
        ),
        ("hello\n\n", InvalidInput, "^note has no signature line after its last blank line$"),
        ("hello\n\n" + sig_line() + "\n", InvalidInput, "no signature line after its last blank line"),
        ("hello\n\n" + sig_line()[:-1], InvalidInput, "^note does not end with a newline$"),
        ("hello\n\n- a AAAA\n", InvalidInput, "does not start with an em dash \\(U\\+2014\\) and a space"),
        ("hello\n\n—a AAAA\n", InvalidInput, "does not start with an em dash"),
        ("hello\n\n— aAAAA\n", InvalidInput, "has no space between key name and signature"),
        ("hello\n\n— " + sig_line()[2:] + "garbage\n", InvalidInput, "does not start with an em dash"),
        (
            "hello\n\n— a  " + b64(bytes(68)) + "\n",
            InvalidInput,
            "signature by 'a' ' AAAA.*is not valid base64",
        ),
        ("hello\n\n— a !!!!\n", InvalidInput, "^signature by 'a' '!!!!' is not valid base64"),
        (
            "hello\n\n— a \n",
            InvalidInput,
            "signature by 'a' is 0 bytes; a 4-byte key id and a signature of at least 1 byte are needed",
        ),
        ("hello\n\n— a AAAAAA==\n", InvalidInput, "signature by 'a' is 4 bytes"),
        ("hello\n\n— a+b AAAAAAA=\n", InvalidInput, "signature key name 'a\\+b' contains '\\+'"),
        ("hello\n\n—  AAAAAAA=\n", InvalidInput, "signature key name is empty"),
        ("hello\n\n— a\u2003b AAAAAAA=\n", InvalidInput, "contains space or control character U\\+2003"),
        (
            "hello\n\n— a AAAAAAB=\n",
            VerificationFailed,
            "^signature by 'a' 'AAAAAAB=' is not canonical base64",
        ),
        (
            "hello\n\n" + sig_line() * (MAX_SIGNATURES + 1),
            InvalidInput,
            "^note has 101 signature lines, more than the 100 allowed$",
        ),
        (
            "x" * MAX_NOTE_SIZE + "\n\n" + sig_line(),
            InvalidInput,
            r"^note is 1000\d{3} bytes, more than the 1000000 allowed$",
        ),
        ("hello \ud800\n\n" + sig_line(), InvalidInput, "^note has a lone surrogate at offset 6$"),
    ],
)
def test_malformed_notes(data: bytes | str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Note.parse(data)
    with pytest.raises(error, match=message):
        open_note(data, [PETER.verifier()])


def test_a_note_with_exactly_100_signatures_parses() -> None:
    note = Note.parse("hello\n\n" + sig_line() * MAX_SIGNATURES)
    assert len(note.signatures) == MAX_SIGNATURES


def test_note_round_trips() -> None:
    data = signed_by(PETER, ENOCH, text="x\n\ny\n")
    assert Note.parse(data).to_bytes() == data
    assert Note.parse(data.decode()) == Note.parse(data)


def test_note_value_is_checked_when_built() -> None:
    sig = NoteSignature("a", 1, b"s")
    with pytest.raises(InvalidInput, match="a signed note has at least one signature line"):
        Note("x\n", ())
    with pytest.raises(InvalidInput, match="note text must end with a newline"):
        Note("x", (sig,))
    with pytest.raises(InvalidInput, match="note has 101 signatures, more than the 100 allowed"):
        Note("x\n", (sig,) * 101)
    with pytest.raises(InvalidInput, match="key id 4294967296 is not a 32-bit unsigned number"):
        NoteSignature("a", 1 << 32, b"s")
    with pytest.raises(InvalidInput, match=r"signature by a\+00000001 is empty"):
        NoteSignature("a", 1, b"")
    with pytest.raises(InvalidInput, match="note would be 1000\\d{3} bytes"):
        Note("x" * MAX_NOTE_SIZE + "\n", (sig,)).to_bytes()


# --- signing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no newline", "^note text must end with a newline$"),
        ("", "^note text must end with a newline$"),
        ("a\x00b\n", "^note text contains control character U\\+0000 at offset 1; only newline"),
        ("tab\there\n", "control character U\\+0009 at offset 3"),
        ("x\ud800\n", "^note text has a lone surrogate at offset 1$"),
    ],
)
def test_sign_note_refuses_a_text_that_cannot_be_a_note(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        sign_note(text, [PETER])


def test_sign_note_needs_signers_and_refuses_duplicates() -> None:
    with pytest.raises(InvalidInput, match="signing a note needs at least one signer"):
        sign_note(TEXT, [])
    with pytest.raises(InvalidInput, match="two signers share the key PeterNeumann\\+c74f20a3"):
        sign_note(TEXT, [PETER, Signer.parse(PETER_SKEY)])


def test_add_signatures_keeps_existing_lines_and_appends() -> None:
    alone = signed_by(PETER)
    both = add_signatures(alone, [ENOCH])
    assert both == signed_by(PETER, ENOCH)
    assert both.startswith(alone)
    opened = open_note(both, [PETER.verifier(), ENOCH.verifier()])
    assert opened.verifiers == (PETER.verifier(), ENOCH.verifier())


def test_add_signatures_does_not_duplicate_a_key() -> None:
    both = signed_by(PETER, ENOCH)
    again = add_signatures(both, [PETER])
    assert [s.name for s in Note.parse(again).signatures] == ["EnochRoot", "PeterNeumann"]
    assert Note.parse(again).text == TEXT


def test_add_signatures_keeps_lines_from_unknown_keys_byte_for_byte() -> None:
    foreign = NoteSignature("other.example/k", 0xDEADBEEF, b"\x01\x02\x03")
    data = (TEXT + "\n" + foreign.line()).encode()
    out = add_signatures(data, [PETER])
    assert out.startswith(data)
    assert open_note(out, [PETER.verifier()]).unverified == (foreign,)


def test_add_signatures_rejects_a_malformed_note() -> None:
    with pytest.raises(InvalidInput, match="note has no blank line"):
        add_signatures(b"just text\n", [PETER])
