"""The mapping file: where the legacy rows come from and what each becomes in the regional stores.

A TOML file, checked against the deployment's catalog and regions when it is
loaded; every mistake is reported with its key path, all at once, in one
:class:`~rempart.errors.ConfigurationError`. Relative paths resolve against the
mapping file's folder. Example::

    [migration]
    name = "legacy-users-2026"      # the run's id: running again resumes it
    batch_size = 1000
    # key_file = "keys/migration.key"  # the custodian's signing key for `attest`

    [source]
    kind = "postgresql"             # postgresql | jsonl | csv
    url = "postgresql://legacy-db/app"
    table = "users"                 # or: query = "SELECT … FROM …"
    key = "id"                      # stable, unique, ordered source key
    # path = "users.jsonl"          # jsonl and csv: the key is the line / row number

    [subject]
    column = "user_id"

    [region]                        # a new subject's home region
    column = "country"
    map = { US = "us", FR = "row", DE = "row" }
    # default = "row"               # for values the map lacks (none: quarantined)

    [[records]]
    collection = "contact"
    record_id = "main"              # or: record_id_column = "id"
    fields = { email = "email", phone = "phone", email_verified = { column = "verified", type = "boolean" } }
    # fields_from = "extra"         # a JSON object column whose keys are field names
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from rempart.db import parse_database_url
from rempart.errors import ConfigurationError, InvalidInput
from rempart.store.catalog import Catalog
from rempart.store.records import check_id

__all__ = [
    "FieldMapping",
    "MigrationMapping",
    "RecordMapping",
    "RegionRule",
    "SourceKind",
    "SourceSpec",
    "ValueType",
    "load_mapping",
    "parse_mapping",
]

_RUN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}\Z")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}\Z")
MAX_BATCH = 20_000


class SourceKind(StrEnum):
    POSTGRESQL = "postgresql"
    JSONL = "jsonl"
    CSV = "csv"


class ValueType(StrEnum):
    """How a legacy value becomes a field value; one that does not convert is quarantined as undecodable."""

    AUTO = "auto"
    TEXT = "text"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class SourceSpec:
    kind: SourceKind
    url: str = ""
    table: str = ""
    query: str = ""
    key: str = ""
    path: Path | None = None

    def describe(self) -> dict[str, Any]:
        """What the attestation says of the source: no password, a query by its digest and text."""
        if self.kind is SourceKind.POSTGRESQL:
            from psycopg.conninfo import conninfo_to_dict

            info = conninfo_to_dict(self.url)
            where = {k: str(info[k]) for k in ("host", "port", "dbname") if info.get(k)}
            out: dict[str, Any] = {"kind": self.kind.value, "database": where, "key": self.key}
            if self.table:
                out["table"] = self.table
            else:
                out["query_sha256"] = hashlib.sha256(self.query.encode()).hexdigest()
            return out
        return {"kind": self.kind.value, "file": self.path.name if self.path else "", "key": "line"}


@dataclass(frozen=True, slots=True)
class RegionRule:
    """A new subject's home region: ``map[row[column]]``, else ``default``, else the row is quarantined."""

    column: str
    map: Mapping[str, str]
    default: str | None = None

    def region_for(self, value: object) -> str | None:
        if value is None:
            return self.default
        text = value if isinstance(value, str) else str(value)
        return self.map.get(text.strip(), self.default)


@dataclass(frozen=True, slots=True)
class FieldMapping:
    field: str
    column: str
    type: ValueType = ValueType.AUTO


@dataclass(frozen=True, slots=True)
class RecordMapping:
    """One record made from each legacy row: its collection, its id, its fields."""

    collection: str
    fields: tuple[FieldMapping, ...]
    record_id: str = ""
    record_id_column: str = ""
    fields_from: str = ""


@dataclass(frozen=True, slots=True)
class MigrationMapping:
    name: str
    source: SourceSpec
    subject_column: str
    region: RegionRule
    records: tuple[RecordMapping, ...]
    batch_size: int = 1000
    key_file: Path | None = None
    """The custodian's migration signing key file, if the run names one (``attest --key`` overrides it)."""
    digest: str = ""
    """Hex SHA-256 of the mapping file's bytes: a run refuses to resume under another mapping."""
    text: str = field(default="", repr=False)

    def columns(self) -> tuple[str, ...]:
        """The source columns the mapping reads, plus the key (sorted, once each)."""
        cols = {self.subject_column, self.region.column}
        for rec in self.records:
            cols.update(f.column for f in rec.fields)
            if rec.record_id_column:
                cols.add(rec.record_id_column)
            if rec.fields_from:
                cols.add(rec.fields_from)
        if self.source.key:
            cols.add(self.source.key)
        return tuple(sorted(cols))


