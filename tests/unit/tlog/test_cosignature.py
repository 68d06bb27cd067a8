"""Witness cosignatures: keys, the signed message, signing with a given time, and k-of-n."""

from __future__ import annotations

import base64
import doctest

import pytest

from rempart.crypto import SigningKey, verify_ed25519
from rempart.errors import InvalidInput, VerificationFailed
from rempart.tlog import cosignature as cosignature_module
from rempart.tlog.checkpoint import Checkpoint, sign_checkpoint
from rempart.tlog.cosignature import (
    COSIGNATURE_ALGORITHM,
    MAX_TIMESTAMP,
    Cosignature,
    CosignatureVerifier,
    Cosigner,
    cosigned_message,
    open_cosigned_checkpoint,
)
from rempart.tlog.note import (
    Note,
    NoteSignature,
    Signer,
    Verifier,
    add_signatures,
    compute_key_id,
    open_note,
)

ORIGIN = "example.com/behind-the-sofa"
CHECKPOINT = Checkpoint(ORIGIN, 20852163, base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="))
LOG = Signer(ORIGIN, SigningKey(bytes([1] * 32)))
W1, W2, W3 = (Cosigner(f"witness.example/w{i}", SigningKey(bytes([10 + i] * 32))) for i in (1, 2, 3))
T = 1679315147


def test_public_api_is_pinned() -> None:
    assert sorted(cosignature_module.__all__) == [
        "COSIGNATURE_ALGORITHM",
        "COSIGNATURE_SIZE",
        "Cosignature",
        "CosignatureVerifier",
        "CosignedCheckpoint",
        "Cosigner",
        "MAX_TIMESTAMP",
        "cosigned_message",
        "open_cosigned_checkpoint",
    ]


def test_module_example_runs() -> None:
    result = doctest.testmod(cosignature_module)
    assert (result.attempted, result.failed) == (5, 0)


# --- keys ------------------------------------------------------------------------------------


def test_key_id_uses_type_0x04() -> None:
    v = W1.verifier()
    assert v.key_id == compute_key_id(W1.name, 0x04, v.public_key)
    assert v.key_id != Verifier(W1.name, v.public_key).key_id
    assert v.vkey().startswith(f"{W1.name}+{v.key_id:08x}+B")  # base64 of 0x04 starts with "B"
    assert base64.b64decode(v.vkey().split("+", 2)[2])[0] == COSIGNATURE_ALGORITHM


def test_go_cosignature_vkey_parses_and_formats_back() -> None:
    # transparency-dev/formats note/note_cosigv1_test.go: a native 0x04 verifier key.
    vkey = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
    v = CosignatureVerifier.parse(vkey)
    assert (v.name, v.key_id) == ("remora.n621.de", 0xDA77ADE7)
    assert v.vkey() == vkey


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        (
            "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
            r"signature type 0x01, not Ed25519 cosignature/v1 \(0x04\)",
        ),
        ("w+00000000+" + base64.b64encode(b"\x04" + bytes(31)).decode(), "holds 31 key bytes"),
        (
            "w+00000000+" + base64.b64encode(b"\x04" + bytes(32)).decode(),
            "key id 00000000 of 'w' does not match its key",
        ),
        ("w+0000000+BA==", "verifier key id '0000000' is not 8 lowercase hex digits"),
        ("w 1+00000000+BA==", "verifier key name 'w 1' contains space"),
    ],
)
def test_malformed_cosignature_keys(vkey: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        CosignatureVerifier.parse(vkey)


def test_cosigner_private_key_round_trips_and_hides_the_key() -> None:
    again = Cosigner.parse(W1.skey())
    assert again.vkey() == W1.vkey()
    assert W1.skey().startswith(f"PRIVATE+KEY+witness.example/w1+{W1.key_id:08x}+B")
    assert repr(W1) == f"Cosigner(witness.example/w1+{W1.key_id:08x})"
    assert W1.skey().rsplit("+", 1)[1] not in repr(W1)
    assert Cosigner.generate("w").verifier().name == "w"


def test_an_ed25519_note_key_is_not_a_cosigner_key() -> None:
    with pytest.raises(InvalidInput, match=r"has signature type 0x01, not Ed25519 cosignature/v1"):
        Cosigner.parse(LOG.skey())


# --- the signed message and the signature line ------------------------------------------------


def test_signed_message_is_header_time_and_body() -> None:
    assert cosigned_message(CHECKPOINT.body(), T) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )
    assert cosigned_message("o\n0\nx\n", 0).startswith(b"cosignature/v1\ntime 0\n")


def test_cosign_signs_that_message_with_the_given_time() -> None:
    cosig = W1.cosign(CHECKPOINT, timestamp=T)
    assert (cosig.name, cosig.key_id, cosig.timestamp) == (W1.name, W1.key_id, T)
    message = b"cosignature/v1\ntime 1679315147\n" + CHECKPOINT.body().encode()
    verify_ed25519(W1.verifier().public_key, cosig.signature, message)  # independent check


