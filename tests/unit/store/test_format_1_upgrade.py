"""A region database written before ``store-region-0002`` (sealed format 1) keeps every record.

``tests/fixtures/store-format-1`` was made by the code of commit 9ab1282: a
SQLite region database and its keyring, holding two subjects' records in
format 1 (one ciphertext per sealed field and a row seal). Opening it seals
every record again in one envelope (ADR 0003), after checking each as format 1
did, and then drops the ``row_seal`` column. On PostgreSQL the same rows are
copied into a database at the old schema first.
"""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rempart.db import Database
from rempart.errors import StorageUnavailable, VerificationFailed
from rempart.store import region
from rempart.store.catalog import default_catalog
from rempart.store.keys import LocalKeyring, WrappedKey
from rempart.store.region import SCHEMA, RegionStore

LATER = datetime(2026, 12, 1, tzinfo=UTC)
FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "store-format-1"
EXPECTED = {
    ("u-1", "contact", "main"): (
        2,
        {"email": "ana@new.example", "email_verified": True, "phone": "+1 555 0100"},
    ),
    ("u-1", "videos", "v1"): (1, {"title": "Cats", "visibility": "public", "upload_ip": "10.0.0.1"}),
    ("u-2", "contact", "main"): (1, {"email": "bo@example.com"}),
    ("u-2", "videos", "v9"): (1, {"title": "Only public"}),
}


def old_rows(table: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(FIXTURE / "us.db")
    try:
        return conn.execute(f"SELECT * FROM {table}").fetchall()
    finally:
        conn.close()


@pytest.fixture
def keyring(tmp_path: Path) -> LocalKeyring:
    path = tmp_path / "keyring.json"
    shutil.copyfile(FIXTURE / "keyring.json", path)
    path.chmod(0o600)
    return LocalKeyring.open(path)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        shutil.copyfile(FIXTURE / "us.db", tmp_path / "us.db")
        return f"sqlite:///{tmp_path / 'us.db'}"
    dsn: str = request.getfixturevalue("pg_dsn")
    db = Database.open(dsn)
    try:
        db.migrate(SCHEMA[:1])  # the schema as it was
        with db.transaction() as tx:
            for table, width in (
                ("store_region", 2),
                ("store_subject_keys", 5),
                ("store_records", 8),
                ("store_public_values", 5),
            ):
                marks = ", ".join("?" for _ in range(width))
                for row in old_rows(table):
                    tx.execute(f"INSERT INTO {table} VALUES ({marks})", row)
    finally:
        db.close()
    return dsn


def open_store(url: str, keyring: LocalKeyring) -> RegionStore:
    return RegionStore(
        region="us", database=Database.open(url), catalog=default_catalog(), custody=keyring, ring="us"
    )


def test_every_record_reads_the_same_after_the_upgrade(old_database: str, keyring: LocalKeyring) -> None:
    store = open_store(old_database, keyring)
    try:
        for (subject, collection, record), (version, fields) in EXPECTED.items():
            got = store.get(subject, collection, record)
            assert (got.version, got.fields, got.updated_at) == (
                version,
                fields,
                "2026-11-30T12:00:00.000000Z",
            )
        rows = store.db.query_all("SELECT sealed_fields FROM store_records")
        assert {bytes(blob)[:1] for (blob,) in rows} == {b"\x02"}
        with pytest.raises(StorageUnavailable, match="row_seal"):
            store.db.query_all("SELECT row_seal FROM store_records")
        # And it goes on as any store: a write, a read, a filtered query.
        store.put("u-2", "contact", "main", {"email": "bo@new.example"}, expected_version=1, now=LATER)
        assert store.get("u-2", "contact", "main").fields == {"email": "bo@new.example"}
        assert [r.record_id for r in store.query("videos", where={"visibility": "public"}).items] == ["v1"]
    finally:
        store.db.close()
    reopened = open_store(old_database, keyring)  # the upgrade ran once; opening again changes nothing
    try:
        assert reopened.get("u-1", "videos", "v1").fields == EXPECTED[("u-1", "videos", "v1")][1]
    finally:
        reopened.db.close()


@pytest.fixture
def path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the old database, upgraded one record per page (so a failure midway would show)."""
    monkeypatch.setattr(region, "_RESEAL_PAGE", 1)
    copy = tmp_path / "us.db"
    shutil.copyfile(FIXTURE / "us.db", copy)
    return copy


def test_a_tampered_old_record_stops_the_upgrade_before_anything_is_written(
    path: Path, keyring: LocalKeyring
) -> None:
    """The last record fails its old checks: the pages before it were checked, and not rewritten."""
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE store_records SET public_fields = '{\"title\":\"Dogs\"}' WHERE record_id = 'v9'")
    before = old_rows_of(path)
    with pytest.raises(VerificationFailed) as caught:
        open_store(f"sqlite:///{path}", keyring)
    assert str(caught.value) == (
        "integrity check failed for us/videos/v9: the row seal does not match its public fields or its set "
        "of sealed fields (altered in the database, or copied from another row, subject or region)"
    )
    assert caught.value.details["record_id"] == "v9"
    assert old_rows_of(path) == before  # every record as the previous release wrote it
    with sqlite3.connect(path) as conn:
        assert [s for (s,) in conn.execute("SELECT step FROM schema_steps")] == ["store-region-0001"]


def test_records_of_a_subject_whose_keys_were_shredded_are_left_for_the_erasure(
    path: Path, keyring: LocalKeyring
) -> None:
    """An erasure crashed after shredding u-2's keys and before purging its rows: the store still opens."""
    with sqlite3.connect(path) as conn:
        [(kek, dk, ck)] = conn.execute(
            "SELECT kek_id, wrapped_data_key, wrapped_commitment_key FROM store_subject_keys "
            "WHERE subject_id = 'u-2'"
        ).fetchall()
    keyring.shred("us", [WrappedKey(kek, dk), WrappedKey(kek, ck)])
    store = open_store(f"sqlite:///{path}", keyring)
    try:
        assert store.get("u-1", "contact", "main").fields == EXPECTED[("u-1", "contact", "main")][1]
        with pytest.raises(VerificationFailed, match="shredded"):
            store.get("u-2", "contact", "main")  # unreadable, as it was before the upgrade
        assert store.purge_subject("u-2") == 2  # and the erasure can finish
    finally:
        store.db.close()


def old_rows_of(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM store_records ORDER BY 1, 2, 3").fetchall()
