"""Releases: submitter's and custodian's approvals, revocation, verify, and the auditor's check."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from rempart.db import Database
from rempart.errors import Conflict, InvalidInput, PermissionDenied, VerificationFailed
from rempart.governance import (
    ArtifactKind,
    ReleaseState,
    deployment_violations,
    record_deployment,
    release_text,
    revocation_text,
    sign_release,
)
from rempart.governance.releases import Release
from rempart.tlog.note import Signer, open_note, sign_note
from tests.unit.governance.world import START, Keys, World

KEYS = Keys()
RULES = b'{"rules": ["no spam"]}'
DIGEST = "sha256:" + hashlib.sha256(RULES).hexdigest()


@pytest.fixture
def world() -> Iterator[World]:
    w = World(Database.open("sqlite:///:memory:"), keys=KEYS)
    w.bootstrap()
    yield w
    w.close()


def review(world: World, release: Release, signers: list[Signer]) -> Release:
    return world.gov.releases.review(release.id, sign_release(release.text, signers), now=world.now())


def revoke(world: World, release: Release, signer: Signer, reason: str = "steers content") -> Release:
    text = revocation_text(release=release.id, region=release.region, digest=release.digest, reason=reason)
    return world.gov.releases.revoke(release.id, sign_release(text, [signer]), now=world.now())


def test_two_kinds_of_approval_both_in_the_log(world: World) -> None:
    release = world.submit(RULES)
    assert world.gov.releases.verify_release(DIGEST, "us").state is ReleaseState.PENDING
    review(world, release, [KEYS.reviewers[0]])
    assert world.gov.releases.verify_release(DIGEST, "us").state is ReleaseState.PENDING
    world.clock.advance(seconds=1)
    review(world, release, [KEYS.reviewers[2]])
    status = world.gov.releases.verify_release(DIGEST.removeprefix("sha256:"), "us")
    assert status.state is ReleaseState.APPROVED
    assert status.reviewers == ("reviewer-1", "reviewer-3")
    assert status.submitter == "engineer-1"
    assert status.threshold == 2
    assert [e.type for e in world.events("governance.release")] == [
        "governance.release.submitted",
        "governance.release.reviewed",
        "governance.release.reviewed",
        "governance.release.approved",
    ]
    submitted, first, _, approved = world.events("governance.release")
    assert submitted.body["submitter"] == "engineer-1"
    assert submitted.body["submitter_org"] == "operator"
    assert submitted.body["submitter_key"] == f"engineer-1+{KEYS.engineer.key_id:08x}"
    open_note(
        submitted.body["submission"], [KEYS.engineer.verifier()]
    )  # the submitter's approval, re-checkable
    assert first.body["reviewer"] == "reviewer-1"
    assert approved.body == {
        "release": release.id,
        "region": "us",
        "kind": "moderation_rule_set",
        "name": "rules.json",
        "digest": DIGEST,
        "submitter": "engineer-1",
        "reviewers": ["reviewer-1", "reviewer-3"],
        "threshold": 2,
        "trust_root_version": 1,
    }
    # One stock note carries both approvals.
    stored = world.gov.releases.get(release.id)
    opened = open_note(
        stored.signed_note(), [KEYS.engineer.verifier(), *(r.verifier() for r in KEYS.reviewers)]
    )
    assert [v.verifier.name for v in opened.verified] == ["engineer-1", "reviewer-1", "reviewer-3"]
    assert world.gov.releases.verify_release(DIGEST, "row").state is ReleaseState.UNKNOWN


def _text(**overrides: Any) -> str:
    fields: dict[str, Any] = {
        "deployment": "rempart.example",
        "region": "us",
        "kind": ArtifactKind.RECOMMENDATION_MODEL_CONFIG,
        "digest": DIGEST,
        "length": len(RULES),
        "name": "model.json",
        "metadata": {},
        "submitter": "engineer-1",
        "submitted": START,
    }
    fields.update(overrides)
    return release_text(**fields)


BAD_SUBMISSIONS: list[tuple[str, Any, type[Exception], str]] = [
    (
        "a parent principal alone",
        lambda: sign_release(_text(submitter="parent-engineer-1"), [KEYS.parent_engineer]),
        PermissionDenied,
        "parent-engineer-1 is a parent principal: a release needs the signature of an operator submitter; "
        "a parent signature alone never makes a release",
    ),
    (
        "signed by a parent key for an operator",
        lambda: sign_release(_text(), [KEYS.parent_engineer]),
        VerificationFailed,
        "the submission is not signed by its submitter engineer-1's key {engineer} (signed by: "
        "parent-engineer-1+{parent:08x})",
    ),
    (
        "an unknown submitter",
        lambda: sign_release(_text(submitter="intern-9"), [KEYS.engineer]),
        PermissionDenied,
        "'intern-9' is not a known submitter",
    ),
    (
        "a region outside the trust root",
        lambda: sign_release(_text(region="mars"), [KEYS.engineer]),
        InvalidInput,
        "release region 'mars' is not in trust root version 1 (regions: us, row)",
    ),
    (
        "another deployment",
        lambda: sign_release(_text(deployment="elsewhere"), [KEYS.engineer]),
        InvalidInput,
        "release names deployment 'elsewhere'; this deployment is 'rempart.example'",
    ),
    (
        "a forged submitter signature",
        lambda: (
            _text()
            + "\n"
            + sign_note(_text(name="other.json"), [KEYS.engineer]).decode().rsplit("\n\n", 1)[1]
        ).encode(),
        VerificationFailed,
        "the submitter engineer-1's signature does not verify",
    ),
    (
        "not a release text",
        lambda: sign_note("rempart/proposal/v1\n{}\n", [KEYS.engineer]),
        InvalidInput,
        "release text starts with 'rempart/proposal/v1', expected 'rempart/release/v1'",
    ),
    (
        "a non-canonical release text",
        lambda: sign_note(_text().replace('"length"', ' "length"'), [KEYS.engineer]),
        InvalidInput,
        "release text is not canonical (header, canonical JSON with sha256:<hex>, newline)",
    ),
]


@pytest.mark.parametrize(
    ("case", "make", "error", "message"), BAD_SUBMISSIONS, ids=[c[0] for c in BAD_SUBMISSIONS]
)
def test_bad_submissions_are_refused_and_change_nothing(
    world: World, case: str, make: Any, error: type[Exception], message: str
) -> None:
    before = world.types()
    with pytest.raises(error) as info:
        world.gov.releases.submit(make(), now=world.now())
    assert str(info.value) == message.format(
        engineer=KEYS.engineer.vkey(), parent=KEYS.parent_engineer.key_id
    )
    assert world.gov.releases.releases() == []
    assert world.types() == before


BAD_RELEASE_INPUT: list[tuple[str, dict[str, Any], str]] = [
    ("bad digest", {"digest": "md5:abc"}, "digest 'md5:abc' is not sha256:<64 hex digits>"),
    (
        "unknown kind",
        {"kind": "ad_targeting"},
        "artifact kind 'ad_targeting' is unknown (kinds: recommendation_model_config, moderation_rule_set, "
        "source_bundle)",
    ),
    ("negative length", {"length": -1}, "artifact length -1 is not a byte count"),
    (
        "bad name",
        {"name": "../etc/passwd"},
        "artifact name '../etc/passwd' does not match ^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}\\Z",
    ),
]


@pytest.mark.parametrize(
    ("case", "overrides", "message"), BAD_RELEASE_INPUT, ids=[c[0] for c in BAD_RELEASE_INPUT]
)
def test_release_text_validates_its_input(case: str, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        _text(**overrides)
    assert str(info.value) == message


BAD_REVIEWS: list[tuple[str, Any, type[Exception], str]] = [
    (
        "a custodian approver who is not a reviewer",
        lambda r: sign_release(r.text, [KEYS.approvers[0]]),
        PermissionDenied,
        "key approver-1+{approver:08x} is not a release reviewer key of trust root version 1; its signature "
        "on release {rid} does not count",
    ),
    (
        "a board member",
        lambda r: sign_release(r.text, [KEYS.board[0]]),
        PermissionDenied,
        "key board-1+{board:08x} is not a release reviewer key of trust root version 1; its signature on "
        "release {rid} does not count",
    ),
    (
        "a parent key",
        lambda r: sign_release(r.text, [KEYS.parent_engineer]),
        PermissionDenied,
        "key parent-engineer-1+{parent:08x} is not a release reviewer key of trust root version 1; its "
        "signature on release {rid} does not count",
    ),
    (
        "the same reviewer twice",
        lambda r: sign_release(r.text, [KEYS.reviewers[0]]),
        Conflict,
        "reviewer reviewer-1 has already signed release {rid}",
    ),
    (
        "over different bytes",
        lambda r: sign_release(r.text.replace("rules.json", "other.json"), [KEYS.reviewers[1]]),
        VerificationFailed,
        "the signed note is over different bytes than release {rid}; sign its exact text",
    ),
    (
        "only the submitter's own line",
        lambda r: r.submission,
        InvalidInput,
        "the note carries no reviewer signature for release {rid}",
    ),
]


@pytest.mark.parametrize(("case", "make", "error", "message"), BAD_REVIEWS, ids=[c[0] for c in BAD_REVIEWS])
def test_bad_reviews_do_not_count_and_change_nothing(
    world: World, case: str, make: Any, error: type[Exception], message: str
) -> None:
    release = review(world, world.submit(RULES), [KEYS.reviewers[0]])
    before = world.types()
    with pytest.raises(error) as info:
        world.gov.releases.review(release.id, make(release), now=world.now())
    assert str(info.value) == message.format(
        rid=release.id,
        approver=KEYS.approvers[0].key_id,
        board=KEYS.board[0].key_id,
        parent=KEYS.parent_engineer.key_id,
    )
    assert world.gov.releases.get(release.id).reviews == release.reviews
    assert world.gov.releases.verify_release(DIGEST, "us").state is ReleaseState.PENDING
    assert world.types() == before


def test_a_revoked_release_fails_verification(world: World) -> None:
    release = review(world, world.submit(RULES), KEYS.reviewers[:2])
    assert world.gov.releases.verify_release(DIGEST, "us").state is ReleaseState.APPROVED
    with pytest.raises(PermissionDenied) as info:
        revoke(world, release, KEYS.engineer)
    assert str(info.value) == (
        "a revocation must be signed by a release reviewer of trust root version 1; it is signed by "
        f"engineer-1+{KEYS.engineer.key_id:08x}"
    )
    assert world.gov.releases.verify_release(DIGEST, "us").state is ReleaseState.APPROVED
    revoke(world, release, KEYS.reviewers[2], reason="boosts parent-chosen content")
    status = world.gov.releases.verify_release(DIGEST, "us")
    assert status.state is ReleaseState.REVOKED
    assert status.revoked_by == "reviewer-3"
    assert status.reason == "boosts parent-chosen content"
    revoked = world.events()[-1]
    assert revoked.type == "governance.release.revoked"
    assert revoked.body["revoked_by"] == "reviewer-3"
    assert revoked.body["reason"] == "boosts parent-chosen content"
    assert world.gov.releases.approved("us") == []
    with pytest.raises(Conflict, match=rf"^release {release.id} was revoked; it cannot be reviewed$"):
        review(world, release, [KEYS.reviewers[2]])
    with pytest.raises(
        Conflict, match=rf"^digest {DIGEST} is already revoked for region us as release {release.id}$"
    ):
        world.submit(RULES)
    with pytest.raises(Conflict, match=rf"^release {release.id} is already revoked$"):
        revoke(world, release, KEYS.reviewers[0])


def test_a_revocation_must_name_the_release(world: World) -> None:
    release = review(world, world.submit(RULES), KEYS.reviewers[:2])
    other = revocation_text(release="r-0000000000000000", region="us", digest=DIGEST, reason="x")
    with pytest.raises(VerificationFailed) as info:
        world.gov.releases.revoke(release.id, sign_release(other, [KEYS.reviewers[0]]), now=world.now())
    assert str(info.value) == (
        f"the revocation does not name release {release.id} (region us, digest {DIGEST}) in canonical form"
    )
    assert world.gov.releases.verify_release(DIGEST, "us").state is ReleaseState.APPROVED


def test_verify_release_input_is_validated(world: World) -> None:
    with pytest.raises(InvalidInput, match=r"^digest 'nope' is not sha256:<64 hex digits>$"):
        world.gov.releases.verify_release("nope", "us")
    with pytest.raises(InvalidInput, match=r"^region 'mars' is not in trust root version 1$"):
        world.gov.releases.verify_release(DIGEST, "mars")
    assert world.gov.releases.verify_release(DIGEST, "us").to_json() == {
        "state": "unknown",
        "digest": DIGEST,
        "region": "us",
        "release": None,
        "name": None,
        "kind": None,
        "submitter": None,
        "reviewers": [],
        "threshold": None,
        "revoked_by": None,
        "reason": None,
    }


def test_the_auditor_reports_every_unapproved_deployment(world: World) -> None:
    recorder = world.recorder
    approved_data, other = b"approved rules", b"rogue rules"
    approved_digest = "sha256:" + hashlib.sha256(approved_data).hexdigest()
    rogue_digest = "sha256:" + hashlib.sha256(other).hexdigest()
    release = world.submit(approved_data)
    world.clock.advance(seconds=1)
    record_deployment(
        recorder, region="us", digest=approved_digest, deployer="feed-1", now=world.now()
    )  # too early
    world.clock.advance(seconds=1)
    review(world, release, KEYS.reviewers[:2])
    world.clock.advance(seconds=1)
    record_deployment(
        recorder, region="us", digest=approved_digest, deployer="feed-1", now=world.now()
    )  # fine
    record_deployment(
        recorder, region="row", digest=approved_digest, deployer="feed-2", now=world.now()
    )  # not there
    record_deployment(
        recorder, region="us", digest=rogue_digest, deployer="feed-3", now=world.now()
    )  # unknown
    world.clock.advance(seconds=1)
    revoke(world, release, KEYS.reviewers[1], reason="bad")
    world.clock.advance(seconds=1)
    record_deployment(
        recorder, region="us", digest=approved_digest, deployer="feed-1", now=world.now()
    )  # revoked
    deployed = world.events("release.deployed")
    assert deployed[0].body == {"region": "us", "digest": approved_digest, "deployer": "feed-1"}
    violations = [v.to_json() for v in deployment_violations(world.events())]
    t = [e.time for e in deployed]
    from rempart.clock import format_time

    revoked_at = world.events("governance.release.revoked")[0].time
    assert violations == [
        {"time": format_time(t[0]), "region": "us", "digest": approved_digest, "deployer": "feed-1",
         "reason": "no approved release of this digest in us"},
        {"time": format_time(t[2]), "region": "row", "digest": approved_digest, "deployer": "feed-2",
         "reason": "no approved release of this digest in row"},
        {"time": format_time(t[3]), "region": "us", "digest": rogue_digest, "deployer": "feed-3",
         "reason": "no approved release of this digest in us"},
        {"time": format_time(t[4]), "region": "us", "digest": approved_digest, "deployer": "feed-1",
         "reason": f"release revoked at {format_time(revoked_at)}: bad"},
    ]  # fmt: skip


def test_record_deployment_validates_its_input(world: World) -> None:
    with pytest.raises(InvalidInput, match=r"^digest 'abc' is not sha256:<64 hex digits>$"):
        record_deployment(world.recorder, region="us", digest="abc", deployer="feed-1", now=world.now())
    with pytest.raises(InvalidInput, match=r"^deployer 'feed 1' does not match"):
        record_deployment(world.recorder, region="us", digest=DIGEST, deployer="feed 1", now=world.now())
    assert world.events("release.deployed") == []


def test_submitters_from_the_principal_directory(world: World) -> None:
    from rempart.access.principals import Principal, PrincipalStore
    from rempart.governance import DirectorySubmitterKeys, ReleaseRegistry

    principals = PrincipalStore(world.db, recorder=world.recorder, clock=world.clock)
    common = {"location": "US", "screening": "cleared"}
    principals.create(
        Principal.build(
            id="user:eng-1", display_name="Eng One", org="operator", vkey=KEYS.engineer.vkey(), **common
        ),
        actor="admin",
    )
    principals.create(
        Principal.build(
            id="user:parent-eng-1",
            display_name="Parent Eng",
            org="parent",
            vkey=KEYS.parent_engineer.vkey(),
            **common,
        ),
        actor="admin",
    )
    registry = ReleaseRegistry(
        db=world.db,
        recorder=world.recorder,
        trust_roots=world.gov.trust_roots,
        submitters=DirectorySubmitterKeys(principals),
    )
    with pytest.raises(PermissionDenied, match=r"^user:parent-eng-1 is a parent principal"):
        registry.submit(
            sign_release(_text(submitter="user:parent-eng-1"), [KEYS.parent_engineer]), now=world.now()
        )
    release = registry.submit(sign_release(_text(submitter="user:eng-1"), [KEYS.engineer]), now=world.now())
    assert release.submitter == "user:eng-1"
    principals.disable("user:eng-1", actor="admin")
    with pytest.raises(PermissionDenied, match=r"^'user:eng-1' is not a known submitter$"):
        registry.submit(
            sign_release(
                _text(submitter="user:eng-1", name="second.json", digest="ab" * 32), [KEYS.engineer]
            ),
            now=world.now(),
        )
