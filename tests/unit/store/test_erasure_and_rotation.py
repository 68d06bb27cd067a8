"""Crypto-shredding erasure (backups included) and KEK rotation without re-encrypting data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rempart.db import Database
from rempart.errors import AuditUnavailable, Conflict, NotFound, VerificationFailed
from rempart.store.keys import LocalKeyring, wrapped_key_digest
from rempart.store.region import RegionStore
from tests.unit.store.conftest import CUSTODIAN, OPERATOR, Deployment


def open_backup(d: Deployment, path: Path, keyring: LocalKeyring) -> tuple[Database, RegionStore]:
    db = Database.open(f"sqlite:///{path}")
    return db, RegionStore(region="us", database=db, catalog=d.service.catalog, custody=keyring, ring="us")


@pytest.fixture
def subject(deployment: Deployment) -> Deployment:
    svc = deployment.service
    svc.create_subject(OPERATOR, "u-1", "us")
    svc.write(OPERATOR, "u-1", "contact", "main", {"email": "ana@example.com", "phone": "+1 555"})
    svc.write(OPERATOR, "u-1", "messages", "m1", {"body": "hello", "recipient": "u-2"})
    svc.write(OPERATOR, "u-1", "messages", "m2", {"body": "bye", "recipient": "u-2"})
    svc.create_subject(OPERATOR, "u-2", "us")
    svc.write(OPERATOR, "u-2", "contact", "main", {"email": "bo@example.com"})
    return deployment


def test_erasure_shreds_keys_deletes_rows_and_records_a_receipt(subject: Deployment) -> None:
    d, svc = subject, subject.service
    commitment = svc.subject_commitment("u-1")
    key_row = svc.regions["us"].key_row("u-1")
    assert key_row is not None
    d.clock.advance(seconds=30)
    receipt = svc.erase(CUSTODIAN, "u-1", reason="DSR-42 user request")
    event = d.last_event()
    assert event.type == "store.erasure"
    assert event.time == d.clock.now()
    assert dict(event.body) == {
        "subject": commitment,
        "region": "us",
        "destroyed": ["data_key", "commitment_key"],
        "kek": "us-v1",
        "wrapped_keys": [wrapped_key_digest(key_row.data_key), wrapped_key_digest(key_row.commitment_key)],
        "records": 3,
        "collections": {"contact": 1, "messages": 2},
        "requested_by": {"principal": "carol", "org": "custodian"},
        "reason": "DSR-42 user request",
    }
    assert (receipt.records, receipt.commitment, receipt.position.index) == (3, commitment, event_index(d))
    assert d.rows_for("us", "u-1") == (0, 0)
    assert d.raw("us", "SELECT COUNT(*) FROM store_public_values WHERE subject_id = 'u-1'") == [(0,)]
    assert d.control("SELECT COUNT(*) FROM store_subjects WHERE subject_id = 'u-1'") == [(0,)]
    with pytest.raises(NotFound, match="^no such subject in the directory$"):
        svc.read("u-1", "contact", "main")
    assert svc.read("u-2", "contact", "main").fields == {"email": "bo@example.com"}


def event_index(d: Deployment) -> int:
    return d.storage.size() - 1


def test_erasure_reaches_a_backup_taken_before_it(subject: Deployment) -> None:
    d, svc = subject, subject.service
    backup = d.backup("us", d.data / "us-backup.db")
    # The backup reads fine before the erasure.
    db, old = open_backup(d, backup, d.keyring)
    assert old.get("u-1", "messages", "m1").fields["body"] == "hello"
    db.close()
    svc.erase(CUSTODIAN, "u-1", reason="DSR-42")
    # Same rows, same keyring: the custodian no longer opens the shredded keys, even after a restart.
    for keyring in (d.keyring, LocalKeyring.open(d.config.keyring)):
        db, old = open_backup(d, backup, keyring)
        try:
            with pytest.raises(VerificationFailed) as caught:
                old.get("u-1", "messages", "m1")
            assert str(caught.value) == (
                "this subject key was shredded by the custodian (ring 'us'); its data is erased"
            )
            assert old.get("u-2", "contact", "main").fields == {"email": "bo@example.com"}
        finally:
            db.close()


def test_after_rotation_and_retirement_the_erased_keys_cannot_be_opened_by_anyone(
    subject: Deployment,
) -> None:
    d, svc = subject, subject.service
    backup = d.backup("us", d.data / "us-backup.db")
    [(wrapped_before,)] = d.raw(
        "us", "SELECT wrapped_data_key FROM store_subject_keys WHERE subject_id = 'u-1'"
    )
    svc.erase(CUSTODIAN, "u-1", reason="DSR-42")
    svc.rotate_kek(CUSTODIAN, "us", reason="quarterly rotation")
    svc.retire_kek(CUSTODIAN, "us", "us-v1", reason="complete erasures since us-v1")
    # The KEK that wrapped the backup's copy is gone from the custodian's keyring file itself.
    ring = json.loads(d.config.keyring.read_text())["rings"]["us"]
    assert sorted(ring["keys"]) == ["us-v2"]
    assert ring["retired"] == ["us-v1"]
    assert ring["shredded"] == []  # entries under a destroyed KEK are no longer needed
    assert wrapped_before not in d.config.keyring.read_bytes()
    db, old = open_backup(d, backup, LocalKeyring.open(d.config.keyring))
    try:
        with pytest.raises(
            VerificationFailed, match="^the key-encryption key 'us-v1' was retired and destroyed"
        ):
            old.get("u-1", "messages", "m1")
    finally:
        db.close()
    # The live subject was rewrapped under us-v2 and still reads.
    assert svc.read("u-2", "contact", "main").fields == {"email": "bo@example.com"}


def test_erasure_fails_closed_when_the_log_is_down(subject: Deployment) -> None:
    d, svc = subject, subject.service
    d.storage.down = True
    with pytest.raises(AuditUnavailable):
        svc.erase(CUSTODIAN, "u-1", reason="DSR-42")
    d.storage.down = False
    assert d.rows_for("us", "u-1") == (3, 1)
    svc.regions["us"].evict()
    assert svc.read("u-1", "messages", "m1").fields["body"] == "hello"
    assert json.loads(d.config.keyring.read_text())["rings"]["us"]["shredded"] == []


def test_erasure_interrupted_after_shredding_is_finished_by_erasing_again(subject: Deployment) -> None:
    d, svc = subject, subject.service
    store = svc.regions["us"]
    row = store.key_row("u-1")
    assert row is not None
    store.custody.shred("us", [row.data_key, row.commitment_key])  # crash right after step 2
    store.evict()
    with pytest.raises(VerificationFailed, match="^this subject key was shredded"):
        svc.read("u-1", "contact", "main")
    receipt = svc.erase(CUSTODIAN, "u-1", reason="DSR-42 retry")
    assert receipt.records == 3
    assert d.last_event().body["subject"] is None
    assert d.rows_for("us", "u-1") == (0, 0)


def test_rotation_rewraps_keys_without_touching_record_ciphertext(subject: Deployment) -> None:
    d, svc = subject, subject.service
    records_before = d.raw(
        "us", "SELECT subject_id, record_id, public_fields, sealed_fields FROM store_records ORDER BY 1, 2"
    )
    keys_before = d.raw(
        "us", "SELECT subject_id, kek_id, wrapped_data_key FROM store_subject_keys ORDER BY 1"
    )
    report = svc.rotate_kek(CUSTODIAN, "us", reason="quarterly rotation")
    assert (report.previous_key_id, report.key_id, report.rewrapped) == ("us-v1", "us-v2", 2)
    event = d.last_event()
    assert event.type == "store.key.rotated"
    assert dict(event.body) == {
        "region": "us",
        "ring": "us",
        "previous_key": "us-v1",
        "new_key": "us-v2",
        "requested_by": {"principal": "carol", "org": "custodian"},
        "reason": "quarterly rotation",
    }
    assert d.raw(
        "us", "SELECT subject_id, record_id, public_fields, sealed_fields FROM store_records ORDER BY 1, 2"
    ) == (records_before)
    keys_after = d.raw("us", "SELECT subject_id, kek_id, wrapped_data_key FROM store_subject_keys ORDER BY 1")
    assert [k[1] for k in keys_after] == ["us-v2", "us-v2"]
    assert all(a[2] != b[2] for a, b in zip(keys_before, keys_after, strict=True))
    assert svc.read("u-1", "messages", "m2").fields["body"] == "bye"
    # The other region's keys were not touched.
    assert d.keyring.current_key_id("row") == "row-v1"


def test_keys_under_the_old_kek_still_open_until_rewrapped(subject: Deployment) -> None:
    d, svc = subject, subject.service
    d.keyring.rotate("us", "us-v2")  # the custodian rotated; the store has not rewrapped yet
    svc.regions["us"].evict()
    assert svc.read("u-1", "contact", "main").fields["email"] == "ana@example.com"
    assert d.raw("us", "SELECT DISTINCT kek_id FROM store_subject_keys") == [("us-v1",)]
    svc.create_subject(OPERATOR, "u-3", "us")  # new subjects use the current version at once
    assert d.raw("us", "SELECT kek_id FROM store_subject_keys WHERE subject_id = 'u-3'") == [("us-v2",)]
    with pytest.raises(Conflict, match="^2 subject keys are still wrapped under 'us-v1'; rewrap them first$"):
        svc.retire_kek(CUSTODIAN, "us", "us-v1", reason="too early")
    assert svc.rewrap("us") == 2
    assert d.raw("us", "SELECT DISTINCT kek_id FROM store_subject_keys") == [("us-v2",)]
    with pytest.raises(Conflict, match="^'us-v2' is region 'us''s current key; rotate before retiring it$"):
        svc.retire_kek(CUSTODIAN, "us", "us-v2", reason="wrong one")
    svc.retire_kek(CUSTODIAN, "us", "us-v1", reason="rotation complete")
    assert dict(d.last_event().body) == {
        "region": "us",
        "ring": "us",
        "key": "us-v1",
        "requested_by": {"principal": "carol", "org": "custodian"},
        "reason": "rotation complete",
    }
    svc.regions["us"].evict()
    assert svc.read("u-1", "contact", "main").fields["email"] == "ana@example.com"


def test_rotation_fails_closed_when_the_log_is_down(subject: Deployment) -> None:
    d, svc = subject, subject.service
    d.storage.down = True
    with pytest.raises(AuditUnavailable):
        svc.rotate_kek(CUSTODIAN, "us", reason="quarterly rotation")
    assert d.keyring.key_ids("us") == ("us-v1",)
    assert LocalKeyring.open(d.config.keyring).current_key_id("us") == "us-v1"
    assert d.raw("us", "SELECT DISTINCT kek_id FROM store_subject_keys") == [("us-v1",)]


def test_retirement_fails_closed_when_the_log_is_down(subject: Deployment) -> None:
    d, svc = subject, subject.service
    svc.rotate_kek(CUSTODIAN, "us", reason="quarterly rotation")
    d.storage.down = True
    with pytest.raises(AuditUnavailable):
        svc.retire_kek(CUSTODIAN, "us", "us-v1", reason="rotation complete")
    assert d.keyring.key_ids("us") == ("us-v1", "us-v2")
