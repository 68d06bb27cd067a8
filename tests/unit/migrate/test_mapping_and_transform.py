"""The mapping file's checks, the row transform's decisions (a scenario table), and the file sources."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from rempart.errors import ConfigurationError
from rempart.migrate.mapping import MigrationMapping, SourceKind, ValueType, parse_mapping
from rempart.migrate.source import CsvSource, JsonLinesSource, SourceRow, raw_text
from rempart.migrate.transform import Reason, Rejection, RowPlan, RowTransformer, canonical_record
from rempart.store.catalog import default_catalog

CATALOG = default_catalog()
GOOD = """
[migration]
name = "m1"
batch_size = 10
[source]
kind = "jsonl"
path = "rows.jsonl"
[subject]
column = "uid"
[region]
column = "cc"
map = { US = "us", FR = "row" }
[[records]]
collection = "contact"
record_id = "main"
fields = { email = "mail", email_verified = { column = "ok", type = "boolean" } }
[[records]]
collection = "device"
record_id_column = "dev"
fields = { os_name = "os" }
fields_from = "extra"
"""


def parse(text: str, base: Path = Path("/data")) -> MigrationMapping:
    return parse_mapping(tomllib.loads(text), catalog=CATALOG, regions=["us", "row"], base=base, text=text)


def test_a_good_mapping_parses() -> None:
    m = parse(GOOD)
    assert (m.name, m.batch_size, m.source.kind, m.source.path) == (
        "m1",
        10,
        SourceKind.JSONL,
        Path("/data/rows.jsonl"),
    )
    assert m.region.map == {"US": "us", "FR": "row"} and m.region.default is None
    assert [f.type for f in m.records[0].fields] == [ValueType.AUTO, ValueType.BOOLEAN]
    assert m.columns() == ("cc", "dev", "extra", "mail", "ok", "os", "uid")
    assert len(m.digest) == 64


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (
            ('map = { US = "us", FR = "row" }', 'map = { US = "eu" }'),
            "region.map.US",
            "unknown region 'eu' (the deployment has: row, us)",
        ),
        (
            ('email = "mail"', 'mobile = "mail"'),
            "records[0].fields.mobile",
            "collection 'contact' has no field 'mobile' in the catalog (known: email, email_verified, phone, "
            "postal_address)",
        ),
        (
            ('collection = "device"', 'collection = "devices"'),
            "records[1].collection",
            "collection 'devices' is not in the catalog (known: contact, device, engagement_metrics, "
            "location, messages, profile, videos, watch_history)",
        ),
        (
            ('name = "m1"', 'name = "M 1"'),
            "migration.name",
            "expected lower-case letters, digits, . _ - (at most 63), got 'M 1'",
        ),
        (
            ("batch_size = 10", "batch_size = 0"),
            "migration.batch_size",
            "expected an integer from 1 to 20000, got 0",
        ),
        (('kind = "jsonl"', 'kind = "xml"'), "source.kind", "expected postgresql, jsonl or csv, got 'xml'"),
        (
            ('type = "boolean"', 'type = "bool"'),
            "records[0].fields.email_verified.type",
            "expected one of auto, text, integer, number, boolean, json, got 'bool'",
        ),
        (
            ('record_id = "main"', 'record_id = "main"\nrecord_id_column = "x"'),
            "records[0]",
            "give exactly one of record_id (a fixed id) or record_id_column",
        ),
    ],
)
def test_mapping_mistakes_name_their_key_path(change: tuple[str, str], path: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse(GOOD.replace(*change))
    assert caught.value.details["path"] == path
    assert caught.value.message == f"{path}: {message}"


def test_region_names_that_are_not_strings_are_mistakes_not_crashes() -> None:
    """The CLI passes the deployment's regions as a mapping: a list or table value must not reach ``in``."""
    text = GOOD.replace('map = { US = "us", FR = "row" }', 'map = { US = ["us"] }\ndefault = { r = 1 }')
    with pytest.raises(ConfigurationError) as caught:
        parse_mapping(
            tomllib.loads(text), catalog=CATALOG, regions={"us": 1, "row": 2}, base=Path("/data"), text=text
        )
    assert caught.value.message.split("\n") == [
        "region.map.US: unknown region ['us'] (the deployment has: row, us)",
        "region.default: unknown region {'r': 1} (the deployment has: row, us)",
    ]


def test_postgresql_source_needs_url_key_and_one_of_table_or_query() -> None:
    text = GOOD.replace('kind = "jsonl"\npath = "rows.jsonl"', 'kind = "postgresql"\nurl = "sqlite:///x.db"')
    with pytest.raises(ConfigurationError) as caught:
        parse(text)
    assert caught.value.message.split("\n") == [
        "source.url: expected a postgresql:// URL, got 'sqlite:///x.db'",
        "source: give exactly one of table or query",
        "source.key: missing",
    ]


T = RowTransformer(parse(GOOD), CATALOG)


def row(values: dict[str, Any] | None, key: int = 7) -> SourceRow:
    return SourceRow(key, values, "bad line" if values is None else "", "{raw" if values is None else "")


BASE = {"uid": "u1", "cc": "US", "mail": "a@example.com", "ok": "Yes", "dev": "d1", "os": "iOS"}


