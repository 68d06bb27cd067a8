"""A database administrator edits rows directly: every change fails the integrity check, by name."""

from __future__ import annotations

import pytest

from rempart.errors import VerificationFailed
from tests.unit.store.conftest import OPERATOR, Deployment

ALTERED = (
    "its sealed fields, public fields, version or update time were altered in the database, or copied "
    "from another row, subject or region"
)


def envelope_of(d: Deployment, region: str, subject: str, collection: str, record: str) -> bytes:
    [(blob,)] = d.raw(
        region,
        "SELECT sealed_fields FROM store_records WHERE subject_id = ? AND collection = ? AND record_id = ?",
        (subject, collection, record),
    )
    return bytes(blob)


def set_envelope(
    d: Deployment, region: str, subject: str, collection: str, record: str, blob: bytes | str
) -> None:
    changed = d.raw_write(
        region,
        "UPDATE store_records SET sealed_fields = ? "
        "WHERE subject_id = ? AND collection = ? AND record_id = ?",
        (blob, subject, collection, record),
    )
    assert changed == 1
    d.service.regions[region].evict()


@pytest.fixture
def two_subjects(deployment: Deployment) -> Deployment:
    svc = deployment.service
    for sid in ("u-1", "u-2"):
        svc.create_subject(OPERATOR, sid, "us")
        svc.write(OPERATOR, sid, "contact", "main", {"email": f"{sid}@example.com", "phone": "+1 555"})
        svc.write(OPERATOR, sid, "contact", "work", {"email": f"{sid}@work.example", "phone": "+1 556"})
    svc.create_subject(OPERATOR, "u-row", "row")
    svc.write(OPERATOR, "u-row", "contact", "main", {"email": "row@example.com", "phone": "+44 1"})
    return deployment


def test_envelope_swapped_between_subjects_fails_integrity(two_subjects: Deployment) -> None:
    d = two_subjects
    set_envelope(d, "us", "u-1", "contact", "main", envelope_of(d, "us", "u-2", "contact", "main"))
    with pytest.raises(VerificationFailed) as caught:
        d.service.read("u-1", "contact", "main")
    assert str(caught.value) == f"integrity check failed for us/contact/main: {ALTERED}"
    assert caught.value.code == "verification_failed"
    # Nothing else is affected: the subject's other record, and the other subject, still read.
    assert d.service.read("u-1", "contact", "work").fields["email"] == "u-1@work.example"
    assert d.service.read("u-2", "contact", "main").fields["email"] == "u-2@example.com"


def test_envelope_moved_to_another_row_of_the_same_subject_fails(two_subjects: Deployment) -> None:
    d = two_subjects
    set_envelope(d, "us", "u-1", "contact", "work", envelope_of(d, "us", "u-1", "contact", "main"))
    with pytest.raises(VerificationFailed, match=f"^integrity check failed for us/contact/work: {ALTERED}$"):
        d.service.read("u-1", "contact", "work")


def test_envelope_copied_to_the_other_regions_database_fails(two_subjects: Deployment) -> None:
    d = two_subjects
    set_envelope(d, "row", "u-row", "contact", "main", envelope_of(d, "us", "u-1", "contact", "main"))
    with pytest.raises(VerificationFailed, match=f"^integrity check failed for row/contact/main: {ALTERED}$"):
        d.service.read("u-row", "contact", "main")


def test_whole_rows_and_keys_copied_to_the_other_region_do_not_open(two_subjects: Deployment) -> None:
    """A DBA copies a subject's key row and records into the other region's database."""
    d = two_subjects
    [keys] = d.raw("us", "SELECT * FROM store_subject_keys WHERE subject_id = 'u-1'")
    records = d.raw("us", "SELECT * FROM store_records WHERE subject_id = 'u-1'")
    d.raw_write("row", "INSERT INTO store_subject_keys VALUES (?, ?, ?, ?, ?)", keys)
    for rec in records:
        d.raw_write("row", "INSERT INTO store_records VALUES (?, ?, ?, ?, ?, ?, ?)", rec)
    row_store = d.service.regions["row"]
    with pytest.raises(VerificationFailed, match="^ring 'row' holds no key-encryption key 'us-v1'$"):
        row_store.get("u-1", "contact", "main")
    # Even re-labelled as wrapped by the row region's own KEK version, the wrap is bound to its region.
    d.raw_write("row", "UPDATE store_subject_keys SET kek_id = 'row-v1' WHERE subject_id = 'u-1'")
    row_store.evict()
    with pytest.raises(VerificationFailed) as caught:
        row_store.get("u-1", "contact", "main")
    assert str(caught.value) == (
        "integrity check failed unwrapping a subject key under 'row-v1': the wrapped key was altered or "
        "belongs to another subject, kind or region"
    )


def test_wrapped_keys_swapped_between_subjects_fail(two_subjects: Deployment) -> None:
    d = two_subjects
    [(dk2,)] = d.raw("us", "SELECT wrapped_data_key FROM store_subject_keys WHERE subject_id = 'u-2'")
    d.raw_write("us", "UPDATE store_subject_keys SET wrapped_data_key = ? WHERE subject_id = 'u-1'", (dk2,))
    d.service.regions["us"].evict()
    with pytest.raises(
        VerificationFailed, match="^integrity check failed unwrapping a subject key under 'us-v1'"
    ):
        d.service.read("u-1", "contact", "main")


