"""The catalog classification and egress rules in force: the configuration's, as the board amends them.

Which fields are protected, excepted or public, and what may leave a region,
are rules of the agreement: the deployment file gives their first state, and
afterwards only board proposals change them (``catalog_classification`` and
``region_egress_rules``, applied by governance once their threshold is met, see
:mod:`rempart.governance.appliers`).
Applied changes are kept in the control database and laid over the file's
values whenever a service opens or refreshes, so editing the file cannot
quietly undo the board.

A field moved between public and sealed (protected or excepted) is re-sealed:
every record of its collection, in every region, is written again under the
new classification, so what is protected is also encrypted at rest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from rempart.clock import format_time
from rempart.config import EgressRules, RegionConfig
from rempart.db import Database
from rempart.store.catalog import Catalog, Category, CollectionSpec, FieldSpec
from rempart.store.service import RecordService

__all__ = ["GovernedRules"]

SCHEMA = [
    (
        "store-governed-0001",
        """
        CREATE TABLE store_field_classes (
            path TEXT PRIMARY KEY,
            category TEXT NOT NULL,
            purposes TEXT NOT NULL,
            proposal TEXT NOT NULL,
            applied_at TEXT NOT NULL
        );
        CREATE TABLE store_egress_rules (
            region TEXT PRIMARY KEY,
            rules TEXT NOT NULL,
            proposal TEXT NOT NULL,
            applied_at TEXT NOT NULL
        )
        """,
    )
]


class GovernedRules:
    """Applied board changes to the catalog and egress rules, in the control database."""

    def __init__(self, database: Database) -> None:
        self.db = database
        database.migrate(SCHEMA)

    def stamp(self) -> tuple[Any, ...]:
        """Changes when any rule changes: compare to know whether to lay the rules over again."""
        row = self.db.query_one(
            "SELECT (SELECT COUNT(*) || MAX(applied_at) FROM store_field_classes), "
            "(SELECT COUNT(*) || MAX(applied_at) FROM store_egress_rules)"
        )
        return tuple(row or ())

    def catalog(self, base: Catalog) -> Catalog:
        """``base`` with every applied reclassification laid over it."""
        rows = self.db.query_all("SELECT path, category, purposes FROM store_field_classes")
        if not rows:
            return base
        collections = {name: dict(spec.fields) for name, spec in base.collections.items()}
        for path, category, purposes in rows:
            collection, _, name = str(path).partition(".")
            old = collections.get(collection, {}).get(name)
            if old is None:  # a field since removed from the file: nothing to lay over
                continue
            collections[collection][name] = replace(
                old, category=Category(str(category)), purposes=frozenset(json.loads(str(purposes)))
            )
        return replace(
            base,
            collections={
                name: CollectionSpec(name, fields, base.collections[name].description)
                for name, fields in collections.items()
            },
        )

    def regions(self, base: Mapping[str, RegionConfig]) -> dict[str, RegionConfig]:
        """``base`` with every applied egress-rule change laid over it."""
        out = dict(base)
        for region, rules in self.db.query_all("SELECT region, rules FROM store_egress_rules"):
            if region in out:
                data = json.loads(str(rules))
                out[region] = replace(
                    out[region],
                    egress=EgressRules(tuple(data["destinations"]), dict(data["budgets"])),
                )
        return out

    def set_classes(self, classes: Mapping[str, FieldSpec], *, proposal: str, now: datetime) -> None:
        with self.db.transaction() as tx:
            for path, spec in classes.items():
                tx.execute("DELETE FROM store_field_classes WHERE path = ?", (path,))
                tx.execute(
                    "INSERT INTO store_field_classes (path, category, purposes, proposal, applied_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (
                        path,
                        spec.category.value,
                        json.dumps(sorted(spec.purposes)),
                        proposal,
                        format_time(now),
                    ),
                )

    def set_egress(self, region: str, rules: EgressRules, *, proposal: str, now: datetime) -> None:
        text = json.dumps(
            {"destinations": list(rules.destinations), "budgets": dict(rules.budgets)}, sort_keys=True
        )
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM store_egress_rules WHERE region = ?", (region,))
            tx.execute(
                "INSERT INTO store_egress_rules (region, rules, proposal, applied_at) VALUES (?, ?, ?, ?)",
                (region, text, proposal, format_time(now)),
            )

    def lay_over(
        self, records: RecordService, base_catalog: Catalog, base_regions: Mapping[str, RegionConfig]
    ) -> None:
        """Put the rules in force into ``records`` (and its regional stores)."""
        records.use_rules(self.catalog(base_catalog), self.regions(base_regions))
