"""Properties of the C2SP text formats: parse∘format is the identity, and no edit goes unnoticed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rempart.crypto import SigningKey
from rempart.errors import InvalidInput, VerificationFailed
from rempart.tlog.checkpoint import MAX_ORIGIN_SIZE, MAX_TREE_SIZE, Checkpoint
from rempart.tlog.cosignature import CosignatureVerifier, Cosigner
from rempart.tlog.note import (
    EncodedKey,
    Note,
    NoteSignature,
    Signer,
    Verifier,
    open_note,
    sign_note,
)
from rempart.tlog.proof_file import MAX_PROOF_HASHES, ProofFile

CONTROL = [chr(i) for i in range(0x20)]

# Key names: no '+', no Unicode space, no control character, no surrogate.
names = st.text(
    st.characters(exclude_categories=("Cs", "Zs", "Zl", "Zp", "Cc"), exclude_characters="+"),
    min_size=1,
    max_size=40,
).filter(lambda s: not any(c.isspace() for c in s))
# One line of note text: anything but control characters and surrogates.
lines = st.text(st.characters(exclude_categories=("Cs",), exclude_characters=CONTROL), max_size=60)
texts = st.lists(lines, min_size=1, max_size=6).map(lambda ls: "\n".join(ls) + "\n")
key_ids = st.integers(0, 0xFFFFFFFF)
keys32 = st.binary(min_size=32, max_size=32)

note_signatures = st.builds(NoteSignature, names, key_ids, st.binary(min_size=1, max_size=100))
notes = st.builds(Note, texts, st.lists(note_signatures, min_size=1, max_size=5).map(tuple))

origins = lines.filter(lambda s: 0 < len(s.encode()) <= MAX_ORIGIN_SIZE)
checkpoints = st.builds(
    Checkpoint,
    origins,
    st.integers(0, MAX_TREE_SIZE),
    keys32,
    st.lists(lines.filter(bool), max_size=3).map(tuple),
)

SIGNER = Signer("example.com/log", SigningKey(bytes(range(32))))
WITNESS = Cosigner("witness.example/w", SigningKey(bytes(range(32, 64))))


@given(names, keys32)
def test_vkey_parse_format_identity(name: str, public_key: bytes) -> None:
    for cls in (Verifier, CosignatureVerifier):
        verifier = cls(name, public_key)
        vkey = verifier.vkey()
        assert cls.parse(vkey) == verifier
        assert cls.parse(vkey).vkey() == vkey


@given(names, key_ids, st.integers(0, 255), st.binary(max_size=64))
def test_encoded_key_parse_format_identity(name: str, key_id: int, alg: int, key: bytes) -> None:
    encoded = EncodedKey(name, key_id, alg, key)
    for private in (False, True):
        assert EncodedKey.parse(encoded.format(private=private), private=private) == encoded


@given(names, keys32)
def test_private_key_parse_format_identity(name: str, seed: bytes) -> None:
    signer = Signer(name, SigningKey(seed))
    assert Signer.parse(signer.skey()).skey() == signer.skey()
    cosigner = Cosigner(name, SigningKey(seed))
    assert Cosigner.parse(cosigner.skey()).skey() == cosigner.skey()
    assert seed.hex() not in repr(signer) + repr(cosigner)


@given(checkpoints)
def test_checkpoint_parse_format_identity(checkpoint: Checkpoint) -> None:
    assert Checkpoint.parse(checkpoint.body()) == checkpoint


@given(note_signatures)
def test_signature_line_parse_format_identity(sig: NoteSignature) -> None:
    line = sig.line()
    assert line.endswith("\n")
    assert NoteSignature.parse_line(line[:-1]) == sig


@given(notes)
def test_note_parse_format_identity(note: Note) -> None:
    data = note.to_bytes()
    assert Note.parse(data) == note
    assert Note.parse(data).to_bytes() == data


@given(texts)
def test_signed_notes_open_to_their_text(text: str) -> None:
    assert open_note(sign_note(text, [SIGNER]), [SIGNER.verifier()]).text == text


@given(
    st.integers(0, MAX_TREE_SIZE - 1),
    st.lists(keys32, max_size=MAX_PROOF_HASHES).map(tuple),
    st.none() | st.binary(min_size=1, max_size=80),
    notes,
)
def test_proof_file_parse_format_identity(
    index: int, proof: tuple[bytes, ...], extra: bytes | None, note: Note
) -> None:
    pf = ProofFile(index, proof, note.to_bytes(), extra)
    assert ProofFile.parse(pf.to_bytes()) == pf
    assert ProofFile.parse(pf.to_bytes()).to_bytes() == pf.to_bytes()


# --- every single-byte change is caught -------------------------------------------------------

CHECKPOINT = Checkpoint("example.com/log", 12345, bytes(range(32)), ("ext",))
SIGNED = sign_note(CHECKPOINT.body(), [SIGNER])
COSIGNED = sign_note(CHECKPOINT.body(), [SIGNER, WITNESS.at(1700000000)])
KNOWN = [SIGNER.verifier(), WITNESS.verifier()]


def test_the_unmodified_notes_open() -> None:
    assert open_note(SIGNED, KNOWN).verifiers == (SIGNER.verifier(),)
    assert open_note(COSIGNED, KNOWN).verifiers == tuple(KNOWN)


def replacements(data: bytes, position: int) -> list[bytes]:
    original = data[position]
    values = {original ^ 0x01, original ^ 0x20, original ^ 0x80, 0x41, 0x0A, 0x20} - {original}
    return [data[:position] + bytes([v]) + data[position + 1 :] for v in sorted(values)]


def rejected(data: bytes) -> None:
    with pytest.raises((InvalidInput, VerificationFailed)) as caught:
        open_note(data, KNOWN)
    assert str(caught.value)


@pytest.mark.parametrize("position", range(len(SIGNED)))
def test_every_byte_replacement_is_rejected(position: int) -> None:
    for mutated in replacements(SIGNED, position):
        rejected(mutated)


@pytest.mark.parametrize("position", range(len(SIGNED)))
def test_every_byte_deletion_is_rejected(position: int) -> None:
    rejected(SIGNED[:position] + SIGNED[position + 1 :])


@pytest.mark.parametrize("position", range(len(COSIGNED)))
def test_no_byte_change_keeps_both_signatures(position: int) -> None:
    """With two signatures, a changed name or key id turns one into an unknown key's, which
    the spec says to ignore: the note may still open, but never as signed by both."""
    for mutated in [*replacements(COSIGNED, position), COSIGNED[:position] + COSIGNED[position + 1 :]]:
        try:
            opened = open_note(mutated, KNOWN)
        except (InvalidInput, VerificationFailed):
            continue
        assert len(opened.verified) == 1
        assert opened.text == CHECKPOINT.body()


@given(texts, st.data())
def test_any_single_byte_mutation_of_a_signed_note_is_rejected(text: str, data: st.DataObject) -> None:
    signed = sign_note(text, [SIGNER])
    position = data.draw(st.integers(0, len(signed) - 1), label="position")
    value = data.draw(st.integers(0, 255).filter(lambda b: b != signed[position]), label="value")
    mutated = signed[:position] + bytes([value]) + signed[position + 1 :]
    with pytest.raises((InvalidInput, VerificationFailed)):
        open_note(mutated, [SIGNER.verifier()])
