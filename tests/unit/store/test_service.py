"""RecordService on SQLite regions: routing, residency refusals, relocation, fail-closed recording."""

from __future__ import annotations

import pytest

from rempart.errors import AuditUnavailable, Conflict, InvalidInput, NotFound, ResidencyViolation
from rempart.events import subject_commitment
from rempart.store.records import Actor
from tests.unit.store.conftest import CUSTODIAN, OPERATOR, Deployment

PROFILE = {"handle": "@ana", "display_name": "Ana", "birthdate": "1990-04-01", "language": "en"}


def test_create_subject_records_the_event_and_puts_keys_only_in_the_home_region(
    deployment: Deployment,
) -> None:
    info = deployment.service.create_subject(OPERATOR, "u-1", "us")
    event = deployment.last_event()
    assert event.type == "store.subject.created"
    ck = deployment.service.commitment_key("u-1")
    assert info.commitment == subject_commitment(ck, "u-1")
    assert dict(event.body) == {
        "subject": info.commitment,
        "region": "us",
        "kek": "us-v1",
        "requested_by": {"principal": "alice", "org": "operator"},
    }
    assert info.position.index == 0
    assert deployment.rows_for("us", "u-1") == (0, 1)
    assert deployment.rows_for("row", "u-1") == (0, 0)
    assert deployment.control("SELECT subject_id, home_region FROM store_subjects") == [("u-1", "us")]
    assert "u-1" not in str(event.encode())


def test_create_subject_refusals(deployment: Deployment) -> None:
    deployment.service.create_subject(OPERATOR, "u-1", "us")
    with pytest.raises(Conflict, match="^a subject with this id already exists$"):
        deployment.service.create_subject(OPERATOR, "u-1", "row")
    with pytest.raises(InvalidInput, match=r"^unknown region 'eu' \(known: row, us\)$"):
        deployment.service.create_subject(OPERATOR, "u-2", "eu")
    with pytest.raises(InvalidInput, match="^subject id 'bad id' must be 1 to 128 characters"):
        deployment.service.create_subject(OPERATOR, "bad id", "us")
    assert deployment.rows_for("row", "u-1") == (0, 0)
    assert len(deployment.events("store.subject.created")) == 1


def test_create_subject_fails_closed_when_the_log_is_down(deployment: Deployment) -> None:
    deployment.storage.down = True
    with pytest.raises(
        AuditUnavailable, match="^the log could not record the entry: log database unreachable$"
    ):
        deployment.service.create_subject(OPERATOR, "u-1", "us")
    assert deployment.control("SELECT COUNT(*) FROM store_subjects") == [(0,)]
    assert deployment.rows_for("us", "u-1") == (0, 0)
    deployment.storage.down = False
    deployment.service.create_subject(OPERATOR, "u-1", "us")  # nothing left behind blocks a retry
    assert deployment.rows_for("us", "u-1") == (0, 1)


def test_records_are_routed_to_the_home_region(deployment: Deployment) -> None:
    svc = deployment.service
    svc.create_subject(OPERATOR, "u-us", "us")
    svc.create_subject(OPERATOR, "u-row", "row")
    svc.write(OPERATOR, "u-us", "profile", "main", PROFILE)
    svc.write(OPERATOR, "u-row", "profile", "main", PROFILE, region="row")
    assert deployment.rows_for("us", "u-us") == (1, 1)
    assert deployment.rows_for("row", "u-us") == (0, 0)
    assert deployment.rows_for("row", "u-row") == (1, 1)
    assert deployment.rows_for("us", "u-row") == (0, 0)
    assert svc.read("u-row", "profile", "main").fields == PROFILE
    # Protected values are not in the database in clear; public ones are.
    [(public, sealed)] = deployment.raw(
        "us", "SELECT public_fields, sealed_fields FROM store_records WHERE subject_id = 'u-us'"
    )
    assert public == '{"display_name":"Ana","handle":"@ana"}'
    assert b"1990-04-01" not in sealed and b"birthdate" not in sealed


