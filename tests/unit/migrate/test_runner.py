"""The run end to end on a real SQLite deployment: routing, quarantine, counts, events, resumes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rempart.errors import AuditUnavailable
from rempart.events import Event
from rempart.migrate.progress import ProgressStore
from rempart.migrate.transform import UNROUTED
from rempart.store.service import RecordService
from tests.unit.migrate.conftest import World, make_world

EXPECTED = {
    "us": {"read": 4, "migrated": 2, "quarantined": 2, "records": 2, "subjects": 2},
    "row": {"read": 3, "migrated": 3, "quarantined": 0, "records": 3, "subjects": 3},
    UNROUTED: {"read": 3, "migrated": 0, "quarantined": 3, "records": 0, "subjects": 0},
}
REASONS = {
    "duplicate_record": 1,
    "missing_subject_id": 1,
    "undecodable_row": 1,
    "undecodable_value": 1,
    "unknown_region": 1,
}


def test_run_routes_seals_and_quarantines(world: World) -> None:
    report = world.run()
    assert report.counts == EXPECTED
    assert report.totals() == {"read": 10, "migrated": 5, "quarantined": 5, "records": 5, "subjects": 5}
    assert report.batches == 4 and report.redone == 0
    for region, n in report.counts.items():
        assert n["migrated"] + n["quarantined"] == n["read"], region
    service = world.deployment.service
    # The store's ordinary read path opens migrated records, in the subject's home region only.
    assert service.home_region("u1") == "us" and service.home_region("u2") == "row"
    assert dict(service.read("u1", "contact", "main").fields) == {
        "email": "ana@example.com",
        "phone": "+1 555 0101",
        "email_verified": True,
    }
    assert dict(service.read("u2", "contact", "main").fields) == {
        "email": "bea@example.fr",
        "email_verified": False,
    }
    assert world.region_rows("us") == 2 and world.region_rows("row") == 3
    assert world.deployment.rows_for("row", "u1") == (0, 0)
    assert world.progress.quarantine_reasons("legacy-test") == REASONS


def test_quarantine_keeps_reason_message_and_raw_row(world: World) -> None:
    world.run()
    entries = {q.key: q for q in world.progress.quarantine("legacy-test")}
    assert sorted(entries) == [4, 5, 6, 7, 8]
    assert (entries[4].reason, entries[4].region) == ("unknown_region", None)
    assert entries[4].message == (
        "column 'country' holds a value the region map does not list, and there is no default region"
    )
    assert entries[4].raw == '{"country": "XX", "email": "dan@example.com", "user_id": "u4"}'
    assert (entries[5].reason, entries[5].message) == ("missing_subject_id", "column 'user_id' is empty")
    assert (entries[6].reason, entries[6].region) == ("undecodable_value", "us")
    assert entries[6].message == (
        "contact.email_verified (column 'verified', type boolean): a str of length 5 is not a boolean"
    )
    assert (entries[7].reason, entries[7].raw) == ("undecodable_row", "{not json")
    assert (
        entries[7].message
        == "the line is not JSON: Expecting property name enclosed in double quotes at column 2"
    )
    assert (entries[8].reason, entries[8].region) == ("duplicate_record", "us")
    assert entries[8].message == (
        "the subject already has a contact record 'main' (an earlier row, or data already in the store)"
    )


def test_events_record_batches_and_subject_commitments(world: World) -> None:
    world.run()
    service: RecordService = world.deployment.service
    batches = world.deployment.events("migration.batch")
    assert [e.body["batch"] for e in batches] == [1, 2, 3, 4]
    first = batches[0].body
    assert (first["first_key"], first["last_key"], first["read"], first["migrated"]) == (1, 3, 3, 3)
    assert first["regions"]["us"]["read"] == 1 and first["regions"]["row"]["migrated"] == 2
    assert first["digest"] == world.progress.batches("legacy-test")[0].digest
    assert first["redo"] is False and first["requested_by"] == {
        "principal": "svc-migration",
        "org": "custodian",
    }
    created = world.deployment.events("store.subjects.created")
    listed = {(e.body["region"], c) for e in created for c in e.body["subjects"]}
    expected = {
        (service.home_region(s), service.subject_commitment(s)) for s in ["u1", "u2", "u3", "u6", "u7"]
    }
    assert listed == expected
    assert all(e.body["kek"] == f"{e.body['region']}-v1" for e in created)
    # No subject id in clear in any entry.
    for entry in world.deployment.events():
        assert '"u1"' not in entry.encode().decode()


def test_running_again_copies_nothing(world: World) -> None:
    world.run()
    entries = world.deployment.storage.size()
    again = world.run()
    assert again.counts == EXPECTED and again.batches == 4 and again.redone == 0
    assert world.region_rows("us") == 2 and world.region_rows("row") == 3
    assert world.deployment.storage.size() == entries


def test_new_legacy_rows_after_a_finished_run_are_copied_and_reopen_the_run(world: World) -> None:
    world.run()
    world.verify()
    with (world.folder / "legacy.jsonl").open("a") as f:
        f.write('{"user_id": "u8", "country": "DE", "email": "hal@example.de"}\n')
    report = world.run()
    assert report.counts["row"] == {"read": 4, "migrated": 4, "quarantined": 0, "records": 4, "subjects": 4}
    run = world.progress.get_run("legacy-test")
    assert run.verified_at is None  # verified before the new rows: must be verified again
    assert world.verify().matches


def test_workers_in_processes_give_the_same_result(tmp_path: Path) -> None:
    w = make_world(tmp_path)
    try:
        report = w.run(workers=2)
        assert report.counts == EXPECTED
        assert w.verify().matches
    finally:
        w.source.close()
        w.deployment.service.close()
        w.deployment.log.close()


def test_log_down_refuses_the_batch_and_writes_nothing(world: World) -> None:
    world.deployment.storage.down = True
    with pytest.raises(AuditUnavailable):
        world.run()
    assert world.progress.batches("legacy-test") == []
    assert world.region_rows("us") == 0 and world.region_rows("row") == 0
    assert world.deployment.service.home_regions(["u1", "u2", "u3"]) == {}
    world.deployment.storage.down = False
    assert world.run().counts == EXPECTED


class Crash(BaseException):
    """Stands for SIGKILL at one step of the batch commit protocol (nothing after it runs)."""


CRASH_POINTS = ["after_events", "after_pending", "after_claims", "after_one_region", "before_done"]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_at_each_step_then_resume_gives_exact_counts(
    world: World, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch 2 (rows 4-6: one to us, two quarantined) and batch 1 are interrupted at each step in turn."""
    service = world.deployment.service
    armed = {"on": True}

    def crash_when(condition: bool) -> None:
        if armed["on"] and condition:
            armed["on"] = False
            raise Crash(point)

    real_record_all = RecordService.record_all
    real_begin = ProgressStore.begin_batch
    real_claim = RecordService.claim_subjects
    real_finish = ProgressStore.finish_batch
    stores = service.regions
    real_puts = {name: store.put_many for name, store in stores.items()}

    def record_all(self: RecordService, events: Any) -> Any:
        out = real_record_all(self, events)
        crash_when(point == "after_events" and any(k == "migration.batch" for k, _ in events))
        return out

    def begin(self: ProgressStore, run_id: str, **kw: Any) -> None:
        real_begin(self, run_id, **kw)
        crash_when(point == "after_pending")

    def claim(self: RecordService, entries: Any, now: Any) -> int:
        n = real_claim(self, entries, now)
        crash_when(point == "after_claims" and bool(entries))
        return n

    def finish(self: ProgressStore, run_id: str, seq: int, **kw: Any) -> None:
        crash_when(point == "before_done")
        real_finish(self, run_id, seq, **kw)

    def put_row(*args: Any, **kw: Any) -> None:
        real_puts["row"](*args, **kw)
        crash_when(point == "after_one_region")

    monkeypatch.setattr(RecordService, "record_all", record_all)
    monkeypatch.setattr(ProgressStore, "begin_batch", begin)
    monkeypatch.setattr(RecordService, "claim_subjects", claim)
    monkeypatch.setattr(ProgressStore, "finish_batch", finish)
    monkeypatch.setattr(stores["row"], "put_many", put_row)
    with pytest.raises(Crash):
        world.run()
    pending = [b for b in world.progress.batches("legacy-test") if b.status == "pending"]
    assert len(pending) == (0 if point == "after_events" else 1)
    report = world.run()
    assert report.counts == EXPECTED
    assert report.redone == len(pending)
    assert world.region_rows("us") == 2 and world.region_rows("row") == 3
    assert world.region_rows("us", "store_subject_keys") == 2
    assert world.region_rows("row", "store_subject_keys") == 3
    assert len(world.progress.quarantine("legacy-test")) == 5
    assert world.verify().matches
    batch_events = [
        Event.decode(e) for e in world.deployment.storage.read_entries(0, world.deployment.storage.size())
    ]
    seqs = [e.body["batch"] for e in batch_events if e.type == "migration.batch"]
    assert seqs == [1, 1, 2, 3, 4]  # the interrupted batch is on the record twice
    assert [e.body["redo"] for e in batch_events if e.type == "migration.batch"][1] is (
        point != "after_events"
    )


def test_a_run_does_not_resume_under_another_mapping(world: World) -> None:
    world.run()
    text = (world.folder / "mapping.toml").read_text().replace("batch_size = 3", "batch_size = 4")
    (world.folder / "mapping.toml").write_text(text)
    from rempart.errors import Conflict
    from rempart.migrate.mapping import load_mapping

    world.mapping = load_mapping(
        world.folder / "mapping.toml", catalog=world.deployment.config.catalog, regions=["us", "row"]
    )
    with pytest.raises(Conflict) as caught:
        world.run()
    assert caught.value.message.startswith("run 'legacy-test' was started with another mapping file (sha256 ")
    assert caught.value.message.endswith(
        "a run resumes only with the mapping it started with: restore it, or name a new run"
    )
