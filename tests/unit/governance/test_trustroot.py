"""Trust root documents and chains: python-tuf-style scenario tables."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rempart.db import Database
from rempart.errors import Conflict, InvalidInput, NotFound, VerificationFailed
from rempart.governance import TrustRootApproverRoster, TrustRootBundle, parse_document, verify_chain
from rempart.governance.trustroot import trust_root_text
from rempart.governance.tuf_keys import verify_tuf_root_signatures
from rempart.tlog.note import Signer, sign_note
from tests.unit.governance.world import Keys, World, document, signed_by

KEYS = Keys()  # key generation is the slow part: one set for the module
NEW = [Signer.generate(f"board-{i}") for i in (6, 7, 8)]


def _doc() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(document(KEYS))
    return result


Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        target: Any = doc
        for p in parents:
            target = target[int(p)] if isinstance(target, list) else target[p]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


def _delete(key: str) -> Mutation:
    return lambda doc: doc.pop(key)


BAD_DOCUMENTS: list[tuple[str, Mutation, str]] = [
    (
        "parent key in the board",
        _set("board/members/1/org", "parent"),
        "trust root board.members[1]: member 'board-2' is of org 'parent'; "
        "the foreign parent may hold no board or custodian role",
    ),
    (
        "parent custodian approver",
        _set("custodian_approvers/0/org", "parent"),
        "trust root custodian_approvers[0]: member 'approver-1' is of org 'parent'; "
        "the foreign parent may hold no board or custodian role",
    ),
    (
        "parent release reviewer",
        _set("release_reviewers/members/2/org", "parent"),
        "trust root release_reviewers.members[2]: member 'reviewer-3' is of org 'parent'; "
        "the foreign parent may hold no board or custodian role",
    ),
    (
        "custodian in the board",
        _set("board/members/0/org", "custodian"),
        "trust root board.members[0]: member 'board-1' is of org 'custodian'; "
        "board.members members must be of org 'board'",
    ),
    (
        "threshold zero",
        _set("board/threshold", 0),
        "trust root board.threshold: threshold 0 is not in 1..5 (the number of members)",
    ),
    (
        "threshold above members",
        _set("release_reviewers/threshold", 4),
        "trust root release_reviewers.threshold: threshold 4 is not in 1..3 (the number of members)",
    ),
    (
        "threshold not an integer",
        _set("board/threshold", True),
        "trust root board.threshold: expected an integer, got true",
    ),
    (
        "duplicate key across roles",
        _set("release_reviewers/members/0/vkey", KEYS.board[0].vkey()),
        "trust root release_reviewers member 'reviewer-1': duplicate key, already used by "
        "board member 'board-1'",
    ),
    (
        "the log key reused by the board",
        _set("board/members/4/vkey", KEYS.log.vkey()),
        "trust root board member 'board-5': duplicate key, already used by log.vkey",
    ),
    ("unknown top-level field", _set("owner", "parent"), "trust root document: unknown field(s) owner"),
    (
        "unknown member field",
        _set("board/members/0/role", "chair"),
        "trust root board.members[0]: unknown field(s) role",
    ),
    ("missing field", _delete("regions"), "trust root document: missing field(s) regions"),
    (
        "malformed vkey",
        _set("board/members/2/vkey", "board-3+00000000+AAAA"),
        "trust root board.members[2].vkey: malformed verifier key: verifier key 'board-3' has signature type "
        "0x00, not Ed25519 (0x01)",
    ),
    (
        "note key where a cosignature key belongs",
        _set("witnesses/members/0/vkey", KEYS.engineer.vkey()),
        "trust root witnesses.members[0].vkey: malformed cosignature key: verifier key 'engineer-1' "
        "has signature type 0x01, not Ed25519 cosignature/v1 (0x04)",
    ),
    ("version zero", _set("version", 0), "trust root version: 0 is not a positive integer"),
    (
        "time without microseconds",
        _set("issued", "2026-03-01T12:00:00Z"),
        "trust root issued: write times as '2026-03-01T12:00:00.000000Z' (UTC, microseconds, Z)",
    ),
    ("region listed twice", _set("regions", ["us", "us"]), "trust root regions: a region is listed twice"),
    (
        "log origin differs from its key",
        _set("log/origin", "other.example/log"),
        "trust root log.origin: 'other.example/log' differs from the log key's name 'log.rempart.example'",
    ),
]


@pytest.mark.parametrize(("case", "mutate", "message"), BAD_DOCUMENTS, ids=[c[0] for c in BAD_DOCUMENTS])
def test_bad_documents_are_refused_naming_what_is_wrong(case: str, mutate: Mutation, message: str) -> None:
    doc = _doc()
    mutate(doc)
    with pytest.raises(InvalidInput) as info:
        parse_document(doc)
    assert str(info.value) == message


def test_document_bytes_must_be_canonical() -> None:
    pretty = json.dumps(_doc(), indent=2).encode()
    with pytest.raises(InvalidInput, match=r"^trust root document is not canonical JSON"):
        parse_document(pretty)


def test_trust_root_exposes_what_other_rooms_need() -> None:
    root = parse_document(document(KEYS))
    assert root.version == 1
    assert root.board_threshold == 3
    assert [v.name for v in root.board_verifiers] == [f"board-{i}" for i in range(1, 6)]
    assert dict(root.approver_roster) == {s.name: s.verifier() for s in KEYS.approvers}
    assert root.reviewer_verifiers == tuple(s.verifier() for s in KEYS.reviewers)
    assert root.reviewer_threshold == 2
    assert root.witness_verifiers == (KEYS.witness.verifier(),)
    assert root.witness_threshold == 1
    assert root.log_verifier == KEYS.log.verifier()
    assert root.regions == ("us", "row")
    assert root.is_approver("approver-1", KEYS.approvers[0].vkey())
    assert not root.is_approver("approver-1", KEYS.approvers[1].vkey())


# -- chains: 3-of-5 board, one key rotated out -------------------------------------------------------


def _v2(signers: list[Signer], *, board: list[Signer] | None = None) -> bytes:
    new_board = board if board is not None else [*KEYS.board[:4], NEW[0]]  # board-5 rotated out
    return signed_by(document(KEYS, version=2, board=new_board), signers).signed_note


V1 = signed_by(document(KEYS), KEYS.board[:3]).signed_note

CHAINS: list[tuple[str, Callable[[], list[bytes]], str | None]] = [
    ("v1 signed by 3 of 5", lambda: [V1], None),
    ("v1 signed by all 5", lambda: [signed_by(document(KEYS), KEYS.board).signed_note], None),
    (
        "v1 one signature short",
        lambda: [signed_by(document(KEYS), KEYS.board[:2]).signed_note],
        "trust root version 1: 2 of 3 required signatures from its own board (version 1); 1 missing "
        f"(signed by keys: board-1+{KEYS.board[0].key_id:08x}, board-2+{KEYS.board[1].key_id:08x})",
    ),
    ("v2 rotates board-5 out, signed by old 3 and new", lambda: [V1, _v2([*KEYS.board[:3], NEW[0]])], None),
    ("v2 signed by the 3 old keys that stay", lambda: [V1, _v2(KEYS.board[1:4])], None),
    (
        "v2 signed only by the new keys",
        lambda: [V1, _v2(NEW, board=[*KEYS.board[:2], *NEW])],
        "trust root version 2: 0 of 3 required signatures from the board of version 1; 3 missing "
        f"(signed by keys: board-6+{NEW[0].key_id:08x}, board-7+{NEW[1].key_id:08x}, "
        f"board-8+{NEW[2].key_id:08x})",
    ),
    (
        "v2 signed by 2 old and the new key",
        lambda: [V1, _v2([KEYS.board[0], KEYS.board[4], NEW[0]])],
        "trust root version 2: 2 of 3 required signatures from the board of version 1; 1 missing "
        f"(signed by keys: board-1+{KEYS.board[0].key_id:08x}, board-5+{KEYS.board[4].key_id:08x}, "
        f"board-6+{NEW[0].key_id:08x})",
    ),
    (
        "v2 signed by the old board only, not its own threshold",
        lambda: [V1, _v2([KEYS.board[4], KEYS.board[0], KEYS.board[1]], board=[*KEYS.board[:2], *NEW])],
        "trust root version 2: 2 of 3 required signatures from its own board (version 2); 1 missing "
        f"(signed by keys: board-5+{KEYS.board[4].key_id:08x}, board-1+{KEYS.board[0].key_id:08x}, "
        f"board-2+{KEYS.board[1].key_id:08x})",
    ),
    (
        "v3 signed by the rotated-out key does not count",
        lambda: [
            V1,
            _v2([*KEYS.board[:3], NEW[0]]),
            signed_by(
                document(KEYS, version=3, board=[*KEYS.board[:4], NEW[0]]),
                [KEYS.board[4], KEYS.board[0], KEYS.board[1]],
            ).signed_note,
        ],
        "trust root version 3: 2 of 3 required signatures from the board of version 2; 1 missing "
        f"(signed by keys: board-5+{KEYS.board[4].key_id:08x}, board-1+{KEYS.board[0].key_id:08x}, "
        f"board-2+{KEYS.board[1].key_id:08x})",
    ),
    (
        "a version skipped",
        lambda: [V1, signed_by(document(KEYS, version=3), KEYS.board[:3]).signed_note],
        "trust root version 3 found where version 2 was expected",
    ),
    (
        "the chain does not start at version 1",
        lambda: [_v2([*KEYS.board[:3], NEW[0]])],
        "trust root version 2 found where version 1 was expected",
    ),
    ("an empty chain", lambda: [], "no trust root: the chain is empty"),
]


@pytest.mark.parametrize(("case", "chain", "error"), CHAINS, ids=[c[0] for c in CHAINS])
def test_chain_scenarios(case: str, chain: Callable[[], list[bytes]], error: str | None) -> None:
    documents = chain()
    if error is None:
        assert verify_chain(documents).version == len(documents)
        return
    with pytest.raises(VerificationFailed) as info:
        verify_chain(documents)
    assert str(info.value) == error


def test_a_forged_board_signature_is_named() -> None:
    text = trust_root_text(document(KEYS))
    other = sign_note(text.replace('"version":1', '"version":1 '), [KEYS.board[2]])  # over other bytes
    forged_line = other.decode().rsplit("\n\n", 1)[1]
    signed = sign_note(text, KEYS.board[:2]).decode() + forged_line
    with pytest.raises(VerificationFailed) as info:
        verify_chain([signed])
    assert str(info.value) == (
        f"trust root version 1: the signature by board-3 (board-3+{KEYS.board[2].key_id:08x}) does not verify"
    )


def test_tuf_root_signed_only_by_new_keys_is_refused() -> None:
    v1 = parse_document(document(KEYS))
    new_board = [*KEYS.board[:2], *NEW]
    bundle = signed_by(document(KEYS, version=2, board=new_board), NEW)
    with pytest.raises(VerificationFailed) as info:
        verify_tuf_root_signatures(v1, bundle.root, bundle.tuf_signatures)
    assert str(info.value) == "TUF root version 2: 0 of 3 signatures from the board of version 1; 3 missing"
    good = signed_by(bundle, KEYS.board[:3])
    assert verify_tuf_root_signatures(v1, good.root, good.tuf_signatures).signed.version == 2


# -- the store ---------------------------------------------------------------------------------------------


@pytest.fixture
def world() -> Iterator[World]:
    w = World(Database.open("sqlite:///:memory:"), keys=KEYS)
    yield w
    w.close()


def test_install_version_one_records_it(world: World) -> None:
    bundle = signed_by(document(KEYS), KEYS.board[:3])
    root = world.gov.trust_roots.install(bundle, now=world.now())
    assert root.version == 1
    assert world.gov.trust_roots.current() == root
    assert world.gov.trust_roots.chain() == [bundle.signed_note]
    (event,) = world.events()
    assert event.type == "governance.trust_root.installed"
    assert event.body["version"] == 1
    assert event.body["board_signers"] == ["board-1", "board-2", "board-3"]
    assert event.body["previous_board_signers"] == []
    assert event.body["proposal"] is None
    assert event.body["signed_note"] == bundle.signed_note.decode()
    assert world.gov.trust_roots.verify_stored() == root


BAD_INSTALLS: list[tuple[str, Callable[[], TrustRootBundle], type[Exception], str]] = [
    (
        "one signature short",
        lambda: signed_by(document(KEYS), KEYS.board[:2]),
        VerificationFailed,
        "trust root version 1: 2 of 3 required signatures from its own board (version 1); 1 missing "
        f"(signed by keys: board-1+{KEYS.board[0].key_id:08x}, board-2+{KEYS.board[1].key_id:08x})",
    ),
    (
        "note signed but TUF root signatures missing",
        lambda: TrustRootBundle(signed_by(document(KEYS), KEYS.board[:3]).signed_note, {}),
        VerificationFailed,
        "TUF root version 1: 0 of 3 signatures from its own board; 3 missing",
    ),
    (
        "TUF signature by a key outside the board",
        lambda: signed_by(document(KEYS), [*KEYS.board[:3], KEYS.engineer]),
        VerificationFailed,
        "TUF root version 1: key id {keyid}… is not a board key of trust root version 1",
    ),
]


@pytest.mark.parametrize(
    ("case", "bundle", "error", "message"), BAD_INSTALLS, ids=[c[0] for c in BAD_INSTALLS]
)
def test_bad_installs_change_nothing(
    world: World, case: str, bundle: Callable[[], TrustRootBundle], error: type[Exception], message: str
) -> None:
    from rempart.governance.tuf_keys import tuf_keyid

    with pytest.raises(error) as info:
        world.gov.trust_roots.install(bundle(), now=world.now())
    assert str(info.value) == message.format(keyid=tuf_keyid(KEYS.engineer.verifier())[:16])
    assert world.gov.trust_roots.versions() == []
    assert world.events() == []
    with pytest.raises(NotFound, match=r"^no trust root is installed; install version 1 first$"):
        world.gov.trust_roots.current()


def test_a_new_version_needs_a_proposal(world: World) -> None:
    world.bootstrap()
    v2 = signed_by(document(KEYS, version=2), KEYS.board[:3])
    with pytest.raises(Conflict) as info:
        world.gov.trust_roots.install(v2, now=world.now())
    assert str(info.value) == (
        "trust root version 1 is in force: a new version is installed only by applying a board "
        "proposal of kind trust_root or approver_roster"
    )
    assert len(world.gov.trust_roots.versions()) == 1


BAD_BUNDLES: list[tuple[str, Any, str]] = [
    ("not JSON", b"{", "trust root bundle is not JSON: Expecting property name enclosed in double quotes"),
    (
        "wrong fields",
        {"note": "x"},
        "trust root bundle must be an object with exactly 'signed_note' and 'tuf_root_signatures'",
    ),
    (
        "bad key id",
        {"signed_note": "x", "tuf_root_signatures": {"abc": "00"}},
        "trust root bundle tuf_root_signatures: 'abc' is not a 64-hex key id with a hex signature",
    ),
    (
        "not a trust root note",
        {"signed_note": "hello\n\n— a AAAAAAA=\n", "tuf_root_signatures": {}},
        "signed trust root starts with 'hello', expected 'rempart/trust-root/v1'",
    ),
]


@pytest.mark.parametrize(("case", "data", "message"), BAD_BUNDLES, ids=[c[0] for c in BAD_BUNDLES])
def test_bad_bundles_are_refused(case: str, data: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        TrustRootBundle.parse(data)
    assert str(info.value).startswith(message)


def test_bundle_round_trips() -> None:
    bundle = signed_by(document(KEYS), KEYS.board[:3])
    assert TrustRootBundle.parse(bundle.dumps()) == bundle


def test_approver_roster_reads_the_trust_root_in_force(world: World) -> None:
    world.bootstrap()
    roster = TrustRootApproverRoster(world.gov.trust_roots)
    assert roster.is_approver("approver-1", KEYS.approvers[0].vkey())
    assert not roster.is_approver("approver-1", KEYS.engineer.vkey())
    assert not roster.is_approver("board-1", KEYS.board[0].vkey())