def test_signature_line_payload_is_key_id_timestamp_signature() -> None:
    cosig = W1.cosign(CHECKPOINT, timestamp=T)
    line = cosig.line()
    assert line.startswith(f"— {W1.name} ") and line.endswith("\n")
    raw = base64.b64decode(line.split(" ")[2])
    assert raw == W1.key_id.to_bytes(4, "big") + T.to_bytes(8, "big") + cosig.signature
    assert len(raw) == 4 + 8 + 64
    assert Cosignature.from_note_signature(NoteSignature.parse_line(line[:-1])) == cosig


def test_go_cosignature_timestamp_layout() -> None:
    # transparency-dev/formats note/note_cosigv1_test.go TestCosignatureTimestamp.
    payload = (
        "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEH"
        "WWOworDcFiEBYJXORmnFBOBA=="
    )
    cosig = Cosignature.from_note_signature(NoteSignature.parse_line(f"— w {payload}"))
    assert (cosig.key_id, cosig.timestamp) == (0x646846B9, 1727964367)


def test_cosignature_covers_extension_lines() -> None:
    cp = Checkpoint(ORIGIN, 1, bytes(32), ("extension",))
    data = add_signatures(sign_checkpoint(cp, [LOG]), [W1.at(T)])
    assert open_note(data, [W1.verifier()]).text == cp.body()
    tampered = data.replace(b"extension", b"extensioN")
    with pytest.raises(VerificationFailed, match="does not verify"):
        open_note(tampered, [W1.verifier()])


def test_an_ed25519_note_verifier_cannot_open_a_cosignature() -> None:
    data = add_signatures(sign_checkpoint(CHECKPOINT, [LOG]), [W1.at(T)])
    plain = Verifier(W1.name, W1.verifier().public_key)
    with pytest.raises(VerificationFailed, match="no signature from a known key"):
        open_note(data, [plain])


def cosigned_line(cosigner: Cosigner, payload: bytes) -> bytes:
    return NoteSignature(cosigner.name, cosigner.key_id, payload).line().encode()


def test_cosignature_verifier_failures() -> None:
    signed = sign_checkpoint(CHECKPOINT, [LOG])
    good = W1.cosign(CHECKPOINT, timestamp=T)
    cases = [
        (good.to_note_signature().signature[:-1], "is 71 bytes after its key id, expected 72"),
        ((2**63).to_bytes(8, "big") + good.signature, "has timestamp 9223372036854775808, above"),
        ((T + 1).to_bytes(8, "big") + good.signature, f"for time {T + 1} does not verify"),
        (T.to_bytes(8, "big") + bytes(64), f"for time {T} does not verify"),
    ]
    for payload, message in cases:
        with pytest.raises(VerificationFailed, match=message):
            open_note(signed + cosigned_line(W1, payload), [LOG.verifier(), W1.verifier()])


@pytest.mark.parametrize("timestamp", [-1, MAX_TIMESTAMP + 1])
def test_timestamps_outside_the_spec_are_refused(timestamp: int) -> None:
    message = f"cosignature timestamp {timestamp} is not in 0..9223372036854775807"
    with pytest.raises(InvalidInput, match=message):
        W1.cosign(CHECKPOINT, timestamp=timestamp)
    with pytest.raises(InvalidInput, match=message):
        W1.at(timestamp)
    with pytest.raises(InvalidInput, match=message):
        cosigned_message(CHECKPOINT.body(), timestamp)


def test_largest_timestamp_is_fine() -> None:
    data = add_signatures(sign_checkpoint(CHECKPOINT, [LOG]), [W1.at(MAX_TIMESTAMP)])
    opened = open_cosigned_checkpoint(
        data, origin=ORIGIN, log=LOG.verifier(), witnesses=[W1.verifier()], threshold=1
    )
    assert opened.cosignatures[0].timestamp == MAX_TIMESTAMP


def test_malformed_cosignature_values() -> None:
    with pytest.raises(InvalidInput, match="is 5 bytes after its key id, expected 72"):
        Cosignature.from_note_signature(NoteSignature("w", 1, b"12345"))
    with pytest.raises(InvalidInput, match="an Ed25519 signature is 64 bytes, got 63"):
        Cosignature("w", 1, T, bytes(63))


# --- k of n --------------------------------------------------------------------------------------

WITNESSES = [W1.verifier(), W2.verifier(), W3.verifier()]


def cosigned_by(*cosigners: Cosigner, log: bool = True) -> bytes:
    first = [LOG] if log else []
    return sign_checkpoint(CHECKPOINT, [*first, *(c.at(T + i) for i, c in enumerate(cosigners))])


def open_k_of_n(data: bytes, threshold: int, witnesses: list[CosignatureVerifier] = WITNESSES):  # type: ignore[no-untyped-def]
    return open_cosigned_checkpoint(
        data, origin=ORIGIN, log=LOG.verifier(), witnesses=witnesses, threshold=threshold
    )


