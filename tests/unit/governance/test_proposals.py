"""Board proposals: drafted, signed over the exact bytes, applied at threshold, expired, logged."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from rempart.clock import format_time
from rempart.db import Database
from rempart.errors import (
    AuditUnavailable,
    ConfigurationError,
    Conflict,
    InvalidInput,
    PermissionDenied,
    VerificationFailed,
)
from rempart.governance import (
    Governance,
    Proposal,
    ProposalKind,
    ProposalStatus,
    sign_proposal,
)
from rempart.tlog.note import Signer, sign_note
from tests.unit.governance.world import Keys, Principal, World, document, signed_by

KEYS = Keys()
BOARD = Principal("board-1", "board")
OPERATOR = Principal("op-1", "operator")


def egress_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "region": "us",
        "fields": ["users.email", "users.phone"],
        "purpose": "interoperability",
        "destination": "partner.example",
        "not_before": "2026-03-01T00:00:00.000000Z",
        "not_after": "2026-04-01T00:00:00.000000Z",
    }
    payload.update(overrides)
    return payload


@pytest.fixture
def world() -> Iterator[World]:
    w = World(Database.open("sqlite:///:memory:"), keys=KEYS)
    w.bootstrap()
    yield w
    w.close()


def draft(world: World, **payload: Any) -> Proposal:
    return world.gov.proposals.draft(
        kind=ProposalKind.EGRESS_EXCEPTION,
        payload=egress_payload(**payload),
        drafter=OPERATOR,
        now=world.now(),
    )


def sign(world: World, proposal: Proposal, signers: list[Signer]) -> None:
    for s in signers:
        world.clock.advance(seconds=1)
        world.gov.proposals.sign(proposal.id, sign_proposal(proposal, [s]), now=world.now())


def test_draft_records_the_exact_text(world: World) -> None:
    proposal = draft(world)
    assert proposal.text.startswith("rempart/proposal/v1\n{")
    assert proposal.expires == world.now() + timedelta(days=7)
    record = world.gov.proposals.get(proposal.id)
    assert record.status is ProposalStatus.DRAFTED
    assert record.proposal == proposal
    event = world.events("governance.proposal")[-1]
    assert event.type == "governance.proposal.drafted"
    assert event.body == {
        "proposal": proposal.id,
        "kind": "egress_exception",
        "drafted_by": "op-1",
        "drafter_org": "operator",
        "expires": format_time(proposal.expires),
        "trust_root_version": 1,
        "proposal_sha256": proposal.digest,
        "text": proposal.text,
    }


BAD_DRAFTS: list[tuple[str, Any, dict[str, Any], Principal, type[Exception], str]] = [
    (
        "drafted by a parent principal",
        ProposalKind.EGRESS_EXCEPTION,
        egress_payload(),
        Principal("pe-1", "parent"),
        PermissionDenied,
        "pe-1 is of org 'parent'; only board members and operator staff may draft a proposal",
    ),
    (
        "drafted by an auditor",
        ProposalKind.POLICY_SET,
        {"policies": "permit(principal, action, resource);"},
        Principal("aud-1", "auditor"),
        PermissionDenied,
        "aud-1 is of org 'auditor'; only board members and operator staff may draft a proposal",
    ),
    (
        "unknown kind",
        "delete_everything",
        {},
        BOARD,
        InvalidInput,
        "proposal kind 'delete_everything' is unknown (kinds: policy_set, catalog_classification, "
        "approver_roster, trust_root, region_egress_rules, egress_exception)",
    ),
    (
        "empty policy set",
        ProposalKind.POLICY_SET,
        {"policies": "  "},
        BOARD,
        InvalidInput,
        "policy_set payload.policies: expected a non-empty string",
    ),
    (
        "unknown category",
        ProposalKind.CATALOG_CLASSIFICATION,
        {"fields": {"users.email": {"category": "secret", "purposes": []}}},
        BOARD,
        InvalidInput,
        "catalog_classification payload.fields['users.email'].category: 'secret' is not one of "
        "excepted, protected, public",
    ),
    (
        "protected field with egress purposes",
        ProposalKind.CATALOG_CLASSIFICATION,
        {"fields": {"users.email": {"category": "protected", "purposes": ["ads"]}}},
        BOARD,
        InvalidInput,
        "catalog_classification payload.fields['users.email']: a protected field has no egress purposes "
        "(approve an egress_exception instead)",
    ),
    (
        "egress rules for an unknown region",
        ProposalKind.REGION_EGRESS_RULES,
        {"region": "mars", "rules": {"destinations": [], "budgets": {}}},
        BOARD,
        InvalidInput,
        "region_egress_rules payload.region: region 'mars' is not in trust root version 1 (regions: us, row)",
    ),
    (
        "egress exception window backwards",
        ProposalKind.EGRESS_EXCEPTION,
        egress_payload(not_after="2026-02-01T00:00:00.000000Z"),
        BOARD,
        InvalidInput,
        "egress_exception payload: not_after must be after not_before",
    ),
    (
        "egress exception with an unknown field",
        ProposalKind.EGRESS_EXCEPTION,
        {**egress_payload(), "forever": True},
        BOARD,
        InvalidInput,
        "egress_exception payload: unknown field(s) forever",
    ),
    (
        "trust root payload that is not a bundle",
        ProposalKind.TRUST_ROOT,
        {"trust_root": {"version": 2}},
        BOARD,
        InvalidInput,
        "trust root bundle must be an object with exactly 'signed_note' and 'tuf_root_signatures'",
    ),
]


@pytest.mark.parametrize(
    ("case", "kind", "payload", "drafter", "error", "message"), BAD_DRAFTS, ids=[c[0] for c in BAD_DRAFTS]
)
def test_bad_drafts_are_refused_and_change_nothing(
    world: World,
    case: str,
    kind: Any,
    payload: dict[str, Any],
    drafter: Principal,
    error: type[Exception],
    message: str,
) -> None:
    before = world.types()
    with pytest.raises(error) as info:
        world.gov.proposals.draft(kind=kind, payload=payload, drafter=drafter, now=world.now())
    assert str(info.value) == message
    assert world.gov.proposals.records() == []
    assert world.types() == before


def test_one_signature_short_is_refused_with_the_count(world: World) -> None:
    proposal = draft(world)
    sign(world, proposal, KEYS.board[:2])
    with pytest.raises(PermissionDenied) as info:
        world.gov.proposals.apply(proposal.id, now=world.now())
    assert str(info.value) == (
        f"proposal {proposal.id} cannot be applied: 2 of 3 board signatures; 1 missing "
        "(signed: board-1, board-2; not yet: board-3, board-4, board-5)"
    )
    assert info.value.details == {
        "proposal": proposal.id,
        "signed": ["board-1", "board-2"],
        "missing": 1,
        "threshold": 3,
    }
    refused = world.events()[-1]
    assert refused.type == "governance.proposal.apply_refused"
    assert refused.body == {
        "proposal": proposal.id,
        "kind": "egress_exception",
        "reason": "2 of 3 board signatures; 1 missing",
        "signers": ["board-1", "board-2"],
        "threshold": 3,
        "trust_root_version": 1,
    }
    assert world.gov.proposals.get(proposal.id).status is ProposalStatus.DRAFTED
    assert (
        world.gov.egress_exceptions.find(
            "us", ["users.email"], "interoperability", "partner.example", world.now()
        )
        is None
    )


def test_threshold_met_applies_the_egress_exception(world: World) -> None:
    proposal = draft(world)
    sign(world, proposal, [KEYS.board[4], KEYS.board[0], KEYS.board[2]])
    record = world.gov.proposals.apply(proposal.id, now=world.now())
    assert record.status is ProposalStatus.APPLIED
    assert record.result == f"egress exception {proposal.id} approved"
    assert record.signers == ("board-5", "board-1", "board-3")
    applied = world.events()[-1]
    assert applied.type == "governance.proposal.applied"
    assert applied.body == {
        "proposal": proposal.id,
        "kind": "egress_exception",
        "proposal_sha256": proposal.digest,
        "signers": ["board-5", "board-1", "board-3"],
        "threshold": 3,
        "trust_root_version": 1,
    }
    assert [e.type for e in world.events("governance.proposal")] == [
        "governance.proposal.drafted",
        "governance.proposal.signed",
        "governance.proposal.signed",
        "governance.proposal.signed",
        "governance.proposal.applied",
    ]
    signed = world.events("governance.proposal.signed")[0]
    assert signed.body["member"] == "board-5"
    assert signed.body["key"] == f"board-5+{KEYS.board[4].key_id:08x}"
    # The stored signatures form one stock signed note over the exact proposal text.
    from rempart.tlog.note import open_note

    opened = open_note(world.gov.proposals.signatures(proposal.id), [s.verifier() for s in KEYS.board])
    assert opened.text == proposal.text
    assert len(opened.verified) == 3

    exceptions = world.gov.egress_exceptions
    at = datetime(2026, 3, 15, tzinfo=world.now().tzinfo)
    assert exceptions.find("us", ["users.email"], "interoperability", "partner.example", at) == proposal.id
    assert (
        exceptions.find("us", ["users.phone", "users.email"], "interoperability", "partner.example", at)
        == proposal.id
    )
    assert (
        exceptions.find("us", ["users.email", "users.birthdate"], "interoperability", "partner.example", at)
        is None
    )
    assert exceptions.find("row", ["users.email"], "interoperability", "partner.example", at) is None
    assert exceptions.find("us", ["users.email"], "advertising", "partner.example", at) is None
    assert exceptions.find("us", ["users.email"], "interoperability", "parent.example", at) is None
    assert (
        exceptions.find("us", ["users.email"], "interoperability", "partner.example", at.replace(month=4))
        is None
    )
    assert exceptions.find("us", [], "interoperability", "partner.example", at) is None
    with pytest.raises(
        Conflict, match=rf"^proposal {proposal.id} is applied, not open for signing or applying$"
    ):
        world.gov.proposals.apply(proposal.id, now=world.now())


def _different_bytes(proposal: Proposal) -> bytes:
    return sign_note(proposal.text.replace("partner.example", "parent.example"), [KEYS.board[2]])


def _forged(proposal: Proposal) -> bytes:
    other = sign_note(proposal.text.replace("partner.example", "parent.example"), [KEYS.board[2]])
    line = other.decode().rsplit("\n\n", 1)[1]
    return (proposal.text + "\n" + line).encode()


BAD_SIGNATURES: list[tuple[str, Any, type[Exception], str]] = [
    (
        "a reviewer key, not a board key",
        lambda p: sign_proposal(p, [KEYS.reviewers[0]]),
        PermissionDenied,
        "key reviewer-1+{rid:08x} is not a board key of trust root version 1; its signature on proposal "
        "{pid} does not count",
    ),
    (
        "a parent key",
        lambda p: sign_proposal(p, [KEYS.parent_engineer]),
        PermissionDenied,
        "key parent-engineer-1+{parent:08x} is not a board key of trust root version 1; its signature on "
        "proposal {pid} does not count",
    ),
    (
        "a duplicate signer",
        lambda p: sign_proposal(p, [KEYS.board[0]]),
        Conflict,
        "board member board-1 has already signed proposal {pid}; a member counts once",
    ),
    (
        "a signature over different bytes",
        _different_bytes,
        VerificationFailed,
        "the signed note is over different bytes than proposal {pid} (sha256 {other}…, the proposal's is "
        "{digest}…); sign the exact proposal text",
    ),
    (
        "a signature line that does not verify",
        _forged,
        VerificationFailed,
        "the signature by board member board-3 (board-3+{b3:08x}) does not verify over "
        "proposal {pid}'s bytes",
    ),
]


@pytest.mark.parametrize(
    ("case", "make", "error", "message"), BAD_SIGNATURES, ids=[c[0] for c in BAD_SIGNATURES]
)
def test_bad_signatures_do_not_count_and_change_nothing(
    world: World, case: str, make: Any, error: type[Exception], message: str
) -> None:
    import hashlib

    proposal = draft(world)
    sign(world, proposal, [KEYS.board[0]])
    before = world.types()
    note = make(proposal)
    from rempart.tlog.note import Note

    other = hashlib.sha256(Note.parse(note).text.encode()).hexdigest()[:16]
    with pytest.raises(error) as info:
        world.gov.proposals.sign(proposal.id, note, now=world.now())
    assert str(info.value) == message.format(
        pid=proposal.id,
        rid=KEYS.reviewers[0].key_id,
        parent=KEYS.parent_engineer.key_id,
        b3=KEYS.board[2].key_id,
        other=other,
        digest=proposal.digest[:16],
    )
    assert world.gov.proposals.get(proposal.id).signers == ("board-1",)
    assert world.types() == before


def test_a_proposal_expires_if_not_applied_in_time(world: World) -> None:
    proposal = draft(world)
    sign(world, proposal, KEYS.board[:3])
    world.clock.advance(days=7)
    with pytest.raises(Conflict) as info:
        world.gov.proposals.apply(proposal.id, now=world.now())
    assert (
        str(info.value)
        == f"proposal {proposal.id} expired at {format_time(proposal.expires)}; draft it again"
    )
    record = world.gov.proposals.get(proposal.id)
    assert record.status is ProposalStatus.EXPIRED
    assert record.closed == world.now()
    expired = world.events()[-1]
    assert expired.type == "governance.proposal.expired"
    assert expired.body == {
        "proposal": proposal.id,
        "kind": "egress_exception",
        "expires": format_time(proposal.expires),
    }
    with pytest.raises(Conflict, match=r"is expired, not open for signing or applying$"):
        world.gov.proposals.sign(proposal.id, sign_proposal(proposal, [KEYS.board[3]]), now=world.now())


def test_expire_due_sweeps_only_what_is_due(world: World) -> None:
    first = draft(world)
    world.clock.advance(days=2)
    second = draft(world)
    world.clock.advance(days=5)
    assert world.gov.proposals.expire_due(now=world.now()) == [first.id]
    assert world.gov.proposals.get(second.id).status is ProposalStatus.DRAFTED
    assert world.gov.proposals.expire_due(now=world.now()) == []


def test_a_kind_without_an_applier_is_refused(world: World) -> None:
    proposal = world.gov.proposals.draft(
        kind=ProposalKind.POLICY_SET,
        payload={"policies": "forbid(principal, action, resource);"},
        drafter=BOARD,
        now=world.now(),
    )
    sign(world, proposal, KEYS.board[:3])
    with pytest.raises(ConfigurationError) as info:
        world.gov.proposals.apply(proposal.id, now=world.now())
    assert str(info.value) == (
        f"proposal {proposal.id} cannot be applied: no applier is registered for proposals of kind policy_set"
    )
    assert world.events()[-1].type == "governance.proposal.apply_refused"
    assert world.gov.proposals.get(proposal.id).status is ProposalStatus.DRAFTED


class PolicySets:
    """The policy room's side of the port, as small as it gets: keeps the applied Cedar text.

    ``fail_once`` makes the first ``apply`` die after nothing was written, as a crash would.
    """

    def __init__(self, *, fail_once: bool = False) -> None:
        self.active: str | None = None
        self.fail_once = fail_once

    def check(self, proposal: Proposal) -> None:
        if "permit(principal, action, resource);" in proposal.payload["policies"]:
            raise InvalidInput("a blanket permit is refused by the policy room")

    def apply(self, proposal: Proposal, *, now: datetime) -> str:
        if self.fail_once:
            self.fail_once = False
            raise OSError("process died")
        self.active = proposal.payload["policies"]
        return "policy set installed"


def test_registered_applier_runs_and_its_refusal_is_recorded(world: World) -> None:
    policies = PolicySets()
    gov = Governance(
        db=world.db,
        recorder=world.recorder,
        submitters=world.submitters,
        proposal_lifetime=timedelta(days=1),
        appliers={ProposalKind.POLICY_SET: policies},
    )
    bad = gov.proposals.draft(
        kind="policy_set",
        payload={"policies": "permit(principal, action, resource);"},
        drafter=BOARD,
        now=world.now(),
    )
    for s in KEYS.board[:3]:
        gov.proposals.sign(bad.id, sign_proposal(bad, [s]), now=world.now())
    with pytest.raises(InvalidInput, match=r"^a blanket permit is refused by the policy room$"):
        gov.proposals.apply(bad.id, now=world.now())
    assert world.events()[-1].body["reason"] == "a blanket permit is refused by the policy room"
    assert policies.active is None

    good = gov.proposals.draft(
        kind="policy_set",
        payload={"policies": "forbid(principal, action, resource);"},
        drafter=BOARD,
        now=world.now(),
    )
    for s in KEYS.board[:3]:
        gov.proposals.sign(good.id, sign_proposal(good, [s]), now=world.now())
    assert gov.proposals.apply(good.id, now=world.now()).result == "policy set installed"
    assert policies.active == "forbid(principal, action, resource);"


def test_a_crash_while_applying_is_resumed(world: World) -> None:
    policies = PolicySets(fail_once=True)
    gov = Governance(
        db=world.db,
        recorder=world.recorder,
        submitters=world.submitters,
        proposal_lifetime=timedelta(days=1),
        appliers={ProposalKind.POLICY_SET: policies},
    )
    proposal = gov.proposals.draft(
        kind="policy_set",
        payload={"policies": "forbid(principal, action, resource);"},
        drafter=BOARD,
        now=world.now(),
    )
    for s in KEYS.board[:3]:
        gov.proposals.sign(proposal.id, sign_proposal(proposal, [s]), now=world.now())
    with pytest.raises(OSError, match=r"^process died$"):
        gov.proposals.apply(proposal.id, now=world.now())
    assert gov.proposals.get(proposal.id).status is ProposalStatus.APPROVED
    assert world.events()[-1].type == "governance.proposal.applied"
    (resumed,) = gov.proposals.resume(now=world.now())
    assert resumed.status is ProposalStatus.APPLIED
    assert policies.active == "forbid(principal, action, resource);"
    assert [e.type for e in world.events("governance.proposal.applied")] == ["governance.proposal.applied"]


def test_fail_closed_when_the_log_cannot_record(world: World) -> None:
    proposal = draft(world)
    sign(world, proposal, KEYS.board[:2])
    before = world.types()
    world.log.close()
    with pytest.raises(AuditUnavailable, match=r"^the log is closed$"):
        world.gov.proposals.sign(proposal.id, sign_proposal(proposal, [KEYS.board[2]]), now=world.now())
    assert world.gov.proposals.get(proposal.id).signers == ("board-1", "board-2")
    with pytest.raises(AuditUnavailable):
        draft(world)
    assert len(world.gov.proposals.records()) == 1
    assert world.types() == before


def _trust_root_proposal(world: World, bundle: Any, kind: ProposalKind = ProposalKind.TRUST_ROOT) -> Proposal:
    proposal = world.gov.proposals.draft(
        kind=kind, payload={"trust_root": bundle.to_json()}, drafter=BOARD, now=world.now()
    )
    sign(world, proposal, KEYS.board[:3])
    return proposal


def test_trust_root_rotation_through_a_proposal(world: World) -> None:
    newcomer = Signer.generate("board-6")
    bundle = signed_by(
        document(KEYS, version=2, board=[*KEYS.board[:4], newcomer]), [*KEYS.board[:3], newcomer]
    )
    proposal = _trust_root_proposal(world, bundle)
    record = world.gov.proposals.apply(proposal.id, now=world.now())
    assert record.result == "trust root version 2 installed"
    root = world.gov.trust_roots.current()
    assert root.version == 2
    installed = world.events("governance.trust_root")[-1]
    assert installed.body["proposal"] == proposal.id
    assert installed.body["previous_board_signers"] == ["board-1", "board-2", "board-3"]
    assert installed.body["board_signers"] == ["board-1", "board-2", "board-3", "board-6"]
    # board-5 was rotated out: its signature no longer counts on a new proposal.
    later = draft(world)
    with pytest.raises(
        PermissionDenied, match=r"^key board-5\+[0-9a-f]{8} is not a board key of trust root version 2"
    ):
        world.gov.proposals.sign(later.id, sign_proposal(later, [KEYS.board[4]]), now=world.now())
    world.gov.proposals.sign(later.id, sign_proposal(later, [newcomer]), now=world.now())


def test_trust_root_signed_only_by_new_keys_is_refused_at_apply(world: World) -> None:
    new = [Signer.generate(f"new-{i}") for i in range(3)]
    bundle = signed_by(document(KEYS, version=2, board=new), new)
    proposal = _trust_root_proposal(world, bundle)
    with pytest.raises(VerificationFailed) as info:
        world.gov.proposals.apply(proposal.id, now=world.now())
    assert str(info.value).startswith(
        "trust root version 2: 0 of 3 required signatures from the board of version 1; 3 missing"
    )
    assert world.gov.trust_roots.current().version == 1
    assert world.events()[-1].type == "governance.proposal.apply_refused"
    assert world.gov.proposals.get(proposal.id).status is ProposalStatus.DRAFTED


def test_approver_roster_proposal_changes_only_approvers(world: World) -> None:
    new_approver = Signer.generate("approver-3")
    roster = signed_by(document(KEYS, version=2, approvers=[*KEYS.approvers, new_approver]), KEYS.board[:3])
    proposal = _trust_root_proposal(world, roster, ProposalKind.APPROVER_ROSTER)
    world.gov.proposals.apply(proposal.id, now=world.now())
    assert world.gov.approver_roster.is_approver("approver-3", new_approver.vkey())

    sneaky = signed_by(document(KEYS, version=3, approvers=KEYS.approvers, threshold=1), KEYS.board[:3])
    second = _trust_root_proposal(world, sneaky, ProposalKind.APPROVER_ROSTER)
    with pytest.raises(InvalidInput) as info:
        world.gov.proposals.apply(second.id, now=world.now())
    assert str(info.value) == (
        "an approver_roster proposal may change only custodian_approvers; this one also changes board "
        "(use a trust_root proposal)"
    )
    assert world.gov.trust_roots.current().version == 2