def test_a_record_tagged_with_another_region_is_refused_and_recorded(deployment: Deployment) -> None:
    svc = deployment.service
    svc.create_subject(OPERATOR, "u-us", "us")
    svc.write(OPERATOR, "u-us", "profile", "main", PROFILE)
    before = deployment.raw("us", "SELECT version, sealed_fields FROM store_records")
    with pytest.raises(ResidencyViolation) as caught:
        svc.write(OPERATOR, "u-us", "contact", "main", {"email": "ana@example.com"}, region="row")
    assert str(caught.value) == (
        "refused: this subject's home region is 'us'; its records are stored only there, not in 'row'"
    )
    assert caught.value.code == "residency_violation"
    event = deployment.last_event()
    assert event.type == "store.residency_violation"
    assert dict(event.body) == {
        "subject": svc.subject_commitment("u-us"),
        "home_region": "us",
        "attempted_region": "row",
        "operation": "write",
        "collection": "contact",
        "requested_by": {"principal": "alice", "org": "operator"},
    }
    # Nothing reached the other region's database, nor the home one.
    assert deployment.raw("row", "SELECT COUNT(*) FROM store_records") == [(0,)]
    assert deployment.raw("row", "SELECT COUNT(*) FROM store_subject_keys") == [(0,)]
    assert deployment.raw("row", "SELECT COUNT(*) FROM store_public_values") == [(0,)]
    assert deployment.raw("us", "SELECT version, sealed_fields FROM store_records") == before


def test_a_residency_violation_that_cannot_be_recorded_is_still_refused(deployment: Deployment) -> None:
    svc = deployment.service
    svc.create_subject(OPERATOR, "u-us", "us")
    deployment.storage.down = True
    with pytest.raises(AuditUnavailable):
        svc.write(OPERATOR, "u-us", "contact", "main", {"email": "ana@example.com"}, region="row")
    assert deployment.raw("row", "SELECT COUNT(*) FROM store_records") == [(0,)]
    assert deployment.rows_for("us", "u-us") == (0, 1)


def test_the_region_store_itself_refuses_a_subject_homed_elsewhere(deployment: Deployment) -> None:
    svc = deployment.service
    svc.create_subject(OPERATOR, "u-us", "us")
    with pytest.raises(ResidencyViolation) as caught:
        svc.regions["row"].put(
            "u-us",
            "contact",
            "main",
            {"email": "x@example.com"},
            expected_version=None,
            now=deployment.clock.now(),
        )
    assert str(caught.value) == (
        "region 'row' is not this subject's home: its store holds no keys for the subject, "
        "so it will not store the subject's fields"
    )
    assert deployment.raw("row", "SELECT COUNT(*) FROM store_records") == [(0,)]


def test_unknown_subject_collection_and_field_are_refused(deployment: Deployment) -> None:
    svc = deployment.service
    with pytest.raises(NotFound, match="^no such subject in the directory$"):
        svc.write(OPERATOR, "ghost", "profile", "main", PROFILE)
    svc.create_subject(OPERATOR, "u-1", "us")
    with pytest.raises(
        InvalidInput, match=r"^collection 'payments' is not in the catalog \(known: contact, "
    ):
        svc.write(OPERATOR, "u-1", "payments", "main", {"iban": "x"})
    with pytest.raises(
        InvalidInput, match=r"^collection 'contact' has no field 'iban' in the catalog \(known: "
    ):
        svc.write(OPERATOR, "u-1", "contact", "main", {"iban": "x"})
    with pytest.raises(InvalidInput, match=r"^contact.email: nan is not a finite number$"):
        svc.write(OPERATOR, "u-1", "contact", "main", {"email": float("nan")})
    assert deployment.rows_for("us", "u-1") == (0, 1)


def test_concurrent_writers_get_a_conflict_not_a_lost_update(deployment: Deployment) -> None:
    svc = deployment.service
    svc.create_subject(OPERATOR, "u-1", "us")
    first = svc.write(OPERATOR, "u-1", "contact", "main", {"email": "a@example.com"})
    svc.write(OPERATOR, "u-1", "contact", "main", {"email": "b@example.com"}, expected_version=first.version)
    with pytest.raises(Conflict) as caught:
        svc.write(
            OPERATOR, "u-1", "contact", "main", {"email": "c@example.com"}, expected_version=first.version
        )
    assert str(caught.value) == (
        "contact record 'main' is at version 2, not 1: someone else changed it; read it again"
    )
    assert caught.value.details == {"current_version": 2}
    assert svc.read("u-1", "contact", "main").fields == {"email": "b@example.com"}