@pytest.mark.parametrize(
    ("cosigners", "threshold", "expected"),
    [
        ((W1, W2, W3), 3, ("witness.example/w1", "witness.example/w2", "witness.example/w3")),
        ((W1, W2, W3), 1, ("witness.example/w1", "witness.example/w2", "witness.example/w3")),
        ((W3, W1), 2, ("witness.example/w1", "witness.example/w3")),
        ((W2,), 1, ("witness.example/w2",)),
    ],
)
def test_enough_cosignatures(
    cosigners: tuple[Cosigner, ...], threshold: int, expected: tuple[str, ...]
) -> None:
    opened = open_k_of_n(cosigned_by(*cosigners), threshold)
    assert opened.checkpoint == CHECKPOINT
    assert opened.witnesses == expected
    by_name = {c.name: c.timestamp for c in opened.cosignatures}
    assert by_name == {c.name: T + i for i, c in enumerate(cosigners)}


@pytest.mark.parametrize(
    ("cosigners", "threshold", "message"),
    [
        (
            (W1, W2),
            3,
            "^checkpoint has 2 of the 3 required cosignatures from 3 known witnesses; "
            "missing: witness.example/w3$",
        ),
        (
            (),
            1,
            "checkpoint has 0 of the 1 required cosignatures from 3 known witnesses; "
            "missing: witness.example/w1, witness.example/w2, witness.example/w3$",
        ),
        ((W3,), 2, "has 1 of the 2 required .* missing: witness.example/w1, witness.example/w2$"),
    ],
)
def test_too_few_cosignatures(cosigners: tuple[Cosigner, ...], threshold: int, message: str) -> None:
    with pytest.raises(VerificationFailed, match=message) as caught:
        open_k_of_n(cosigned_by(*cosigners), threshold)
    assert caught.value.details["threshold"] == threshold
    assert caught.value.details["cosigned"] == sorted(c.name for c in cosigners)


def test_cosignatures_from_unknown_witnesses_do_not_count() -> None:
    stranger = Cosigner("witness.example/stranger", SigningKey(bytes([99] * 32)))
    data = cosigned_by(W1, stranger)
    with pytest.raises(VerificationFailed, match="has 1 of the 2 required"):
        open_k_of_n(data, 2)
    opened = open_k_of_n(data, 1)
    assert opened.witnesses == ("witness.example/w1",)
    assert [s.name for s in opened.note.unverified] == ["witness.example/stranger"]


def test_one_bad_cosignature_from_a_listed_witness_rejects_the_checkpoint() -> None:
    data = cosigned_by(W1, W2) + cosigned_line(W3, T.to_bytes(8, "big") + bytes(64))
    with pytest.raises(
        VerificationFailed,
        match=rf"^cosignature by witness.example/w3\+{W3.key_id:08x} for time {T} does not verify$",
    ):
        open_k_of_n(data, 1)


def test_cosignatures_without_the_log_signature_are_rejected() -> None:
    with pytest.raises(VerificationFailed, match="^checkpoint is not signed by the log key"):
        open_k_of_n(cosigned_by(W1, W2, W3, log=False), 1)


def test_a_cosignature_of_another_checkpoint_does_not_count() -> None:
    other = Checkpoint(ORIGIN, CHECKPOINT.size + 1, CHECKPOINT.root)
    line = W1.cosign(other, timestamp=T).line().encode()
    with pytest.raises(VerificationFailed, match="does not verify"):
        open_k_of_n(sign_checkpoint(CHECKPOINT, [LOG]) + line, 1)


@pytest.mark.parametrize(
    ("witnesses", "threshold", "message"),
    [
        ([], 1, "^a cosignature threshold needs at least one witness key$"),
        (WITNESSES, 0, r"^cosignature threshold 0 is not in 1..3 \(the number of witness keys\)$"),
        (WITNESSES, 4, "cosignature threshold 4 is not in 1..3"),
        (WITNESSES, -1, "cosignature threshold -1 is not in 1..3"),
        (
            [W1.verifier(), CosignatureVerifier("witness.example/alias", W1.verifier().public_key)],
            2,
            r"^witness witness.example/alias\+.* repeats a name or a public key already listed",
        ),
        ([W1.verifier(), W1.verifier()], 1, "repeats a name or a public key"),
        (
            [W1.verifier(), CosignatureVerifier(W1.name, W2.verifier().public_key)],
            1,
            "repeats a name or a public key",
        ),
    ],
)
def test_policies_that_cannot_mean_what_they_say_are_refused(
    witnesses: list[CosignatureVerifier], threshold: int, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        open_k_of_n(cosigned_by(W1, W2, W3), threshold, witnesses)


def test_one_key_under_two_names_would_double_count() -> None:
    """Why the policy check exists: cosignature/v1 does not sign the witness name."""
    alias = Cosigner("witness.example/alias", SigningKey(bytes([11] * 32)))  # W1's key
    assert alias.verifier().public_key == W1.verifier().public_key
    data = cosigned_by(W1) + cosigned_line(alias, Note.parse(cosigned_by(W1)).signatures[1].signature)
    assert len(open_note(data, [alias.verifier(), W1.verifier()]).verified) == 2
