"""The witness's protocol rules beyond the vector sequence: forks, key rotation, foreign signatures."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from rempart.audit.witness import (
    MAX_REQUEST_SIZE,
    AddCheckpointRequest,
    SizeConflict,
    Witness,
    WitnessStore,
    status_for,
    witness_app,
)
from rempart.clock import ManualClock
from rempart.db import Database
from rempart.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RempartError,
    StorageUnavailable,
    VerificationFailed,
)
from rempart.tlog.checkpoint import Checkpoint, sign_checkpoint
from rempart.tlog.cosignature import Cosignature, Cosigner, open_cosigned_checkpoint
from rempart.tlog.merkle import consistency_proof, leaf_hash
from rempart.tlog.note import NoteSignature, Signer, add_signatures
from tests.treeutil import DictTree
from tests.unit.audit.harness import asgi_server

ORIGIN = "example.com/log"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Log:
    """A tiny real log: leaf hashes in a tree, checkpoints signed by its key."""

    def __init__(self, signer: Signer, tag: bytes = b"") -> None:
        self.signer = signer
        self.tag = tag
        self.tree = DictTree()
        self.frontier = self.tree.frontier

    def grow(self, count: int) -> None:
        for _ in range(count):
            self.tree.append(b"%s%d" % (self.tag, self.frontier.size))

    def checkpoint(self, *extensions: str) -> Checkpoint:
        return Checkpoint(ORIGIN, self.frontier.size, self.frontier.root(), tuple(extensions))

    def note(self, *extensions: str) -> bytes:
        return sign_checkpoint(self.checkpoint(*extensions), [self.signer])

    def request(self, old: int, note: bytes | None = None) -> bytes:
        size = self.frontier.size
        proof = consistency_proof(old, size, self.tree) if 0 < old < size else []
        return AddCheckpointRequest(old, tuple(proof), note or self.note()).to_bytes()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def signer() -> Signer:
    return Signer.generate(ORIGIN)


@pytest.fixture
def witness(tmp_path: Path, clock: ManualClock, signer: Signer) -> Witness:
    w = Witness(
        cosigner=Cosigner.generate("witness.example/w1"),
        store=WitnessStore(Database.open(f"sqlite:///{tmp_path / 'w.db'}")),
        clock=clock,
    )
    w.add_log(ORIGIN, [signer.verifier()])
    return w


def test_cosignature_covers_the_whole_checkpoint_text_at_the_clocks_time(
    witness: Witness, signer: Signer, clock: ManualClock
) -> None:
    log = Log(signer)
    log.grow(4)
    note = log.note("extension line")
    line = witness.add_checkpoint(log.request(0, note))
    cosig = Cosignature.from_note_signature(NoteSignature.parse_line(line[:-1]))
    assert cosig.timestamp == int(START.timestamp())
    cosigned = note + line.encode()
    opened = open_cosigned_checkpoint(
        cosigned, origin=ORIGIN, log=signer.verifier(), witnesses=[witness.cosigner.verifier()], threshold=1
    )
    assert opened.checkpoint.extensions == ("extension line",)
    clock.advance(3600)
    log.grow(3)
    later = witness.add_checkpoint(log.request(4))
    assert (
        Cosignature.from_note_signature(NoteSignature.parse_line(later[:-1])).timestamp
        == cosig.timestamp + 3600
    )


def test_the_same_checkpoint_again_is_cosigned_again(witness: Witness, signer: Signer) -> None:
    log = Log(signer)
    log.grow(5)
    witness.add_checkpoint(log.request(0))
    assert witness.add_checkpoint(log.request(5)).startswith("— witness.example/w1 ")
    assert witness.store.log(ORIGIN).size == 5


def test_a_fork_at_the_same_size_is_a_conflict_and_kept_as_evidence(witness: Witness, signer: Signer) -> None:
    honest, forked = Log(signer), Log(signer, b"fork")
    honest.grow(5)
    forked.grow(5)
    witness.add_checkpoint(honest.request(0))
    sent = forked.request(5)
    with pytest.raises(SizeConflict) as caught:
        witness.add_checkpoint(sent)
    expected = (
        f"checkpoint of size 5 has root {forked.frontier.root().hex()}, but the witness cosigned root "
        f"{honest.frontier.root().hex()} for that size: the log forked"
    )
    assert (caught.value.message, caught.value.size, status_for(caught.value)) == (expected, 5, 409)
    assert [(r.status, r.reason, r.request) for r in witness.store.rejections(ORIGIN)] == [
        (409, expected, sent)
    ]


def test_a_forked_larger_tree_fails_the_consistency_proof(witness: Witness, signer: Signer) -> None:
    honest, forked = Log(signer), Log(signer, b"fork")
    honest.grow(3)
    forked.grow(7)
    witness.add_checkpoint(honest.request(0))
    with pytest.raises(VerificationFailed) as caught:
        witness.add_checkpoint(forked.request(3))
    assert caught.value.message.startswith(
        f"consistency proof from size 3 (root {honest.frontier.root().hex()}) to size 7 "
        f"(root {forked.frontier.root().hex()}) does not verify: consistency proof 3→7 implies old root"
    )
    assert caught.value.details == {"old_size": 3, "new_size": 7}
    assert status_for(caught.value) == 422
    assert witness.store.log(ORIGIN).size == 3


def test_an_older_checkpoint_is_a_conflict_naming_the_witness_size(witness: Witness, signer: Signer) -> None:
    log = Log(signer)
    log.grow(2)
    old_note = log.note()
    log.grow(4)
    witness.add_checkpoint(log.request(0))
    with pytest.raises(SizeConflict) as caught:
        witness.add_checkpoint(AddCheckpointRequest(0, (), old_note).to_bytes())
    assert caught.value.size == 6
    assert caught.value.message == (
        "old size 0 is not the size of the latest checkpoint this witness cosigned for "
        "example.com/log, which is 6"
    )


def test_equal_sizes_need_an_empty_proof(witness: Witness, signer: Signer) -> None:
    log = Log(signer)
    log.grow(4)
    witness.add_checkpoint(log.request(0))
    sent = AddCheckpointRequest(4, (leaf_hash(b"x"),), log.note()).to_bytes()
    with pytest.raises(
        VerificationFailed, match=r"^a consistency proof between equal sizes \(4\) must be empty, got 1"
    ):
        witness.add_checkpoint(sent)


def test_a_rotated_second_key_is_accepted_and_foreign_signatures_are_ignored(
    witness: Witness, signer: Signer
) -> None:
    second = Signer.generate(ORIGIN)
    witness.add_log(ORIGIN, [second.verifier()])
    log = Log(second)
    log.grow(2)
    stranger = Signer.generate("someone.else/key")
    note = add_signatures(log.note(), [stranger])
    assert witness.add_checkpoint(AddCheckpointRequest(0, (), note).to_bytes()).startswith(
        "— witness.example/w1 "
    )


def test_a_checkpoint_signed_only_by_another_key_is_forbidden(witness: Witness, signer: Signer) -> None:
    impostor = Signer.generate(ORIGIN)
    log = Log(impostor)
    log.grow(1)
    with pytest.raises(PermissionDenied) as caught:
        witness.add_checkpoint(log.request(0))
    assert caught.value.message == (
        f"checkpoint for {ORIGIN} is not signed by the log's known key: no signature from a known key: "
        f"the note is signed by {ORIGIN}+{impostor.key_id:08x}; known keys: {ORIGIN}+{signer.key_id:08x}"
    )
    assert status_for(caught.value) == 403
    assert witness.store.rejections(ORIGIN) == []


def test_a_bad_signature_by_the_known_key_is_forbidden(witness: Witness, signer: Signer) -> None:
    log = Log(signer)
    log.grow(1)
    note = log.note()
    text, sig_line = note.decode().split("\n\n")
    raw = bytearray(base64.b64decode(sig_line.split(" ")[2]))
    raw[10] ^= 1
    forged = f"{text}\n\n— {ORIGIN} {base64.b64encode(bytes(raw)).decode()}\n".encode()
    with pytest.raises(
        PermissionDenied,
        match=r"^checkpoint for example.com/log is not signed by the log's known key: Ed25519",
    ):
        witness.add_checkpoint(AddCheckpointRequest(0, (), forged).to_bytes())


def test_an_unknown_origin_is_not_found(witness: Witness) -> None:
    other = Log(Signer.generate("other.example/log"))
    other.grow(1)
    note = sign_checkpoint(Checkpoint("other.example/log", 1, other.frontier.root()), [other.signer])
    with pytest.raises(NotFound) as caught:
        witness.add_checkpoint(AddCheckpointRequest(0, (), note).to_bytes())
    assert caught.value.message == "unknown log origin 'other.example/log': this witness does not witness it"
    assert status_for(caught.value) == 404


def test_a_malformed_checkpoint_text_is_a_bad_request(witness: Witness, signer: Signer) -> None:
    note = add_signatures(f"{ORIGIN}\n01\n{base64.b64encode(bytes(32)).decode()}\n\n— x AAAAAAA=\n", [signer])
    with pytest.raises(InvalidInput) as caught:
        witness.add_checkpoint(AddCheckpointRequest(0, (), note).to_bytes())
    assert (
        caught.value.message
        == "checkpoint tree size '01' is not a decimal number without sign or leading zeros"
    )
    assert status_for(caught.value) == 400


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidInput("x"), 400),
        (PermissionDenied("x"), 403),
        (NotFound("x"), 404),
        (Conflict("x"), 409),
        (SizeConflict("x", size=3), 409),
        (VerificationFailed("x"), 422),
        (StorageUnavailable("x"), 503),
        (RempartError("x"), 500),
    ],
)
def test_status_mapping(error: RempartError, status: int) -> None:
    assert status_for(error) == status


def test_an_oversized_body_is_refused_while_it_streams_and_when_parsed(witness: Witness) -> None:
    too_big = b"old 0\n\n" + b"x" * MAX_REQUEST_SIZE
    with asgi_server(witness_app(witness)) as url:
        response = httpx.post(url + "/add-checkpoint", content=too_big)
    assert response.status_code == 400
    assert response.json()["detail"] == f"request body is more than the {MAX_REQUEST_SIZE} bytes allowed"
    with pytest.raises(InvalidInput) as caught:
        AddCheckpointRequest.parse(too_big)
    assert caught.value.message == (
        f"request body is {len(too_big)} bytes, more than the {MAX_REQUEST_SIZE} allowed"
    )
    assert witness.store.log(ORIGIN).size == 0