def test_relocation_refused_by_the_region_rules_is_recorded(deployment: Deployment) -> None:
    svc = deployment.service
    svc.create_subject(OPERATOR, "u-row", "row")
    svc.write(OPERATOR, "u-row", "contact", "main", {"email": "a@example.com"})
    with pytest.raises(ResidencyViolation) as caught:
        svc.relocate(CUSTODIAN, "u-row", "us", reason="TICKET-7 user moved")
    assert (
        str(caught.value)
        == "relocation from 'row' to 'us' is not allowed by the rules of region 'row' (allowed: none)"
    )
    event = deployment.last_event()
    assert event.type == "store.subject.relocation_refused"
    assert dict(event.body) == {
        "subject": svc.subject_commitment("u-row"),
        "from_region": "row",
        "to_region": "us",
        "allowed": [],
        "requested_by": {"principal": "carol", "org": "custodian"},
        "reason": "TICKET-7 user moved",
    }
    assert deployment.rows_for("us", "u-row") == (0, 0)
    assert deployment.rows_for("row", "u-row") == (1, 1)
    assert svc.home_region("u-row") == "row"


def test_relocation_moves_keys_and_records_and_leaves_nothing_behind(deployment: Deployment) -> None:
    svc = deployment.service
    svc.create_subject(OPERATOR, "u-1", "us")
    commitment = svc.subject_commitment("u-1")
    svc.write(OPERATOR, "u-1", "profile", "main", PROFILE)
    v1 = svc.write(OPERATOR, "u-1", "contact", "main", {"email": "a@example.com"})
    svc.write(OPERATOR, "u-1", "contact", "main", {"email": "b@example.com"}, expected_version=v1.version)
    backup = deployment.backup("us", deployment.data / "us-before-move.db")
    receipt = svc.relocate(CUSTODIAN, "u-1", "row", reason="TICKET-9 residence changed")
    assert (receipt.from_region, receipt.to_region, receipt.records) == ("us", "row", 2)
    assert svc.home_region("u-1") == "row"
    assert deployment.rows_for("us", "u-1") == (0, 0)
    assert deployment.rows_for("row", "u-1") == (2, 1)
    moved = svc.read("u-1", "contact", "main")
    assert (moved.version, moved.fields) == (2, {"email": "b@example.com"})
    assert svc.read("u-1", "profile", "main").fields == PROFILE
    assert svc.query("row", "profile", where={"handle": "@ana"}).items[0].subject_id == "u-1"
    # The commitment key moved with the subject, so its log entries stay linked.
    assert svc.subject_commitment("u-1") == commitment
    event = deployment.events("store.subject.relocated")[0]
    assert dict(event.body) == {
        "subject": commitment,
        "from_region": "us",
        "to_region": "row",
        "records": 2,
        "requested_by": {"principal": "carol", "org": "custodian"},
        "reason": "TICKET-9 residence changed",
    }
    # The source region's old copy (a backup taken before the move) no longer opens.
    from rempart.db import Database
    from rempart.errors import VerificationFailed
    from rempart.store.region import RegionStore

    db = Database.open(f"sqlite:///{backup}")
    try:
        old = RegionStore(
            region="us", database=db, catalog=svc.catalog, custody=deployment.keyring, ring="us"
        )
        with pytest.raises(VerificationFailed, match="^this subject key was shredded by the custodian"):
            old.get("u-1", "contact", "main")
    finally:
        db.close()


def test_relocation_fails_closed_when_the_log_is_down(deployment: Deployment) -> None:
    svc = deployment.service
    svc.create_subject(OPERATOR, "u-1", "us")
    svc.write(OPERATOR, "u-1", "contact", "main", {"email": "a@example.com"})
    deployment.storage.down = True
    with pytest.raises(AuditUnavailable):
        svc.relocate(CUSTODIAN, "u-1", "row", reason="TICKET-9")
    assert svc.home_region("u-1") == "us"
    assert deployment.rows_for("row", "u-1") == (0, 0)
    assert deployment.rows_for("us", "u-1") == (1, 1)
    assert deployment.control("SELECT relocating_to FROM store_subjects") == [(None,)]


def test_writes_wait_while_a_relocation_is_in_progress(deployment: Deployment) -> None:
    svc = deployment.service
    svc.create_subject(OPERATOR, "u-1", "us")
    svc.directory.begin_move("u-1", "us", "row")
    with pytest.raises(Conflict, match="^the subject is being relocated to 'row'; retry when it is done$"):
        svc.write(OPERATOR, "u-1", "contact", "main", {"email": "a@example.com"})
    assert deployment.rows_for("us", "u-1") == (0, 1)


