"""The store's bulk paths that migration uses, on SQLite and on real PostgreSQL (same suite)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rempart.clock import ManualClock
from rempart.config import RegionConfig
from rempart.crypto import AeadCipher
from rempart.db import Database
from rempart.errors import AuditUnavailable, Conflict, InvalidInput
from rempart.events import Event, LogRecorder
from rempart.log.sequencer import TransparencyLog
from rempart.store.catalog import default_catalog
from rempart.store.directory import SubjectDirectory
from rempart.store.egress import EgressBudgets
from rempart.store.keys import LocalKeyring
from rempart.store.records import Actor
from rempart.store.region import RegionStore, open_record, prepare_subject_keys, seal_record
from rempart.store.service import SUBJECTS_PER_EVENT, RecordService
from rempart.tlog.checkpoint import sign_checkpoint
from tests.unit.store.conftest import LOG_SIGNER, SwitchableLogStorage

NOW = datetime(2026, 3, 1, tzinfo=UTC)
ACTOR = Actor("svc-migration", "custodian")


class Bulk:
    def __init__(self, region_url: str, control_url: str, keyring: Path) -> None:
        self.storage = SwitchableLogStorage()
        self.log = TransparencyLog(
            storage=self.storage, origin="t/log", sign=lambda cp: sign_checkpoint(cp, [LOG_SIGNER])
        )
        self.keyring = LocalKeyring.create(keyring, ["us"])
        self.region_db = Database.open(region_url)
        self.control_db = Database.open(control_url)
        self.store = RegionStore(
            region="us", database=self.region_db, catalog=default_catalog(), custody=self.keyring, ring="us"
        )
        self.service = RecordService(
            catalog=default_catalog(),
            directory=SubjectDirectory(self.control_db),
            regions={"us": self.store},
            rules={"us": RegionConfig("us", region_url, "us")},
            budgets=EgressBudgets(self.control_db),
            recorder=LogRecorder(self.log),
            clock=ManualClock(NOW),
        )

    def close(self) -> None:
        self.service.close()
        self.region_db.close()
        self.control_db.close()
        self.log.close()

    def events(self, kind: str) -> list[Event]:
        return [
            e
            for e in (Event.decode(b) for b in self.storage.read_entries(0, self.storage.size()))
            if e.type == kind
        ]


@pytest.fixture(params=["sqlite", "postgres"])
def bulk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bulk]:
    if request.param == "sqlite":
        urls = (f"sqlite:///{tmp_path}/us.db", f"sqlite:///{tmp_path}/control.db")
    else:
        factory: Any = request.getfixturevalue("pg_database_factory")
        urls = (factory(), factory())
    b = Bulk(*urls, tmp_path / "keyring.json")
    yield b
    b.close()


def sealed_for(b: Bulk, subject_id: str, email: str) -> tuple[Any, Any]:
    prepared = prepare_subject_keys(b.keyring, "us", "us", subject_id, NOW)
    rec = seal_record(
        AeadCipher(prepared.data_key),
        region="us",
        spec=default_catalog().collection("profile"),
        subject_id=subject_id,
        record_id="main",
        fields={"handle": f"@{subject_id}", "full_name": email, "verified": True},
        updated_at=NOW,
    )
    return prepared, rec


def test_put_many_writes_what_the_ordinary_read_path_opens(bulk: Bulk) -> None:
    pairs = [sealed_for(bulk, f"s{i}", f"Name {i}") for i in range(3)]
    marks: list[int] = []
    bulk.store.put_many([p.row for p, _ in pairs], [r for _, r in pairs], within=lambda tx: marks.append(1))
    assert marks == [1]
    got = bulk.store.get("s1", "profile", "main")
    assert dict(got.fields) == {"handle": "@s1", "full_name": "Name 1", "verified": True}
    assert got.version == 1
    # The public index was written too: a query by a public field finds the record.
    found = bulk.store.query("profile", where={"handle": "@s2"})
    assert [r.subject_id for r in found.items] == ["s2"]
    assert sorted(bulk.store.key_rows(["s0", "s2", "nobody"])) == ["s0", "s2"]
    assert bulk.store.record_keys(["s0", "s1"]) == {("s0", "profile", "main"), ("s1", "profile", "main")}
    sealed = bulk.store.sealed_records(["s2"])
    cipher = AeadCipher(pairs[2][0].data_key)
    assert dict(open_record(cipher, "us", sealed[0]).fields)["full_name"] == "Name 2"


def test_put_many_is_all_or_nothing(bulk: Bulk) -> None:
    first = sealed_for(bulk, "s1", "A")
    bulk.store.put_many([first[0].row], [first[1]])
    again = sealed_for(bulk, "s1", "B")
    other = sealed_for(bulk, "s2", "C")
    with pytest.raises(Conflict) as caught:
        bulk.store.put_many([other[0].row, again[0].row], [other[1]])
    assert caught.value.message == "region 'us' already holds keys for some of these subjects"
    assert bulk.store.key_rows(["s2"]) == {}
    # A record whose subject has no keys here is refused by the foreign key; nothing is written.
    orphan = sealed_for(bulk, "s3", "D")
    with pytest.raises(Conflict):
        bulk.store.put_many([other[0].row], [other[1], orphan[1]])
    assert bulk.store.key_rows(["s2", "s3"]) == {}

    # The marker callback failing rolls the whole batch back.
    def boom(tx: Any) -> None:
        raise InvalidInput("marker refused")

    with pytest.raises(InvalidInput):
        bulk.store.put_many([other[0].row], [other[1]], within=boom)
    assert bulk.store.key_rows(["s2"]) == {}


def test_create_subjects_records_one_entry_per_800_and_claims_all(bulk: Bulk) -> None:
    ids = [f"user-{i:04d}" for i in range(SUBJECTS_PER_EVENT + 5)]
    infos = bulk.service.create_subjects(ACTOR, "us", ids)
    assert [i.subject_id for i in infos] == ids
    events = bulk.events("store.subjects.created")
    assert [(e.body["count"], e.body["part"], e.body["parts"]) for e in events] == [(800, 1, 2), (5, 2, 2)]
    assert [c for e in events for c in e.body["subjects"]] == [
        bulk.service.subject_commitment(s) for s in ids
    ]
    assert events[0].body["kek"] == "us-v1" and events[0].body["requested_by"] == ACTOR.as_entry()
    assert bulk.service.home_regions([*ids[:3], "nobody"]) == dict.fromkeys(ids[:3], "us")
    assert infos[801].position == infos[804].position != infos[0].position
    with pytest.raises(Conflict) as caught:
        bulk.service.create_subjects(ACTOR, "us", ["new-1", ids[0]])
    assert caught.value.message == "1 of these subjects already exist"


def test_claims_are_idempotent_and_refuse_another_home(bulk: Bulk) -> None:
    assert bulk.service.claim_subjects({"a": "us", "b": "us"}, NOW) == 2
    assert bulk.service.claim_subjects({"a": "us", "c": "us"}, NOW) == 1
    with pytest.raises(InvalidInput):
        bulk.service.claim_subjects({"d": "mars"}, NOW)
    bulk.control_db.migrate([])
    with bulk.control_db.transaction() as tx:
        tx.execute("UPDATE store_subjects SET home_region = 'elsewhere' WHERE subject_id = 'b'")
    with pytest.raises(Conflict) as caught:
        bulk.service.claim_subjects({"b": "us", "e": "us"}, NOW)
    assert caught.value.message == "1 of these subjects already have another home region"
    assert bulk.service.home_regions(["e"]) == {}


def test_bulk_creation_fails_closed_when_the_log_is_down(bulk: Bulk) -> None:
    bulk.storage.down = True
    with pytest.raises(AuditUnavailable):
        bulk.service.create_subjects(ACTOR, "us", ["x1", "x2"])
    assert bulk.service.home_regions(["x1", "x2"]) == {}
    assert bulk.store.key_rows(["x1", "x2"]) == {}
