"""The data catalog: every collection, every field, and the category that decides where it may go.

A field is ``protected`` (personal data that never leaves its region),
``excepted`` (may leave only for the purposes it lists) or ``public``. A field
that is not in the catalog cannot be stored: an unknown field has no category,
so the store fails closed.

The purpose codes are one fixed list, shared with access requests and grants
(:data:`PURPOSES`).

>>> catalog = default_catalog()
>>> catalog.field("contact", "email").category
<Category.PROTECTED: 'protected'>
>>> sorted(catalog.field("device", "os_version").purposes)
['interoperability', 'service_debugging']
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from rempart.errors import ConfigurationError, InvalidInput

__all__ = [
    "NAME_PATTERN",
    "PURPOSES",
    "Catalog",
    "Category",
    "CollectionSpec",
    "FieldSpec",
    "check_purpose",
    "default_catalog",
    "load_catalog",
    "parse_catalog",
]

PURPOSES: tuple[str, ...] = (
    "customer_support",
    "legal_request",
    "security_incident",
    "service_debugging",
    "data_subject_request",
    "interoperability",
    "business_metrics",
    "safety_moderation",
)
"""The purpose codes an access or a transfer may name: one list for the store, access and grants."""

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}\Z")
"""Collection and field names: lower_snake words, at most 63 characters."""


def check_purpose(purpose: object) -> str:
    """Return ``purpose`` if it is one of :data:`PURPOSES`, else raise InvalidInput naming the list."""
    if not isinstance(purpose, str) or purpose not in PURPOSES:
        raise InvalidInput(
            f"purpose {purpose!r} is not a known purpose code (expected one of: {', '.join(PURPOSES)})",
            purpose=str(purpose),
        )
    return purpose


class Category(StrEnum):
    PROTECTED = "protected"
    EXCEPTED = "excepted"
    PUBLIC = "public"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a collection: its category and, if excepted, the purposes it may leave for."""

    name: str
    category: Category
    purposes: frozenset[str] = frozenset()
    description: str = ""

    @property
    def sealed(self) -> bool:
        """Protected and excepted values are encrypted at rest; public ones are stored in clear."""
        return self.category is not Category.PUBLIC


@dataclass(frozen=True, slots=True)
class CollectionSpec:
    name: str
    fields: Mapping[str, FieldSpec]
    description: str = ""

    def field(self, name: str) -> FieldSpec:
        spec = self.fields.get(name)
        if spec is None:
            raise InvalidInput(
                f"collection {self.name!r} has no field {name!r} in the catalog "
                f"(known: {', '.join(sorted(self.fields))})",
                collection=self.name,
                field=name,
            )
        return spec


@dataclass(frozen=True, slots=True)
class Catalog:
    """Collections by name. Lookups of unknown names raise InvalidInput (fail closed)."""

    collections: Mapping[str, CollectionSpec] = field(default_factory=dict)

    def collection(self, name: str) -> CollectionSpec:
        spec = self.collections.get(name)
        if spec is None:
            raise InvalidInput(
                f"collection {name!r} is not in the catalog (known: {', '.join(sorted(self.collections))})",
                collection=str(name),
            )
        return spec

    def field(self, collection: str, name: str) -> FieldSpec:
        return self.collection(collection).field(name)


_COLLECTION_KEYS = {"description", "fields"}
_FIELD_KEYS = {"category", "purposes", "description"}