class _Errors:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.items.append((path, message))


def _table(raw: Mapping[str, Any], key: str, errors: _Errors, *, required: bool = True) -> Mapping[str, Any]:
    value = raw.get(key)
    if value is None:
        if required:
            errors.add(key, "missing table")
        return {}
    if not isinstance(value, Mapping):
        errors.add(key, f"expected a table, got {type(value).__name__}")
        return {}
    return value


def _known(table: Mapping[str, Any], path: str, keys: Collection[str], errors: _Errors) -> None:
    for key in sorted(set(table) - set(keys)):
        errors.add(f"{path}.{key}", f"unknown key (expected one of: {', '.join(sorted(keys))})")


def _string(table: Mapping[str, Any], key: str, path: str, errors: _Errors, *, required: bool = False) -> str:
    value = table.get(key)
    if value is None:
        if required:
            errors.add(f"{path}.{key}", "missing")
        return ""
    if not isinstance(value, str) or not value:
        errors.add(f"{path}.{key}", f"expected a non-empty string, got {value!r}")
        return ""
    return value


def _column(table: Mapping[str, Any], key: str, path: str, errors: _Errors, *, required: bool = False) -> str:
    value = _string(table, key, path, errors, required=required)
    if value and not _COLUMN.match(value):
        errors.add(f"{path}.{key}", f"expected a column name (letters, digits, _), got {value!r}")
        return ""
    return value


def _source(raw: Mapping[str, Any], base: Path, errors: _Errors) -> SourceSpec:
    t = _table(raw, "source", errors)
    _known(t, "source", {"kind", "url", "table", "query", "key", "path"}, errors)
    kind_raw = t.get("kind")
    try:
        kind = SourceKind(str(kind_raw))
    except ValueError:
        errors.add("source.kind", f"expected postgresql, jsonl or csv, got {kind_raw!r}")
        return SourceSpec(SourceKind.JSONL)
    if kind is SourceKind.POSTGRESQL:
        url = _string(t, "url", "source", errors, required=True)
        if url:
            try:
                dialect, _ = parse_database_url(url)
            except ConfigurationError as exc:
                errors.add("source.url", exc.message)
            else:
                if dialect != "postgres":
                    errors.add("source.url", f"expected a postgresql:// URL, got {url!r}")
        table = _string(t, "table", "source", errors)
        query = _string(t, "query", "source", errors)
        if bool(table) == bool(query):
            errors.add("source", "give exactly one of table or query")
        if table and not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?\Z", table):
            errors.add("source.table", f"expected a table name (schema.table allowed), got {table!r}")
        key = _column(t, "key", "source", errors, required=True)
        if "path" in t:
            errors.add("source.path", "a postgresql source has no path")
        return SourceSpec(kind, url=url, table=table, query=query, key=key)
    path_text = _string(t, "path", "source", errors, required=True)
    for key in ("url", "table", "query", "key"):
        if key in t:
            errors.add(
                f"source.{key}", f"a {kind.value} source is read from its path; rows are keyed by line"
            )
    path = Path(path_text)
    return SourceSpec(kind, path=path if path.is_absolute() else base / path)