def test_public_fields_edited_in_place_fail_the_envelope(deployment: Deployment) -> None:
    svc = deployment.service
    svc.create_subject(OPERATOR, "u-1", "us")
    svc.write(
        OPERATOR, "u-1", "videos", "v1", {"title": "Cats", "visibility": "private", "upload_ip": "10.0.0.1"}
    )
    deployment.raw_write(
        "us",
        "UPDATE store_records SET public_fields = ? WHERE record_id = 'v1'",
        ('{"title":"Cats","visibility":"public"}',),
    )
    with pytest.raises(VerificationFailed) as caught:
        svc.read("u-1", "videos", "v1")
    assert str(caught.value) == f"integrity check failed for us/videos/v1: {ALTERED}"


def test_the_version_rolled_back_or_forward_fails(two_subjects: Deployment) -> None:
    d = two_subjects
    assert d.service.read("u-1", "contact", "main").version == 1
    d.raw_write("us", "UPDATE store_records SET version = 7 WHERE subject_id = 'u-1' AND record_id = 'main'")
    with pytest.raises(VerificationFailed, match=f"^integrity check failed for us/contact/main: {ALTERED}$"):
        d.service.read("u-1", "contact", "main")


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("updated_at", "2020-01-01T00:00:00.000000Z"),  # any column of the row is bound
        ("version", "1:x"),  # text where a version goes: refused before it reaches the binding
        ("updated_at", b"2026"),
        ("public_fields", b"{}"),
    ],
)
def test_any_other_column_edited_fails(two_subjects: Deployment, column: str, value: object) -> None:
    d = two_subjects
    d.raw_write(
        "us",
        f"UPDATE store_records SET {column} = ? WHERE subject_id = 'u-1' AND record_id = 'main'",
        (value,),
    )
    with pytest.raises(VerificationFailed) as caught:
        d.service.read("u-1", "contact", "main")
    assert str(caught.value) in (
        f"integrity check failed for us/contact/main: {ALTERED}",
        "integrity check failed for us/contact/main: its version is not an integer (altered in the database)",
    )
    assert d.service.read("u-1", "contact", "work").version == 1


def test_a_row_planted_in_the_public_index_does_not_make_a_match(deployment: Deployment) -> None:
    svc = deployment.service
    svc.create_subject(OPERATOR, "u-1", "us")
    svc.write(OPERATOR, "u-1", "videos", "v1", {"title": "Cats", "visibility": "private"})
    svc.write(OPERATOR, "u-1", "videos", "v2", {"title": "Dogs", "visibility": "public"})
    assert [r.record_id for r in svc.query("us", "videos", where={"visibility": "public"}).items] == ["v2"]
    deployment.raw_write(
        "us",
        "INSERT INTO store_public_values (collection, field, value, subject_id, record_id) "
        "VALUES ('videos', 'visibility', '\"public\"', 'u-1', 'v1')",
    )
    with pytest.raises(VerificationFailed) as caught:
        svc.query("us", "videos", where={"visibility": "public"})
    assert str(caught.value) == (
        "integrity check failed for us/videos/v1: the public-value index says visibility matches, but the "
        "record's visibility does not (the index was altered in the database)"
    )


def test_an_older_envelope_of_the_same_row_fails(two_subjects: Deployment) -> None:
    """A DBA restores the row's previous bytes but keeps the current version number."""
    d = two_subjects
    old = envelope_of(d, "us", "u-1", "contact", "main")
    d.service.write(OPERATOR, "u-1", "contact", "main", {"email": "new@example.com"}, expected_version=1)
    set_envelope(d, "us", "u-1", "contact", "main", old)
    with pytest.raises(VerificationFailed, match=f"^integrity check failed for us/contact/main: {ALTERED}$"):
        d.service.read("u-1", "contact", "main")


@pytest.mark.parametrize(
    ("blob", "shown"),
    [
        (b"", "missing"),
        (b"\x01\x05email\x00\x00\xff", "01"),
        ("\x02 text, not a blob", "missing"),  # what `X'02' || ...` leaves in SQLite: a TEXT value
        (b"\x02" + bytes(10), None),
    ],
)
def test_a_malformed_envelope_is_an_integrity_failure(
    two_subjects: Deployment, blob: bytes | str, shown: str | None
) -> None:
    d = two_subjects
    set_envelope(d, "us", "u-1", "contact", "main", blob)
    with pytest.raises(VerificationFailed) as caught:
        d.service.read("u-1", "contact", "main")
    if shown is None:  # the right format byte but too short to hold a nonce and a tag
        assert str(caught.value) == f"integrity check failed for us/contact/main: {ALTERED}"
    else:
        assert str(caught.value) == (
            f"integrity check failed for us/contact/main: its sealed fields are malformed "
            f"(format byte {shown}, expected 02)"
        )