def _parse_field(name: str, raw: object, path: str, errors: list[tuple[str, str]]) -> FieldSpec | None:
    if not NAME_PATTERN.match(name):
        errors.append((path, "field names are lower_snake words of at most 63 characters"))
        return None
    if isinstance(raw, str):  # shorthand: handle = "public"
        raw = {"category": raw}
    if not isinstance(raw, Mapping):
        errors.append((path, f"expected a table or a category string, got {type(raw).__name__}"))
        return None
    for key in sorted(set(raw) - _FIELD_KEYS):
        errors.append((f"{path}.{key}", f"unknown key (expected one of: {', '.join(sorted(_FIELD_KEYS))})"))
    category_raw = raw.get("category")
    if category_raw is None:
        errors.append(
            (f"{path}.category", "missing: every field needs a category (protected, excepted or public)")
        )
        return None
    try:
        category = Category(category_raw)
    except ValueError:
        errors.append((f"{path}.category", f"expected protected, excepted or public, got {category_raw!r}"))
        return None
    purposes_raw = raw.get("purposes", [])
    purposes: set[str] = set()
    if not isinstance(purposes_raw, list) or not all(isinstance(p, str) for p in purposes_raw):
        errors.append((f"{path}.purposes", "expected a list of purpose codes"))
        return None
    for i, purpose in enumerate(purposes_raw):
        if purpose not in PURPOSES:
            errors.append(
                (
                    f"{path}.purposes[{i}]",
                    f"unknown purpose {purpose!r} (expected one of: {', '.join(PURPOSES)})",
                )
            )
        purposes.add(purpose)
    if category is Category.EXCEPTED and not purposes_raw:
        errors.append((f"{path}.purposes", "an excepted field must list the purposes it may leave for"))
    if category is not Category.EXCEPTED and purposes_raw:
        errors.append((f"{path}.purposes", f"only excepted fields list purposes; this one is {category}"))
    description = raw.get("description", "")
    if not isinstance(description, str):
        errors.append((f"{path}.description", "expected a string"))
        description = ""
    return FieldSpec(name, category, frozenset(purposes), description)


def parse_catalog(data: Mapping[str, Any], *, path: str = "catalog") -> Catalog:
    """Validate a catalog table (``{"collections": {name: {"fields": {…}}}}``).

    Every mistake is reported with its key path, all of them at once, in one
    :class:`ConfigurationError` whose message starts with the first path.
    """
    errors: list[tuple[str, str]] = []
    for key in sorted(set(data) - {"collections"}):
        errors.append((f"{path}.{key}", "unknown key (expected: collections)"))
    raw_collections = data.get("collections")
    collections: dict[str, CollectionSpec] = {}
    if not isinstance(raw_collections, Mapping) or not raw_collections:
        errors.append((f"{path}.collections", "expected a table of at least one collection"))
        raw_collections = {}
    for cname, craw in raw_collections.items():
        cpath = f"{path}.collections.{cname}"
        if not NAME_PATTERN.match(cname):
            errors.append((cpath, "collection names are lower_snake words of at most 63 characters"))
            continue
        if not isinstance(craw, Mapping):
            errors.append((cpath, f"expected a table, got {type(craw).__name__}"))
            continue
        for key in sorted(set(craw) - _COLLECTION_KEYS):
            errors.append(
                (f"{cpath}.{key}", f"unknown key (expected one of: {', '.join(sorted(_COLLECTION_KEYS))})")
            )
        raw_fields = craw.get("fields")
        if not isinstance(raw_fields, Mapping) or not raw_fields:
            errors.append((f"{cpath}.fields", "expected a table of at least one field"))
            continue
        fields: dict[str, FieldSpec] = {}
        for fname, fraw in raw_fields.items():
            spec = _parse_field(fname, fraw, f"{cpath}.fields.{fname}", errors)
            if spec is not None:
                fields[fname] = spec
        description = craw.get("description", "")
        if not isinstance(description, str):
            errors.append((f"{cpath}.description", "expected a string"))
            description = ""
        collections[cname] = CollectionSpec(cname, fields, description)
    if errors:
        raise ConfigurationError(
            "\n".join(f"{p}: {msg}" for p, msg in errors),
            path=errors[0][0],
            errors=[{"path": p, "message": msg} for p, msg in errors],
        )
    return Catalog(collections)


def load_catalog(path: Path, *, key_path: str = "catalog") -> Catalog:
    """Read and validate a catalog TOML file."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(
            f"{key_path}: cannot read catalog file {path}: {exc}", path=key_path
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(
            f"{key_path}: catalog file {path} is not valid TOML: {exc}", path=key_path
        ) from exc
    return parse_catalog(data, path=key_path)


def default_catalog() -> Catalog:
    """The catalog shipped with Rempart: a social video platform."""
    text = resources.files("rempart.store").joinpath("default_catalog.toml").read_text(encoding="utf-8")
    return parse_catalog(tomllib.loads(text), path="catalog")