def _fields(raw: object, path: str, errors: _Errors) -> tuple[FieldMapping, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        errors.add(path, "expected a table of field = column (or {column, type})")
        return ()
    out: list[FieldMapping] = []
    for name, spec in raw.items():
        fpath = f"{path}.{name}"
        if isinstance(spec, str):
            spec = {"column": spec}
        if not isinstance(spec, Mapping):
            errors.add(fpath, "expected a column name or a table {column, type}")
            continue
        _known(spec, fpath, {"column", "type"}, errors)
        column = _column(spec, "column", fpath, errors, required=True)
        type_raw = spec.get("type", "auto")
        try:
            kind = ValueType(type_raw)
        except ValueError:
            errors.add(
                f"{fpath}.type", f"expected one of {', '.join(t.value for t in ValueType)}, got {type_raw!r}"
            )
            continue
        out.append(FieldMapping(name, column, kind))
    return tuple(out)


def parse_mapping(
    raw: Mapping[str, Any],
    *,
    catalog: Catalog,
    regions: Collection[str],
    base: Path,
    text: str = "",
) -> MigrationMapping:
    """Validate a parsed mapping against the catalog and the deployment's regions."""
    errors = _Errors()
    _known(raw, "", {"migration", "source", "subject", "region", "records"}, errors)
    errors.items = [(p.lstrip("."), m) for p, m in errors.items]
    mig = _table(raw, "migration", errors)
    _known(mig, "migration", {"name", "batch_size", "key_file"}, errors)
    key_text = _string(mig, "key_file", "migration", errors)
    key_file = None if not key_text else (Path(key_text) if Path(key_text).is_absolute() else base / key_text)
    name = _string(mig, "name", "migration", errors, required=True)
    if name and not _RUN.match(name):
        errors.add("migration.name", f"expected lower-case letters, digits, . _ - (at most 63), got {name!r}")
    batch_size = mig.get("batch_size", 1000)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= MAX_BATCH:
        errors.add("migration.batch_size", f"expected an integer from 1 to {MAX_BATCH}, got {batch_size!r}")
        batch_size = 1000
    source = _source(raw, base, errors)
    subj = _table(raw, "subject", errors)
    _known(subj, "subject", {"column"}, errors)
    subject_column = _column(subj, "column", "subject", errors, required=True)
    reg = _table(raw, "region", errors)
    _known(reg, "region", {"column", "map", "default"}, errors)
    region_column = _column(reg, "column", "region", errors, required=True)
    table = reg.get("map", {})
    region_map: dict[str, str] = {}
    if not isinstance(table, Mapping):
        errors.add("region.map", "expected a table of source value = region")
    else:
        for value, region in table.items():
            if not isinstance(region, str) or region not in regions:
                errors.add(
                    f"region.map.{value}",
                    f"unknown region {region!r} (the deployment has: {', '.join(sorted(regions))})",
                )
            else:
                region_map[str(value)] = region
    default = reg.get("default")
    if default is not None and (not isinstance(default, str) or default not in regions):
        errors.add(
            "region.default", f"unknown region {default!r} (the deployment has: {', '.join(sorted(regions))})"
        )
        default = None
    if not region_map and default is None and not errors.items:
        errors.add("region", "give a map of values to regions, or a default region")
    records_raw = raw.get("records")
    records: list[RecordMapping] = []
    if not isinstance(records_raw, list) or not records_raw:
        errors.add("records", "expected at least one [[records]] table")
        records_raw = []
    seen: set[tuple[str, str, str]] = set()
    for i, item in enumerate(records_raw):
        path = f"records[{i}]"
        if not isinstance(item, Mapping):
            errors.add(path, "expected a table")
            continue
        _known(item, path, {"collection", "record_id", "record_id_column", "fields", "fields_from"}, errors)
        collection = _string(item, "collection", path, errors, required=True)
        spec = catalog.collections.get(collection) if collection else None
        if collection and spec is None:
            errors.add(
                f"{path}.collection",
                f"collection {collection!r} is not in the catalog "
                f"(known: {', '.join(sorted(catalog.collections))})",
            )
        record_id = _string(item, "record_id", path, errors)
        record_id_column = _column(item, "record_id_column", path, errors)
        if bool(record_id) == bool(record_id_column):
            errors.add(path, "give exactly one of record_id (a fixed id) or record_id_column")
        if record_id:
            try:
                check_id(record_id, "record id")
            except InvalidInput as exc:
                errors.add(f"{path}.record_id", exc.message)
        fields = _fields(item.get("fields"), f"{path}.fields", errors)
        fields_from = _column(item, "fields_from", path, errors)
        if not fields and not fields_from:
            errors.add(f"{path}.fields", "map at least one field (or name a fields_from column)")
        if spec is not None:
            for f in fields:
                if f.field not in spec.fields:
                    errors.add(
                        f"{path}.fields.{f.field}",
                        f"collection {collection!r} has no field {f.field!r} in the catalog "
                        f"(known: {', '.join(sorted(spec.fields))})",
                    )
        ident = (collection, record_id, record_id_column)
        if ident in seen:
            errors.add(path, "the same collection and record id are mapped twice")
        seen.add(ident)
        records.append(RecordMapping(collection, fields, record_id, record_id_column, fields_from))
    if errors.items:
        raise ConfigurationError(
            "\n".join(f"{p}: {m}" for p, m in errors.items),
            path=errors.items[0][0],
            errors=[{"path": p, "message": m} for p, m in errors.items],
        )
    return MigrationMapping(
        name=name,
        source=source,
        subject_column=subject_column,
        region=RegionRule(region_column, region_map, default),
        records=tuple(records),
        batch_size=batch_size,
        key_file=key_file,
        digest=hashlib.sha256(text.encode()).hexdigest(),
        text=text,
    )


def load_mapping(path: Path | str, *, catalog: Catalog, regions: Collection[str]) -> MigrationMapping:
    """Read and validate a mapping file; relative paths in it resolve against its folder."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"mapping: cannot read {file}: {exc.strerror}", path="mapping") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"mapping: {file} is not valid TOML: {exc}", path="mapping") from exc
    return parse_mapping(raw, catalog=catalog, regions=regions, base=file.resolve().parent, text=text)
