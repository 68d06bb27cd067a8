"""Properties: any JSON value round-trips through sealing; any changed byte of an envelope is caught."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rempart.db import Database
from rempart.errors import VerificationFailed
from rempart.store.catalog import default_catalog
from rempart.store.keys import LocalKeyring
from rempart.store.region import RegionStore, envelope_binding

NOW = datetime(2026, 1, 1, tzinfo=UTC)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegionStore]:
    folder: Path = tmp_path_factory.mktemp("props")
    db = Database.open(f"sqlite:///{folder / 'us.db'}")
    keyring = LocalKeyring.create(folder / "keyring.json", ["us"])
    s = RegionStore(region="us", database=db, catalog=default_catalog(), custody=keyring, ring="us")
    s.install_keys(s.prepare_keys("u-1", NOW))
    yield s
    db.close()


names = st.text(max_size=12)


rows = st.tuples(
    names, names, names, names, st.integers(min_value=-1, max_value=2**63), names, st.text(max_size=20)
)


def parse_binding(binding: bytes) -> tuple[Any, ...]:
    """Read an envelope binding back into its row: it can be read back only if it is unambiguous."""
    text = binding.decode("utf-8").removeprefix("rempart/record/v2 ")

    def take() -> str:
        nonlocal text
        length, _, rest = text.partition(":")
        text = rest[int(length) :]
        return rest[: int(length)]

    names = [take() for _ in range(4)]
    version, _, text = text.partition(":")
    updated_at = take()
    return (*names, int(version), updated_at, text)


@given(rows)
def test_an_envelope_binding_reads_back_as_its_row(row: tuple[Any, ...]) -> None:
    """Whatever the names hold (digits, colons, any text), the binding names exactly one row."""
    assert parse_binding(envelope_binding(*row)) == row


def test_envelope_binding_is_pinned() -> None:
    assert envelope_binding("us", "u-1", "contact", "main", 3, "2026-03-01T12:00:00.000000Z", '{"a":1}') == (
        b'rempart/record/v2 2:us3:u-17:contact4:main3:27:2026-03-01T12:00:00.000000Z{"a":1}'
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(protected=json_values, public=json_values, n=st.integers(min_value=0, max_value=10**9))
def test_any_json_value_round_trips(store: RegionStore, protected: Any, public: Any, n: int) -> None:
    record_id = f"r{n}"
    fields = {"precise": protected, "country": public}
    store.put("u-1", "location", record_id, fields, expected_version=None, now=NOW)
    try:
        assert store.get("u-1", "location", record_id).fields == fields
    finally:
        store.delete("u-1", "location", record_id, expected_version=1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_every_changed_byte_of_an_envelope_is_caught(store: RegionStore, position: int, flip: int) -> None:
    store.put("u-1", "contact", "p", {"email": "ana@example.com"}, expected_version=None, now=NOW)
    try:
        [(blob,)] = store.db.query_all("SELECT sealed_fields FROM store_records WHERE record_id = 'p'")
        changed = bytearray(blob)
        changed[position % len(changed)] ^= flip
        with store.db.transaction() as tx:
            tx.execute("UPDATE store_records SET sealed_fields = ? WHERE record_id = 'p'", (bytes(changed),))
        with pytest.raises(
            VerificationFailed, match="^integrity check failed for us/contact/p: its sealed fields"
        ):
            store.get("u-1", "contact", "p")
    finally:
        with store.db.transaction() as tx:
            tx.execute("DELETE FROM store_records WHERE record_id = 'p'")