@pytest.mark.parametrize(
    ("values", "homes", "reason", "message", "region"),
    [
        (None, {}, Reason.UNDECODABLE_ROW, "bad line", None),
        ({**BASE, "uid": None}, {}, Reason.MISSING_SUBJECT_ID, "column 'uid' is empty", None),
        (
            {**BASE, "uid": "a b"},
            {},
            Reason.INVALID_SUBJECT_ID,
            "column 'uid' is not a subject id (1 to 128 of letters, digits, . _ : @ -)",
            None,
        ),
        (
            {**BASE, "cc": "BR"},
            {},
            Reason.UNKNOWN_REGION,
            "column 'cc' holds a value the region map does not list, and there is no default region",
            None,
        ),
        (
            {**BASE, "cc": "FR"},
            {"u1": "us"},
            Reason.REGION_CONFLICT,
            "the rule says region 'row' but the subject already lives in 'us'",
            "us",
        ),
        (
            {**BASE, "ok": "perhaps"},
            {},
            Reason.UNDECODABLE_VALUE,
            "contact.email_verified (column 'ok', type boolean): a str of length 7 is not a boolean",
            "us",
        ),
        (
            {**BASE, "mail": b"\xff\xfe"},
            {},
            Reason.UNDECODABLE_VALUE,
            "contact.email (column 'mail', type auto): bytes that are not UTF-8",
            "us",
        ),
        (
            {**BASE, "extra": '{"os_version": "17", "shoe_size": 44}'},
            {},
            Reason.UNKNOWN_FIELD,
            "collection 'device' has no field 'shoe_size' in the catalog",
            "us",
        ),
        (
            {**BASE, "extra": "[1, 2"},
            {},
            Reason.UNDECODABLE_VALUE,
            "column 'extra': not JSON (Expecting ',' delimiter at column 6)",
            "us",
        ),
        (
            {**BASE, "dev": "bad id!"},
            {},
            Reason.INVALID_RECORD_ID,
            "column 'dev' is not a record id (1 to 128 of letters, digits, . _ : @ -)",
            "us",
        ),
        (
            {**BASE, "mail": float("nan")},
            {},
            Reason.INVALID_VALUE,
            "contact.email: nan is not a finite number",
            "us",
        ),
        ({"uid": "u1", "cc": "US"}, {}, Reason.EMPTY_RECORD, "every mapped value of the row is empty", "us"),
    ],
)
def test_rows_that_are_quarantined(
    values: dict[str, Any] | None, homes: dict[str, str], reason: Reason, message: str, region: str | None
) -> None:
    decision = T.plan(row(values), homes)
    assert decision == Rejection(7, reason, message, region)


def test_a_good_row_becomes_records_in_its_home_region() -> None:
    decision = T.plan(row({**BASE, "extra": {"os_version": "17.1", "os_name": "ignored"}}), {})
    assert isinstance(decision, RowPlan)
    assert (decision.subject_id, decision.region) == ("u1", "us")
    contact, device = decision.records
    assert (contact.collection, contact.record_id, dict(contact.fields)) == (
        "contact",
        "main",
        {"email": "a@example.com", "email_verified": True},
    )
    assert (device.collection, device.record_id, dict(device.fields)) == (
        "device",
        "d1",
        {"os_name": "iOS", "os_version": "17.1"},
    )
    assert canonical_record("us", "u1", contact) == (
        b'{"collection":"contact","fields":{"email":"a@example.com","email_verified":true},'
        b'"record_id":"main","region":"us","subject":"u1"}'
    )
    # An existing subject keeps its home even when the rule has no answer for the row.
    moved = T.plan(row({**BASE, "cc": "BR"}), {"u1": "row"})
    assert isinstance(moved, RowPlan) and moved.region == "row"


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("integer", " 42 ", 42),
        ("number", "2.5", 2.5),
        ("number", "7", 7),
        ("boolean", "N", False),
        ("boolean", 1, True),
        ("text", 12, "12"),
        ("json", '{"a": [1]}', {"a": [1]}),
    ],
)
def test_value_conversions(kind: str, value: Any, expected: Any) -> None:
    mapping = parse(GOOD.replace('type = "boolean"', f'type = "{kind}"'))
    decision = RowTransformer(mapping, CATALOG).plan(row({**BASE, "ok": value}), {})
    assert isinstance(decision, RowPlan)
    assert decision.records[0].fields["email_verified"] == expected


def test_jsonl_source_keys_by_line_and_keeps_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\n\n[1]\n\xff\xfe\n{"a": 2}\n')
    source = JsonLinesSource(parse(GOOD, tmp_path).source)
    rows = [r for batch in source.batches(after=None, size=2) for r in batch]
    assert [(r.key, r.values, r.error) for r in rows] == [
        (1, {"a": 1}, ""),
        (3, None, "the line is a JSON list, not an object"),
        (4, None, "the line is not UTF-8"),
        (5, {"a": 2}, ""),
    ]
    assert raw_text(rows[2]) == "\\xff\\xfe"
    assert [r.key for r in source.read_range(3, 4)] == [3, 4]
    assert [r.key for b in source.batches(after=3, size=10) for r in b] == [4, 5]
    assert source.count() == 4


def test_csv_source_keys_by_row_and_quarantines_what_does_not_decode(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"uid,cc,mail\nu1,US,a@example.com\nu2,FR\nu3,US,\xff@x\nu4,,\n")
    mapping = parse(GOOD.replace('kind = "jsonl"', 'kind = "csv"'), tmp_path)
    source = CsvSource(mapping.source)
    rows = [r for batch in source.batches(after=None, size=10) for r in batch]
    assert [r.key for r in rows] == [1, 2, 3, 4]
    assert rows[1].values is None and rows[1].error == "the row has 2 values, the header 3"
    assert rows[3].values == {"uid": "u4", "cc": None, "mail": None}
    decision = RowTransformer(mapping, CATALOG).plan(rows[2], {})
    assert decision == Rejection(
        3,
        Reason.UNDECODABLE_VALUE,
        "contact.email (column 'mail', type auto): text that is not valid UTF-8",
        "us",
    )
