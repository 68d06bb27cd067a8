"""Two regions on two separate PostgreSQL databases, a PostgreSQL control database, a real SQLite log.

The whole store path end to end: routing, a refused cross-region write (the
other database inspected directly with psycopg), relocation, egress, and an
erasure that a restored backup cannot undo.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from rempart.clock import ManualClock
from rempart.config import load_config
from rempart.errors import ResidencyViolation, VerificationFailed
from rempart.events import Event, LogRecorder
from rempart.log import create_signer, open_log
from rempart.log.sequencer import TransparencyLog
from rempart.store.egress import EgressRequest
from rempart.store.keys import LocalKeyring
from rempart.store.records import Actor
from rempart.store.service import RecordService

pytestmark = pytest.mark.postgres

OPERATOR = Actor("svc-ingest", "operator")
CUSTODIAN = Actor("carol", "custodian")


def query(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def execute_many(dsn: str, sql: str, rows: list[tuple[Any, ...]]) -> None:
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.executemany(sql, rows)


class World:
    def __init__(self, tmp: Path, dsns: dict[str, str]) -> None:
        self.dsns = dsns
        (tmp / "rempart.toml").write_text(
            f"""
[deployment]
name = "two-regions"
[control]
database = "{dsns["control"]}"
[log]
database = "sqlite:///log.db"
origin = "it.example/log"
key_file = "keys/log.key"
[keyring]
path = "keys/keyring.json"
[regions.us]
store = "{dsns["us"]}"
kek = "us"
relocation_to = ["row"]
[regions.us.egress]
destinations = ["parent-analytics"]
budgets = {{ business_metrics = 1000 }}
[regions.row]
store = "{dsns["row"]}"
kek = "row"
"""
        )
        self.config = load_config(tmp / "rempart.toml")
        signer = create_signer(self.config.log.key_file, self.config.log.origin)
        self.log: TransparencyLog = open_log(self.config.log.database, signer, checkpoint_interval=0.05)
        self.clock = ManualClock()
        self.keyring = LocalKeyring.open_or_create(self.config.keyring, ["us", "row"])
        self.service = RecordService.open(
            self.config, recorder=LogRecorder(self.log), clock=self.clock, custody=self.keyring
        )

    def events(self, kind: str) -> list[Event]:
        entries = self.log.storage.read_entries(0, self.log.size)
        return [e for e in (Event.decode(x) for x in entries) if e.type == kind]

    def close(self) -> None:
        self.service.close()
        self.log.close()


@pytest.fixture
def world(tmp_path: Path, pg_database_factory: Callable[[], str]) -> Iterator[World]:
    w = World(
        tmp_path,
        {"control": pg_database_factory(), "us": pg_database_factory(), "row": pg_database_factory()},
    )
    yield w
    w.close()


def test_two_regions_on_two_postgres_databases(world: World) -> None:
    svc, us, row = world.service, world.dsns["us"], world.dsns["row"]
    assert {s.db.dialect for s in svc.regions.values()} == {"postgres"}
    svc.create_subject(OPERATOR, "u-us", "us")
    svc.create_subject(OPERATOR, "u-row", "row")
    for sid in ("u-us", "u-row"):
        svc.write(OPERATOR, sid, "profile", "main", {"handle": f"@{sid}", "birthdate": "1990-01-01"})
        svc.write(OPERATOR, sid, "messages", "m1", {"body": f"hello from {sid}", "recipient": "u-x"})
        svc.write(OPERATOR, sid, "engagement_metrics", "d1", {"day": "2026-01-01", "views": 5})
    assert query(us, "SELECT DISTINCT subject_id FROM store_records") == [("u-us",)]
    assert query(row, "SELECT DISTINCT subject_id FROM store_records") == [("u-row",)]
    assert query(world.dsns["control"], "SELECT subject_id, home_region FROM store_subjects ORDER BY 1") == [
        ("u-row", "row"),
        ("u-us", "us"),
    ]

    # A record for a us subject arriving tagged for row is refused; row's database is untouched.
    row_before = query(
        row, "SELECT subject_id, collection, record_id, version FROM store_records ORDER BY 1, 2, 3"
    )
    with pytest.raises(ResidencyViolation, match="^refused: this subject's home region is 'us'"):
        svc.write(OPERATOR, "u-us", "contact", "main", {"email": "x@example.com"}, region="row")
    assert query(
        row, "SELECT subject_id, collection, record_id, version FROM store_records ORDER BY 1, 2, 3"
    ) == (row_before)
    assert query(row, "SELECT COUNT(*) FROM store_subject_keys WHERE subject_id = 'u-us'") == [(0,)]
    assert query(us, "SELECT COUNT(*) FROM store_records WHERE collection = 'contact'") == [(0,)]
    assert len(world.events("store.residency_violation")) == 1

    # Egress of excepted metrics for their purpose, with a digest of what left.
    transfer = svc.egress(
        OPERATOR,
        EgressRequest(
            region="us",
            collection="engagement_metrics",
            fields=("day", "views"),
            purpose="business_metrics",
            destination="parent-analytics",
        ),
    )
    [event] = world.events("egress.transfer")
    assert (event.body["count"], event.body["digest"]) == (1, hashlib.sha256(transfer.payload).hexdigest())

    # Relocation us → row moves everything and leaves nothing in us.
    svc.relocate(CUSTODIAN, "u-us", "row", reason="TICKET-1 moved abroad")
    assert query(us, "SELECT COUNT(*) FROM store_records") == [(0,)]
    assert query(us, "SELECT COUNT(*) FROM store_subject_keys") == [(0,)]
    assert svc.read("u-us", "messages", "m1").fields["body"] == "hello from u-us"
    assert svc.home_region("u-us") == "row"

    # Erasure; then a "restore" of the rows dumped before it still does not open.
    key_dump = query(row, "SELECT * FROM store_subject_keys WHERE subject_id = 'u-row'")
    record_dump = query(row, "SELECT * FROM store_records WHERE subject_id = 'u-row'")
    receipt = svc.erase(CUSTODIAN, "u-row", reason="DSR-7")
    assert receipt.records == 3
    assert query(row, "SELECT COUNT(*) FROM store_records WHERE subject_id = 'u-row'") == [(0,)]
    execute_many(row, "INSERT INTO store_subject_keys VALUES (%s, %s, %s, %s, %s)", key_dump)
    execute_many(row, "INSERT INTO store_records VALUES (%s, %s, %s, %s, %s, %s, %s)", record_dump)
    with pytest.raises(VerificationFailed, match="^this subject key was shredded by the custodian"):
        svc.regions["row"].get("u-row", "messages", "m1")
    assert [e.body["records"] for e in world.events("store.erasure")] == [3]
    # Every step is in the real log, in order.
    entries = [Event.decode(e).type for e in world.log.storage.read_entries(0, world.log.size)]
    assert entries == [
        "store.subject.created",
        "store.subject.created",
        "store.residency_violation",
        "egress.transfer",
        "store.subject.relocated",
        "store.erasure",
    ]
