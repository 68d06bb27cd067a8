"""The board changes the catalog classification and egress rules; the file cannot quietly undo it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rempart.deployment import Deployment
from rempart.errors import InvalidInput, PermissionDenied, ResidencyViolation
from rempart.governance import ProposalKind, sign_proposal
from rempart.store.catalog import Category
from rempart.store.egress import EgressRequest
from rempart.store.records import Actor
from tests.unit.audit.audit_world import Scene, clean_world

BOARD_MEMBER = type("Drafter", (), {"id": "board:m0", "org": "board"})()


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    s = clean_world(tmp_path)
    yield s
    s.world.close()


def apply(scene: Scene, kind: ProposalKind, payload: dict[str, Any]) -> str:
    proposals = scene.world.deployment.governance.proposals
    proposal = proposals.draft(kind=kind, payload=payload, drafter=BOARD_MEMBER, now=scene.world.now)
    proposals.sign(proposal.id, sign_proposal(proposal, scene.board[:2]), now=scene.world.now)
    record = proposals.apply(proposal.id, now=scene.world.now)
    return str(record.result)


def stored_public_text(scene: Scene, subject: str, collection: str) -> str:
    path = scene.world.deployment.config.regions["us"].store.removeprefix("sqlite:///")
    conn = sqlite3.connect(path)
    try:
        (text,) = conn.execute(
            "SELECT public_fields FROM store_records WHERE subject_id = ? AND collection = ?",
            (subject, collection),
        ).fetchone()
    finally:
        conn.close()
    return str(text)


def test_a_public_field_made_protected_is_sealed_and_guarded(scene: Scene) -> None:
    d = scene.world.deployment
    assert '"ana"' in stored_public_text(scene, "u1", "profile")  # handle is public: in clear
    eve = scene.world.principal("operator:eve")
    read = d.gateway.read(
        eve, subject_id="u1", collection="profile", record_id="main", purpose="customer_support",
        fields=["handle"],
    )
    assert read.record.fields == {"handle": "ana"}

    result = apply(
        scene,
        ProposalKind.CATALOG_CLASSIFICATION,
        {"fields": {"profile.handle": {"category": "protected", "purposes": []}}},
    )
    assert result == "1 field(s) reclassified; 1 record(s) sealed again"
    assert d.records.catalog.field("profile", "handle").category is Category.PROTECTED
    assert '"ana"' not in stored_public_text(scene, "u1", "profile")  # now encrypted at rest
    with pytest.raises(PermissionDenied, match="approved access grant"):
        d.gateway.read(
            eve, subject_id="u1", collection="profile", record_id="main", purpose="customer_support",
            fields=["handle"],
        )
    assert d.records.read("u1", "profile", "main").fields["handle"] == "ana"  # nothing lost

    # Another process opening the same deployment, with the unchanged file, gets the board's
    # classification too (a second writer on the log is placed after this one).
    with Deployment.open(d.config) as other:
        assert other.records.catalog.field("profile", "handle").category is Category.PROTECTED
        assert other.config.catalog.field("profile", "handle").category is Category.PUBLIC


def test_egress_rules_follow_the_board(scene: Scene) -> None:
    d = scene.world.deployment
    service = Actor("operator:svc-ingest", "operator")
    request = EgressRequest("us", "contact", ("email_verified",), "customer_support", "partner-crm")
    with pytest.raises(ResidencyViolation, match="partner-crm"):
        d.records.egress(service, request)
    result = apply(
        scene,
        ProposalKind.REGION_EGRESS_RULES,
        {"region": "us", "rules": {"destinations": ["partner-crm"], "budgets": {"customer_support": 5}}},
    )
    assert result == "egress rules of region us in force: 1 destination(s)"
    sent = d.records.egress(service, request)
    assert sent.count >= 1


def test_a_classification_naming_an_unknown_field_is_refused_and_changes_nothing(scene: Scene) -> None:
    d = scene.world.deployment
    proposals = d.governance.proposals
    before = d.rules.stamp()
    proposal = proposals.draft(
        kind=ProposalKind.CATALOG_CLASSIFICATION,
        payload={"fields": {"profile.shoe_size": {"category": "public", "purposes": []}}},
        drafter=BOARD_MEMBER,
        now=scene.world.now,
    )
    proposals.sign(proposal.id, sign_proposal(proposal, scene.board[:2]), now=scene.world.now)
    with pytest.raises(InvalidInput, match="no field 'shoe_size'"):
        proposals.apply(proposal.id, now=scene.world.now)
    assert d.rules.stamp() == before  # nothing was kept
    assert d.records.catalog is not None and "shoe_size" not in d.records.catalog.collection("profile").fields
