"""A small real deployment for the store tests: SQLite regions, a real transparency log.

The log is a real :class:`TransparencyLog` over in-memory storage that can be
switched off (it then raises StorageUnavailable, as a dead database would), so
fail-closed behaviour is tested against the real sequencer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rempart.clock import ManualClock
from rempart.config import Config, load_config
from rempart.errors import StorageUnavailable
from rempart.events import Event, LogRecorder
from rempart.log.memory import MemoryLogStorage
from rempart.log.sequencer import TransparencyLog
from rempart.store.egress import EgressExceptions
from rempart.store.keys import LocalKeyring
from rempart.store.records import Actor
from rempart.store.service import RecordService
from rempart.tlog.checkpoint import sign_checkpoint
from rempart.tlog.merkle import NodeId
from rempart.tlog.note import Signer

CONFIG = """\
[deployment]
name = "test"

[control]
database = "sqlite:///control.db"

[log]
database = "sqlite:///log.db"
origin = "test.example/log"
key_file = "keys/log.key"

[keyring]
path = "keys/keyring.json"

[regions.us]
store = "sqlite:///regions/us.db"
kek = "us"
relocation_to = ["row"]

[regions.us.egress]
destinations = ["parent-analytics"]
budgets = { business_metrics = 3 }

[regions.row]
store = "sqlite:///regions/row.db"
kek = "row"

[regions.row.egress]
destinations = ["us-custodian"]
"""

LOG_SIGNER = Signer.generate("test.example/log")
OPERATOR = Actor("alice", "operator")
CUSTODIAN = Actor("carol", "custodian")


class SwitchableLogStorage(MemoryLogStorage):
    """In-memory log storage whose database can be 'down': appends then raise StorageUnavailable."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def append(self, first: int, entries: Sequence[bytes], nodes: Sequence[tuple[NodeId, bytes]]) -> None:
        if self.down:
            raise StorageUnavailable("log database unreachable")
        super().append(first, entries, nodes)


@dataclass
class Deployment:
    data: Path
    config: Config
    service: RecordService
    log: TransparencyLog
    storage: SwitchableLogStorage
    clock: ManualClock
    keyring: LocalKeyring

    def events(self, kind: str | None = None) -> list[Event]:
        events = [Event.decode(e) for e in self.storage.read_entries(0, self.storage.size())]
        return [e for e in events if kind is None or e.type == kind]

    def last_event(self) -> Event:
        return self.events()[-1]

    def region_path(self, region: str) -> Path:
        return self.data / "regions" / f"{region}.db"

    def raw(self, region: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Read a region's database directly with the driver, bypassing Rempart."""
        conn = sqlite3.connect(self.region_path(region))
        try:
            return conn.execute(sql, tuple(params)).fetchall()
        finally:
            conn.close()

    def raw_write(self, region: str, sql: str, params: Sequence[Any] = ()) -> int:
        conn = sqlite3.connect(self.region_path(region))
        try:
            with conn:
                return conn.execute(sql, tuple(params)).rowcount
        finally:
            conn.close()

    def control(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.data / "control.db")
        try:
            return conn.execute(sql, tuple(params)).fetchall()
        finally:
            conn.close()

    def rows_for(self, region: str, subject_id: str) -> tuple[int, int]:
        """(record rows, key rows) a region's database holds for a subject."""
        records = self.raw(region, "SELECT COUNT(*) FROM store_records WHERE subject_id = ?", (subject_id,))
        keys = self.raw(region, "SELECT COUNT(*) FROM store_subject_keys WHERE subject_id = ?", (subject_id,))
        return int(records[0][0]), int(keys[0][0])

    def backup(self, region: str, to: Path) -> Path:
        """A consistent copy of a region's SQLite database, as a backup tool would take it."""
        src = sqlite3.connect(self.region_path(region))
        dst = sqlite3.connect(to)
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        return to


def open_deployment(
    data: Path, *, config_text: str = CONFIG, exceptions: EgressExceptions | None = None
) -> Deployment:
    data.mkdir(parents=True, exist_ok=True)
    (data / "rempart.toml").write_text(config_text)
    config = load_config(data / "rempart.toml")
    storage = SwitchableLogStorage()
    log = TransparencyLog(
        storage=storage, origin="test.example/log", sign=lambda cp: sign_checkpoint(cp, [LOG_SIGNER])
    )
    clock = ManualClock()
    keyring = LocalKeyring.open_or_create(config.keyring, ["us", "row"])
    service = RecordService.open(
        config, recorder=LogRecorder(log), clock=clock, custody=keyring, exceptions=exceptions
    )
    return Deployment(data, config, service, log, storage, clock, keyring)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    d = open_deployment(tmp_path / "deploy")
    yield d
    d.service.close()
    d.log.close()