def test_reconcile_removes_what_an_interrupted_relocation_left(deployment: Deployment) -> None:
    svc = deployment.service
    svc.create_subject(OPERATOR, "u-1", "us")
    svc.write(OPERATOR, "u-1", "contact", "main", {"email": "a@example.com"})
    # Simulate a crash after the directory switched the home but before the source copy was deleted.
    records = svc.regions["us"].export_subject("u-1")
    prepared = svc.regions["row"].prepare_keys(
        "u-1", deployment.clock.now(), commitment_key=svc.commitment_key("u-1")
    )
    svc.regions["row"].import_subject(prepared, records)
    svc.directory.begin_move("u-1", "us", "row")
    svc.directory.finish_move("u-1", "us", "row")
    assert deployment.rows_for("us", "u-1") == (1, 1)
    report = svc.reconcile()
    assert dict(report.purged) == {"us": ("u-1",)}
    assert deployment.rows_for("us", "u-1") == (0, 0)
    assert svc.read("u-1", "contact", "main").fields == {"email": "a@example.com"}
    event = deployment.last_event()
    assert (event.type, event.body["region"], event.body["home_region"], event.body["records"]) == (
        "store.leftover_purged",
        "us",
        "row",
        1,
    )
    assert svc.reconcile().purged == {}


def test_reconcile_removes_a_directory_claim_whose_keys_never_arrived(deployment: Deployment) -> None:
    svc = deployment.service
    svc.directory.add("u-crashed", "us", deployment.clock.now())
    assert svc.reconcile().unclaimed == ()  # too recent: a creation may be in flight
    deployment.clock.advance(hours=2)
    assert svc.reconcile().unclaimed == ("u-crashed",)
    assert svc.directory.find("u-crashed") is None


def test_listing_and_pagination(deployment: Deployment) -> None:
    svc = deployment.service
    svc.create_subject(OPERATOR, "u-1", "us")
    for i in range(5):
        svc.write(OPERATOR, "u-1", "videos", f"v{i}", {"title": f"T{i}", "visibility": "public"})
    svc.write(OPERATOR, "u-1", "contact", "main", {"email": "a@example.com"})
    page = svc.list_records("u-1", limit=4)
    assert [(r.collection, r.record_id) for r in page.items] == [
        ("contact", "main"),
        ("videos", "v0"),
        ("videos", "v1"),
        ("videos", "v2"),
    ]
    assert page.next_cursor is not None
    rest = svc.list_records("u-1", limit=4, cursor=page.next_cursor)
    assert [r.record_id for r in rest.items] == ["v3", "v4"]
    assert rest.next_cursor is None
    only = svc.list_records("u-1", collection="videos", limit=10, fields=["title"])
    assert [r.fields for r in only.items] == [{"title": f"T{i}"} for i in range(5)]
    with pytest.raises(InvalidInput, match="^cursor is not one this store issued$"):
        svc.list_records("u-1", cursor="garbage!")


def test_actor_values_are_validated() -> None:
    with pytest.raises(InvalidInput, match="^org 'Parent Co' must be a lower_snake word"):
        Actor("bob", "Parent Co")
    with pytest.raises(InvalidInput, match="^principal id '' must be 1 to 128 characters"):
        Actor("", "parent")


def test_refusals_that_cannot_be_recorded_are_still_refused(deployment: Deployment) -> None:
    """With the log down, a refused relocation is still refused (AuditUnavailable) and changes nothing."""
    svc = deployment.service
    svc.create_subject(OPERATOR, "u-row", "row")
    deployment.storage.down = True
    with pytest.raises(AuditUnavailable):
        svc.relocate(CUSTODIAN, "u-row", "us", reason="TICKET-7")
    assert svc.home_region("u-row") == "row"
    assert deployment.rows_for("us", "u-row") == (0, 0)


def test_fields_must_be_a_list_of_names(deployment: Deployment) -> None:
    svc = deployment.service
    svc.create_subject(OPERATOR, "u-1", "us")
    svc.write(OPERATOR, "u-1", "contact", "main", {"email": "a@example.com"})
    with pytest.raises(InvalidInput, match="^fields must be a list of field names, not one string$"):
        svc.read("u-1", "contact", "main", fields="email")
