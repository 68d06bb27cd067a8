"""A real deployment for the migration tests (SQLite regions, a real log) and legacy files to migrate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rempart.migrate.mapping import MigrationMapping, load_mapping
from rempart.migrate.progress import ProgressStore
from rempart.migrate.runner import MigrationRunner, RunReport
from rempart.migrate.source import LegacySource, open_source
from rempart.migrate.verify import VerificationReport, verify_run
from rempart.store.records import Actor
from tests.unit.store.conftest import Deployment, open_deployment

MIGRATOR = Actor("svc-migration", "custodian")

MAPPING = """\
[migration]
name = "legacy-test"
batch_size = {batch}

[source]
kind = "{kind}"
path = "{path}"

[subject]
column = "user_id"

[region]
column = "country"
map = {{ US = "us", FR = "row", DE = "row" }}

[[records]]
collection = "contact"
record_id = "main"
fields = {{ email = "email", phone = "phone", email_verified = {{ column = "verified", type = "boolean" }} }}
"""

# Rows for several regions, plus one of each kind of bad row, plus a second row of a subject.
ROWS: list[dict[str, Any] | str] = [
    {"user_id": "u1", "country": "US", "email": "ana@example.com", "phone": "+1 555 0101", "verified": "yes"},
    {"user_id": "u2", "country": "FR", "email": "bea@example.fr", "verified": "no"},
    {"user_id": "u3", "country": "DE", "email": "carl@example.de", "phone": "+49 30 1234"},
    {"user_id": "u4", "country": "XX", "email": "dan@example.com"},
    {"user_id": None, "country": "US", "email": "nobody@example.com"},
    {"user_id": "u5", "country": "US", "email": "eve@example.com", "verified": "maybe"},
    "{not json",
    {"user_id": "u1", "country": "US", "email": "ana.second@example.com"},
    {"user_id": "u6", "country": "US", "email": "fay@example.com", "phone": "+1 555 0106"},
    {"user_id": "u7", "country": "FR", "email": "gus@example.fr"},
]


def write_jsonl(path: Path, rows: list[dict[str, Any] | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@dataclass
class World:
    """A deployment, a legacy file, its mapping, and the migration's parts over them."""

    deployment: Deployment
    folder: Path
    mapping: MigrationMapping
    source: LegacySource
    progress: ProgressStore

    def runner(self, *, workers: int = 0) -> MigrationRunner:
        return MigrationRunner(
            service=self.deployment.service,
            mapping=self.mapping,
            source=self.source,
            progress=self.progress,
            clock=self.deployment.clock,
            actor=MIGRATOR,
            workers=workers,
        )

    def run(self, *, workers: int = 0) -> RunReport:
        return self.runner(workers=workers).run()

    def verify(self) -> VerificationReport:
        return verify_run(
            service=self.deployment.service,
            mapping=self.mapping,
            source=self.source,
            progress=self.progress,
            clock=self.deployment.clock,
            actor=MIGRATOR,
        )

    def region_rows(self, region: str, table: str = "store_records") -> int:
        return int(self.deployment.raw(region, f"SELECT COUNT(*) FROM {table}")[0][0])


def make_world(
    tmp: Path, rows: list[dict[str, Any] | str] = ROWS, *, batch: int = 3, kind: str = "jsonl"
) -> World:
    deployment = open_deployment(tmp / "deploy")
    folder = tmp / "legacy"
    folder.mkdir()
    write_jsonl(folder / "legacy.jsonl", rows)
    (folder / "mapping.toml").write_text(MAPPING.format(batch=batch, kind=kind, path="legacy.jsonl"))
    mapping = load_mapping(
        folder / "mapping.toml", catalog=deployment.config.catalog, regions=deployment.config.regions
    )
    return World(
        deployment, folder, mapping, open_source(mapping), ProgressStore(deployment.service.directory.db)
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = make_world(tmp_path)
    yield w
    w.source.close()
    w.deployment.service.close()
    w.deployment.log.close()
