"""The governance room's storage contract, on SQLite and on a real PostgreSQL.

Same suite, every backend: installed trust roots survive a reopen and are
re-verified; proposals, signatures, releases and egress exceptions round-trip;
uniqueness holds under concurrent writers; a refused write leaves nothing.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from rempart.db import Database
from rempart.errors import Conflict, VerificationFailed
from rempart.governance import (
    Governance,
    ProposalKind,
    ProposalStatus,
    ReleaseState,
    revocation_text,
    sign_proposal,
    sign_release,
)
from rempart.tlog.note import Signer
from tests.unit.governance.world import Keys, Principal, World, document, signed_by

KEYS = Keys()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'control.db'}"
    return str(request.getfixturevalue("pg_dsn"))


@pytest.fixture
def world(url: str) -> Iterator[World]:
    w = World(Database.open(url), keys=KEYS)
    w.bootstrap()
    yield w
    w.close()


def reopened(world: World) -> Governance:
    """A second process's view: a new connection and a new Governance over the same database."""
    return Governance(
        db=Database.open(world.db.url),
        recorder=world.recorder,
        submitters=world.submitters,
        proposal_lifetime=timedelta(days=7),
    )


def test_trust_root_chain_survives_a_reopen(world: World) -> None:
    newcomer = Signer.generate("board-6")
    bundle = signed_by(
        document(KEYS, version=2, board=[*KEYS.board[:4], newcomer]), [*KEYS.board[:3], newcomer]
    )
    proposal = world.gov.proposals.draft(
        kind=ProposalKind.TRUST_ROOT,
        payload={"trust_root": bundle.to_json()},
        drafter=Principal("board-1", "board"),
        now=world.now(),
    )
    world.gov.proposals.sign(proposal.id, sign_proposal(proposal, KEYS.board[:3]), now=world.now())
    world.gov.proposals.apply(proposal.id, now=world.now())
    other = reopened(world)
    assert other.trust_roots.current().version == 2
    assert other.trust_roots.current().document == bundle.root.document
    assert other.trust_roots.bundle(2) == bundle
    assert other.trust_roots.verify_stored().version == 2
    assert other.proposals.get(proposal.id).status is ProposalStatus.APPLIED


def test_a_tampered_stored_chain_is_detected(world: World) -> None:
    note = world.gov.trust_roots.bundle(1).signed_note.decode()
    with world.db.transaction() as tx:
        tx.execute(
            "UPDATE governance_trust_roots SET signed_note = ? WHERE version = 1",
            (note.replace('"threshold":3', '"threshold":1', 1),),
        )
    with pytest.raises(VerificationFailed, match=r"^trust root version 1: the signature by board-1 "):
        reopened(world).trust_roots.current()


def test_proposals_and_egress_exceptions_round_trip(world: World) -> None:
    payload = {
        "region": "row",
        "fields": ["users.email"],
        "purpose": "interoperability",
        "destination": "partner.example",
        "not_before": "2026-03-01T00:00:00.000000Z",
        "not_after": "2026-03-08T00:00:00.000000Z",
    }
    proposal = world.gov.proposals.draft(
        kind="egress_exception", payload=payload, drafter=Principal("op-1", "operator"), now=world.now()
    )
    stale = world.gov.proposals.draft(
        kind="egress_exception", payload=payload, drafter=Principal("op-1", "operator"), now=world.now()
    )
    for s in KEYS.board[2:5]:
        world.clock.advance(seconds=1)
        world.gov.proposals.sign(proposal.id, sign_proposal(proposal, [s]), now=world.now())
    world.gov.proposals.apply(proposal.id, now=world.now())
    other = reopened(world)
    record = other.proposals.get(proposal.id)
    assert record.proposal == proposal
    assert record.signers == ("board-3", "board-4", "board-5")
    assert record.status is ProposalStatus.APPLIED
    at = world.now()
    assert (
        other.egress_exceptions.find("row", ["users.email"], "interoperability", "partner.example", at)
        == proposal.id
    )
    world.clock.advance(days=7)
    assert (
        other.egress_exceptions.find(
            "row", ["users.email"], "interoperability", "partner.example", world.now()
        )
        is None
    )
    assert other.proposals.expire_due(now=world.now()) == [stale.id]
    assert [r.proposal.id for r in other.proposals.records(ProposalStatus.EXPIRED)] == [stale.id]


def test_concurrent_signatures_by_one_member_count_once(world: World) -> None:
    proposal = world.gov.proposals.draft(
        kind=ProposalKind.POLICY_SET,
        payload={"policies": "forbid(principal, action, resource);"},
        drafter=Principal("board-1", "board"),
        now=world.now(),
    )
    note = sign_proposal(proposal, [KEYS.board[0]])
    others = [reopened(world) for _ in range(4)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(others))

    def race(gov: Governance) -> None:
        barrier.wait()
        try:
            gov.proposals.sign(proposal.id, note, now=world.now())
            outcomes.append("signed")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=race, args=(g,)) for g in others]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "signed"]
    assert world.gov.proposals.get(proposal.id).signers == ("board-1",)
    assert len(world.events("governance.proposal.signed")) == 1


def test_releases_round_trip_and_digests_are_unique_per_region(world: World) -> None:
    data = b"recommendation weights v3"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    release = world.submit(data, region="row")
    world.gov.releases.review(release.id, sign_release(release.text, KEYS.reviewers[:2]), now=world.now())
    with pytest.raises(Conflict, match=rf"^digest {digest} is already submitted for region row as release "):
        world.submit(data, region="row")
    same_digest_elsewhere = world.submit(data, region="us")
    other = reopened(world)
    assert other.releases.get(release.id).signed_note() == world.gov.releases.get(release.id).signed_note()
    assert other.releases.verify_release(digest, "row").state is ReleaseState.APPROVED
    assert other.releases.verify_release(digest, "us").state is ReleaseState.PENDING
    assert [r.id for r in other.releases.approved("row")] == [release.id]
    text = revocation_text(release=release.id, region="row", digest=digest, reason="withdrawn")
    other.releases.revoke(release.id, sign_release(text, [KEYS.reviewers[1]]), now=world.now())
    assert world.gov.releases.verify_release(digest, "row").state is ReleaseState.REVOKED
    assert world.gov.releases.verify_release(digest, "us").release == same_digest_elsewhere.id
