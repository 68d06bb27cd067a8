"""The canonical form of a migrated record is exactly canonical JSON (property test against json.dumps)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rempart.migrate.transform import PlannedRecord, canonical_record

NAMES = st.text(min_size=1, max_size=12)
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63) + 1, 2**63 - 1)
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@given(NAMES, NAMES, NAMES, NAMES, st.dictionaries(st.text(max_size=10), VALUES, max_size=5))
def test_canonical_record_is_canonical_json(
    region: str, subject: str, collection: str, record_id: str, fields: dict[str, Any]
) -> None:
    got = canonical_record(region, subject, PlannedRecord(collection, record_id, fields))
    expected = json.dumps(
        {
            "collection": collection,
            "fields": fields,
            "record_id": record_id,
            "region": region,
            "subject": subject,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode()
    assert got == expected
