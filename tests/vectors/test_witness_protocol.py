"""The litewitness add-checkpoint sequence, replayed against Rempart's witness.

In process (the ASGI app served by uvicorn on a thread) and over real HTTP
against a real ``rempart witness serve`` process on a free loopback port. The
one departure from litewitness is request 3 (a checkpoint of an unknown
origin): C2SP tlog-witness says 404, litewitness answers 403; we follow the spec.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from rempart.audit.witness import Witness, WitnessStore, witness_app
from rempart.clock import ManualClock
from rempart.db import Database
from rempart.tlog.checkpoint import Checkpoint
from rempart.tlog.cosignature import Cosignature, CosignatureVerifier, Cosigner
from rempart.tlog.note import NoteSignature, Verifier, open_note
from tests.conftest import load_vector
from tests.unit.audit.harness import asgi_server, witness_process

V = load_vector("witness-add-checkpoint-vectors.json")
ORIGIN: str = V["origin"]
UNKNOWN_ORIGIN = ORIGIN[:-1] + "3"
LOG = Verifier(ORIGIN, bytes.fromhex(V["log_public_key_hex"]))
CHECKPOINTS: dict[int, dict[str, str]] = {int(k): v for k, v in V["checkpoints"].items()}
PROOFS: dict[str, list[str]] = V["consistency_proofs"]
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def note(size: int, *, sig: str | None = None, origin: str = ORIGIN) -> bytes:
    c = CHECKPOINTS[size]
    return f"{origin}\n{size}\n{c['root']}\n\n— {origin} {sig or c['sig']}\n".encode()


def body(old: int, proof: list[str], checkpoint: bytes) -> bytes:
    return "".join(f"{line}\n" for line in [f"old {old}", *proof]).encode() + b"\n" + checkpoint


CORRUPTED_SIG = CHECKPOINTS[3]["sig"][: -len("6go=")] + "6gx="
CORRUPTED_PROOF = [PROOFS["1->3"][0], PROOFS["1->3"][1][:-4] + "ABA="]

# (request body, status, 409 body): the vector sequence, in order.
SEQUENCE: list[tuple[bytes, int, bytes | None]] = [
    (body(0, [], note(1)), 200, None),
    (body(1, PROOFS["1->3"], note(3, sig=CORRUPTED_SIG)), 403, None),
    (body(1, PROOFS["1->3"], note(3, origin=UNKNOWN_ORIGIN)), 404, None),
    (body(1, [], note(3)), 422, None),
    (body(1, CORRUPTED_PROOF, note(3)), 422, None),
    (body(1, PROOFS["1->3"], note(3)), 200, None),
    (body(1, PROOFS["1->5"], note(5)), 409, b"3\n"),
    (body(3, PROOFS["3->5"], note(5)), 200, None),
    (body(0, [], note(5)), 409, b"5\n"),
]
SIZES = [1, 3, 3, 3, 3, 3, 5, 5, 5]


def test_the_sequence_is_the_vectors_sequence() -> None:
    """Our table says what the vector file says (bar the documented 404), request by request."""
    listed: list[dict[str, Any]] = V["witness_request_sequence_expected_status"]
    assert len(listed) == len(SEQUENCE)
    for i, (step, (sent, status, conflict)) in enumerate(zip(listed, SEQUENCE, strict=True)):
        assert sent.startswith(f"old {step['old']}\n".encode()), i
        assert f"\n{step['checkpoint_size']}\n".encode() in sent, i
        assert SIZES[i] == step["checkpoint_size"]
        expect = step["expect"]
        if isinstance(expect, int):
            assert status == expect, i
        elif i == 2:
            assert expect.startswith("403 in litewitness") and "404" in expect
            assert status == 404
        else:
            assert expect.startswith(f"{status}, body '{conflict.decode()[:-1]}\\n'"), i


def check_cosignature(response_body: bytes, size: int, witness: CosignatureVerifier) -> Cosignature:
    """The 200 body is one cosignature line by the witness's key, valid over the checkpoint text."""
    text = note(size).decode().split("\n\n")[0] + "\n"
    lines = response_body.decode().splitlines(keepends=True)
    assert len(lines) == 1 and lines[0].startswith(f"— {witness.name} ")
    opened = open_note(text + "\n" + lines[0], [witness])
    assert opened.text == text and opened.verifiers == (witness,)
    return Cosignature.from_note_signature(NoteSignature.parse_line(lines[0][:-1]))


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_sequence_in_process(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    clock = ManualClock(START)
    cosigner = Cosigner.generate("witness.example/w1")
    url = f"sqlite:///{tmp_path / 'w.db'}" if backend == "sqlite" else request.getfixturevalue("pg_dsn")
    store = WitnessStore(Database.open(url))
    witness = Witness(cosigner=cosigner, store=store, clock=clock)
    witness.add_log(ORIGIN, [LOG])
    with asgi_server(witness_app(witness)) as url, httpx.Client(base_url=url) as client:
        for i, (sent, status, conflict) in enumerate(SEQUENCE):
            clock.advance(60)
            response = client.post("/add-checkpoint", content=sent)
            assert response.status_code == status, (i, response.text)
            if status == 200:
                cosig = check_cosignature(response.content, SIZES[i], cosigner.verifier())
                assert cosig.timestamp == int(clock.now().timestamp())
            elif status == 409:
                assert response.content == conflict
                assert response.headers["content-type"] == "text/x.tlog.size"
            else:
                assert response.headers["content-type"] == "application/problem+json"
                assert response.json()["status"] == status
    state = store.log(ORIGIN)
    assert (state.size, state.root, state.note) == (5, base64.b64decode(CHECKPOINTS[5]["root"]), note(5))
    assert Checkpoint.parse(open_note(state.note or b"", [LOG]).text).size == 5
    # Requests 4 and 5 were log-signed but inconsistent: kept as possible evidence.
    rejected = store.rejections(ORIGIN)
    assert [(r.status, r.request) for r in rejected] == [(422, SEQUENCE[3][0]), (422, SEQUENCE[4][0])]
    assert rejected[0].reason.startswith("consistency proof from size 1 (root 2a00") and (
        rejected[0].reason.endswith("does not verify: consistency proof is empty")
    )
    store.database.close()


def test_sequence_over_http_against_a_witness_process(tmp_path: Path) -> None:
    with witness_process(tmp_path / "w", "witness.example/w2", [(ORIGIN, LOG.vkey())]) as served:
        verifier = CosignatureVerifier.parse(served.vkey)
        assert verifier.name == "witness.example/w2"
        with httpx.Client(base_url=served.url, timeout=10) as client:
            assert client.get("/").text == served.vkey + "\n"
            for i, (sent, status, conflict) in enumerate(SEQUENCE):
                before = int(datetime.now(UTC).timestamp())
                response = client.post("/add-checkpoint", content=sent)
                assert response.status_code == status, (i, response.text)
                if status == 200:
                    cosig = check_cosignature(response.content, SIZES[i], verifier)
                    assert before <= cosig.timestamp <= int(datetime.now(UTC).timestamp())
                elif status == 409:
                    assert response.content == conflict
                    assert response.headers["content-type"] == "text/x.tlog.size"


@pytest.mark.parametrize(
    ("sent", "status", "detail"),
    [
        (b"old 0\n", 400, "request body has no empty line between"),
        (body(0, [], note(1)).replace(b"old 0", b"old 00"), 400, "first line b'old 00' is not 'old <size>'"),
        (body(0, [], note(1)).replace(b"old 0", b"old -1"), 400, "first line b'old -1' is not 'old <size>'"),
        (body(3, PROOFS["1->3"], note(1)), 400, "old size 3 is larger than the checkpoint's size 1"),
        (body(0, ["not base64!"], note(1)), 400, "consistency proof line 1 is not valid base64"),
        (body(0, ["AAAA"], note(1)), 400, "consistency proof line 1 holds 3 bytes, not a 32-byte hash"),
        (
            body(0, [PROOFS["1->3"][0]] * 64, note(1)),
            400,
            "request has 64 consistency proof lines, more than",
        ),
        (
            body(0, [PROOFS["1->3"][0]], note(1)),
            422,
            "a consistency proof from old size 0 must be empty, got 1",
        ),
        (body(0, [], note(1).replace(b"\n\n", b"\n")), 400, "note has no blank line between its text"),
        (body(0, [], f"{ORIGIN}\n1\n".encode()), 400, "note has no blank line"),
    ],
)
def test_malformed_requests_are_refused_with_the_reason(
    tmp_path: Path, sent: bytes, status: int, detail: str
) -> None:
    store = WitnessStore(Database.open(f"sqlite:///{tmp_path / 'w.db'}"))
    witness = Witness(cosigner=Cosigner.generate("w.example/w"), store=store, clock=ManualClock(START))
    witness.add_log(ORIGIN, [LOG])
    with asgi_server(witness_app(witness)) as url:
        response = httpx.post(url + "/add-checkpoint", content=sent)
    assert response.status_code == status
    assert response.json()["detail"].startswith(detail), response.json()["detail"]
    assert store.log(ORIGIN).size == 0
