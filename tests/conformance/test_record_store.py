"""One contract, every backend: the region record store on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rempart.db import Database
from rempart.errors import ConfigurationError, Conflict, InvalidInput, NotFound, ResidencyViolation
from rempart.store.catalog import default_catalog
from rempart.store.keys import LocalKeyring
from rempart.store.region import RegionStore

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CONTACT = {"email": "ana@example.com", "phone": "+1 555 0100", "email_verified": True}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'region.db'}"
    return str(request.getfixturevalue("pg_dsn"))


@pytest.fixture
def keyring(tmp_path: Path) -> LocalKeyring:
    return LocalKeyring.create(tmp_path / "keyring.json", ["us", "row"])


@pytest.fixture
def opener(database_url: str, keyring: LocalKeyring) -> Iterator[Callable[..., RegionStore]]:
    dbs: list[Database] = []

    def open_store(region: str = "us", ring: str = "us", cache_size: int = 100) -> RegionStore:
        db = Database.open(database_url)
        dbs.append(db)
        return RegionStore(
            region=region,
            database=db,
            catalog=default_catalog(),
            custody=keyring,
            ring=ring,
            cache_size=cache_size,
        )

    yield open_store
    for db in dbs:
        db.close()


@pytest.fixture
def store(opener: Callable[..., RegionStore]) -> RegionStore:
    s = opener()
    for sid in ("u-1", "u-2", "u-3"):
        s.install_keys(s.prepare_keys(sid, NOW))
    return s


def raw(store: RegionStore, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return store.db.query_all(sql, params)


def test_a_database_belongs_to_one_region(store: RegionStore, opener: Callable[..., RegionStore]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        opener(region="row", ring="row")
    assert str(caught.value) == (
        "regions.row.store: this database belongs to region 'us', not 'row'; each region needs its own "
        "database"
    )
    assert opener().region == "us"  # reopening as itself is fine


def test_put_and_get_round_trip_with_sealed_values_not_in_clear(store: RegionStore) -> None:
    rec = store.put("u-1", "contact", "main", CONTACT, expected_version=None, now=NOW)
    assert (rec.version, rec.updated_at) == (1, "2026-03-01T12:00:00.000000Z")
    got = store.get("u-1", "contact", "main")
    assert (got.fields, got.version, got.updated_at) == (CONTACT, 1, "2026-03-01T12:00:00.000000Z")
    [(public, sealed)] = raw(store, "SELECT public_fields, sealed_fields FROM store_records")
    assert public == "{}"
    # One envelope: format byte 2, a 12-byte nonce, the sealed JSON object, a 16-byte tag. Neither the
    # values nor the names of the sealed fields are in clear.
    sealed = bytes(sealed)
    plaintext = b'{"email":"ana@example.com","email_verified":true,"phone":"+1 555 0100"}'
    assert sealed[0] == 2 and len(sealed) == 1 + 12 + len(plaintext) + 16
    assert b"ana@example.com" not in sealed and b"email" not in sealed
    assert store.get("u-1", "contact", "main", fields=["phone"]).fields == {"phone": "+1 555 0100"}


def test_values_of_every_json_kind_round_trip(store: RegionStore) -> None:
    value = {"lat": 40.7128, "lon": -74.006, "accuracy_m": 12, "tags": ["a", None, True], "ü": "✓"}
    store.put("u-1", "location", "now", {"precise": value, "country": "US"}, expected_version=None, now=NOW)
    assert store.get("u-1", "location", "now").fields == {"precise": value, "country": "US"}


def test_versions_conflicts_and_not_found(store: RegionStore) -> None:
    store.put("u-1", "contact", "main", CONTACT, expected_version=None, now=NOW)
    with pytest.raises(Conflict) as caught:
        store.put("u-1", "contact", "main", CONTACT, expected_version=None, now=NOW)
    assert str(caught.value) == "contact record 'main' already exists; pass the version you replace"
    assert caught.value.details == {"current_version": 1}
    v2 = store.put("u-1", "contact", "main", {"email": "new@example.com"}, expected_version=1, now=NOW)
    assert v2.version == 2
    assert store.get("u-1", "contact", "main").fields == {"email": "new@example.com"}
    with pytest.raises(
        Conflict, match="^contact record 'main' is at version 2, not 1: someone else changed it"
    ):
        store.put("u-1", "contact", "main", CONTACT, expected_version=1, now=NOW)
    with pytest.raises(NotFound, match="^contact record 'other' does not exist$"):
        store.put("u-1", "contact", "other", CONTACT, expected_version=3, now=NOW)
    with pytest.raises(NotFound, match="^contact record 'nope' does not exist$"):
        store.get("u-1", "contact", "nope")
    with pytest.raises(InvalidInput, match="^expected_version must be a positive integer or None, got 0$"):
        store.put("u-1", "contact", "main", CONTACT, expected_version=0, now=NOW)


def test_concurrent_writers_one_wins_one_conflicts(store: RegionStore) -> None:
    store.put("u-1", "contact", "main", CONTACT, expected_version=None, now=NOW)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def writer(email: str) -> None:
        barrier.wait()
        try:
            store.put("u-1", "contact", "main", {"email": email}, expected_version=1, now=NOW)
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=writer, args=(e,)) for e in ("a@example.com", "b@example.com")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "ok"]
    assert store.get("u-1", "contact", "main").version == 2


def test_no_keys_no_write(store: RegionStore) -> None:
    with pytest.raises(ResidencyViolation, match="^region 'us' is not this subject's home"):
        store.put("stranger", "contact", "main", CONTACT, expected_version=None, now=NOW)
    assert raw(store, "SELECT COUNT(*) FROM store_records") == [(0,)]
    # The database itself refuses a record row whose subject has no keys here.
    with pytest.raises(Conflict), store.db.transaction() as tx:
        tx.execute(
            "INSERT INTO store_records (subject_id, collection, record_id, version, public_fields, "
            "sealed_fields, updated_at) VALUES ('stranger', 'contact', 'x', 1, '{}', ?, 'now')",
            (b"\x02",),
        )
    with pytest.raises(Conflict, match="^region 'us' already holds keys for this subject$"):
        store.install_keys(store.prepare_keys("u-1", NOW))


def test_list_a_subjects_records_with_pagination(store: RegionStore) -> None:
    for i in range(7):
        store.put("u-1", "videos", f"v{i}", {"title": f"T{i}"}, expected_version=None, now=NOW)
    store.put("u-1", "contact", "main", CONTACT, expected_version=None, now=NOW)
    store.put("u-2", "videos", "v0", {"title": "other"}, expected_version=None, now=NOW)
    seen: list[tuple[str, str]] = []
    cursor = None
    while True:
        page = store.list_records("u-1", limit=3, cursor=cursor)
        seen += [(r.collection, r.record_id) for r in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [("contact", "main")] + [("videos", f"v{i}") for i in range(7)]
    videos = store.list_records("u-1", collection="videos", limit=5)
    assert [r.record_id for r in videos.items] == [f"v{i}" for i in range(5)]
    rest = store.list_records("u-1", collection="videos", limit=5, cursor=videos.next_cursor)
    assert ([r.record_id for r in rest.items], rest.next_cursor) == (["v5", "v6"], None)
    with pytest.raises(InvalidInput, match="^limit must be an integer from 1 to 1000, got 0$"):
        store.list_records("u-1", limit=0)


def test_filter_on_public_fields(store: RegionStore) -> None:
    rows = [
        (
            "u-1",
            "a",
            {"title": "Cats", "visibility": "public", "hashtags": ["#cat", "#fun"], "upload_ip": "1.1.1.1"},
        ),
        ("u-1", "b", {"title": "Dogs", "visibility": "private", "hashtags": ["#dog"]}),
        (
            "u-2",
            "a",
            {"title": "More cats", "visibility": "public", "hashtags": ["#cat"], "duration_seconds": 30},
        ),
        ("u-3", "a", {"title": "Birds", "visibility": "public", "duration_seconds": 30}),
    ]
    for sid, rid, fields in rows:
        store.put(sid, "videos", rid, fields, expected_version=None, now=NOW)

    def keys(**where: Any) -> list[tuple[str, str]]:
        return [(r.subject_id, r.record_id) for r in store.query("videos", where=where).items]

    assert keys(visibility="public") == [("u-1", "a"), ("u-2", "a"), ("u-3", "a")]
    assert keys(hashtags="#cat") == [("u-1", "a"), ("u-2", "a")]
    assert keys(visibility="public", duration_seconds=30) == [("u-2", "a"), ("u-3", "a")]
    assert keys(title="Nothing") == []
    first = store.query("videos", where={"visibility": "public"}, limit=2)
    second = store.query("videos", where={"visibility": "public"}, limit=2, cursor=first.next_cursor)
    assert [r.subject_id for r in first.items + list(second.items)] == ["u-1", "u-2", "u-3"]
    assert second.next_cursor is None
    # An update re-indexes the public values.
    store.put("u-3", "videos", "a", {"title": "Birds", "visibility": "private"}, expected_version=1, now=NOW)
    assert keys(visibility="public") == [("u-1", "a"), ("u-2", "a")]
    with pytest.raises(
        InvalidInput, match="^videos.upload_ip is protected: only public fields can be filtered on$"
    ):
        store.query("videos", where={"upload_ip": "1.1.1.1"})
    with pytest.raises(
        InvalidInput, match="^videos.hashtags: filter on a single value, not a list or object$"
    ):
        store.query("videos", where={"hashtags": ["#cat"]})


def test_delete_a_record_at_a_version(store: RegionStore) -> None:
    store.put("u-1", "videos", "a", {"title": "Cats", "visibility": "public"}, expected_version=None, now=NOW)
    with pytest.raises(Conflict, match="^videos record 'a' is at version 1, not 2$"):
        store.delete("u-1", "videos", "a", expected_version=2)
    store.delete("u-1", "videos", "a", expected_version=1)
    with pytest.raises(NotFound):
        store.get("u-1", "videos", "a")
    assert store.query("videos", where={"visibility": "public"}).items == []
    with pytest.raises(NotFound):
        store.delete("u-1", "videos", "a", expected_version=1)


def test_purge_export_and_import(
    store: RegionStore, opener: Callable[..., RegionStore], tmp_path: Path
) -> None:
    store.put("u-1", "contact", "main", CONTACT, expected_version=None, now=NOW)
    store.put("u-1", "videos", "a", {"title": "Cats", "visibility": "public"}, expected_version=None, now=NOW)
    store.put("u-1", "videos", "a", {"title": "Cats!", "visibility": "public"}, expected_version=1, now=NOW)
    assert store.census("u-1") == {"contact": 1, "videos": 1}
    exported = store.export_subject("u-1")
    assert [(r.collection, r.version) for r in exported] == [("contact", 1), ("videos", 2)]
    assert store.purge_subject("u-1") == 2
    assert (store.census("u-1"), store.holds("u-1")) == ({}, False)
    with pytest.raises(NotFound, match="^contact record 'main' does not exist$"):
        store.get("u-1", "contact", "main")
    # Import into a fresh SQLite region (regions may mix backends).
    other_db = Database.open(f"sqlite:///{tmp_path / 'row.db'}")
    try:
        row = RegionStore(
            region="row", database=other_db, catalog=default_catalog(), custody=store.custody, ring="row"
        )
        row.import_subject(row.prepare_keys("u-1", NOW), exported)
        assert row.get("u-1", "videos", "a").fields == {"title": "Cats!", "visibility": "public"}
        assert row.get("u-1", "videos", "a").version == 2
        assert [r.record_id for r in row.query("videos", where={"visibility": "public"}).items] == ["a"]
    finally:
        other_db.close()


def test_rewrap_changes_wrapped_keys_only(store: RegionStore) -> None:
    store.put("u-1", "contact", "main", CONTACT, expected_version=None, now=NOW)
    records = raw(store, "SELECT public_fields, sealed_fields FROM store_records")
    store.custody.rotate("us", "us-v2")
    assert store.count_wrapped_under("us-v1") == 3
    assert store.rewrap(batch=2) == 3
    assert store.count_wrapped_under("us-v1") == 0
    assert raw(store, "SELECT public_fields, sealed_fields FROM store_records") == records
    assert store.get("u-1", "contact", "main").fields == CONTACT
    assert store.rewrap() == 0


def test_the_key_cache_is_bounded(opener: Callable[..., RegionStore]) -> None:
    s = opener(cache_size=2)
    for sid in ("a", "b", "c"):
        s.install_keys(s.prepare_keys(sid, NOW))
        s.put(sid, "contact", "main", {"email": f"{sid}@example.com"}, expected_version=None, now=NOW)
    assert len(s._cache) == 2
    assert [s.get(sid, "contact", "main").fields["email"] for sid in ("a", "b", "c")] == [
        "a@example.com",
        "b@example.com",
        "c@example.com",
    ]
    assert list(s._cache) == ["b", "c"]
    s.evict("c")
    assert list(s._cache) == ["b"]
