"""The appliers that make approved proposals take effect.

Governance's own: a new trust root version, and egress exceptions. For the
store's rules: the catalog classification and a region's egress rules (kept
by :class:`~rempart.store.governed.GovernedRules`). The policy set's applier
lives with the deployment (:class:`rempart.deployment.PolicySetApplier`).
All go in the ``Mapping[ProposalKind, ProposalApplier]`` handed to
:class:`~rempart.governance.proposals.ProposalService`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from rempart.clock import format_time
from rempart.config import EgressRules, RegionConfig
from rempart.db import Database
from rempart.errors import Conflict, InvalidInput
from rempart.governance.proposals import Proposal, ProposalKind, validate_payload
from rempart.governance.rootstore import TrustRootBundle, TrustRootStore
from rempart.governance.schema import migrate
from rempart.governance.trustroot import TrustRoot, TrustRootSource
from rempart.store.catalog import Catalog, Category, FieldSpec, check_purpose
from rempart.store.governed import GovernedRules
from rempart.store.service import RecordService

__all__ = [
    "CatalogClassificationApplier",
    "EgressExceptions",
    "GovernanceEgressExceptions",
    "RegionEgressRulesApplier",
    "TrustRootApplier",
]


class TrustRootApplier:
    """Installs the trust root version a ``trust_root`` or ``approver_roster`` proposal carries.

    For ``approver_roster`` the new version may differ from the one in force
    only in its custodian approvers (and its version and issue time), so a
    roster change cannot smuggle in a new board.
    """

    def __init__(self, store: TrustRootStore, *, kind: ProposalKind = ProposalKind.TRUST_ROOT) -> None:
        if kind not in (ProposalKind.TRUST_ROOT, ProposalKind.APPROVER_ROSTER):
            raise InvalidInput(f"TrustRootApplier applies trust_root or approver_roster, not {kind.value}")
        self._store = store
        self.kind = kind

    def _bundle(self, proposal: Proposal) -> TrustRootBundle:
        return TrustRootBundle.parse(proposal.payload["trust_root"])

    def check(self, proposal: Proposal) -> None:
        bundle = self._bundle(proposal)
        if self._installed(bundle):
            return
        root = self._store.check(bundle)
        if self.kind is ProposalKind.APPROVER_ROSTER:
            _only_approvers_changed(self._store.current(), root)

    def apply(self, proposal: Proposal, *, now: datetime) -> str:
        bundle = self._bundle(proposal)
        if not self._installed(bundle):
            self.check(proposal)
            self._store.install(bundle, now=now, proposal=proposal.id)
        return f"trust root version {bundle.root.version} installed"

    def _installed(self, bundle: TrustRootBundle) -> bool:
        """True if this exact version is already installed (a re-run after a crash)."""
        version = bundle.root.version
        current = self._store.current_or_none()
        if current is None or current.version < version:
            return False
        if self._store.bundle(version).signed_note.split(b"\n\n")[0] == bundle.signed_note.split(b"\n\n")[0]:
            return True
        raise Conflict(f"trust root version {version} is already installed with a different document")


def _only_approvers_changed(current: TrustRoot, new: TrustRoot) -> None:
    before: dict[str, Any] = current.to_json()
    after: dict[str, Any] = new.to_json()
    for key in ("version", "issued", "custodian_approvers"):
        before.pop(key, None)
        after.pop(key, None)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if changed:
        raise InvalidInput(
            f"an approver_roster proposal may change only custodian_approvers; this one also "
            f"changes {', '.join(changed)} (use a trust_root proposal)"
        )


class EgressExceptions(Protocol):
    """The store's port (issue 3): an approved exception covering this egress, now, or None."""

    def find(
        self, region: str, fields: Collection[str], purpose: str, destination: str, now: datetime
    ) -> str | None: ...


class GovernanceEgressExceptions:
    """Board-approved protected-data egress exceptions: the applier and the store's lookup port.

    An exception's id is the id of the proposal that approved it, so applying
    twice (after a crash) inserts nothing new.
    """

    kind = ProposalKind.EGRESS_EXCEPTION

    def __init__(self, db: Database, trust_roots: TrustRootSource) -> None:
        migrate(db)
        self._db = db
        self._trust_roots = trust_roots

    def check(self, proposal: Proposal) -> None:
        if proposal.kind is not ProposalKind.EGRESS_EXCEPTION:
            raise InvalidInput(
                f"proposal {proposal.id} is of kind {proposal.kind.value}, not egress_exception"
            )
        validate_payload(proposal.kind, proposal.payload, self._trust_roots.current())

    def apply(self, proposal: Proposal, *, now: datetime) -> str:
        self.check(proposal)
        p = proposal.payload
        with self._db.transaction() as tx:
            exists = tx.execute(
                "SELECT 1 FROM governance_egress_exceptions WHERE id = ?", (proposal.id,)
            ).fetchone()
            if exists is None:
                tx.execute(
                    "INSERT INTO governance_egress_exceptions "
                    "(id, proposal, region, fields, purpose, destination, not_before, not_after) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        proposal.id,
                        proposal.id,
                        p["region"],
                        json.dumps(sorted(p["fields"])),
                        p["purpose"],
                        p["destination"],
                        p["not_before"],
                        p["not_after"],
                    ),
                )
        return f"egress exception {proposal.id} approved"

    def find(
        self, region: str, fields: Collection[str], purpose: str, destination: str, now: datetime
    ) -> str | None:
        """The id of an exception covering all ``fields`` for this region, purpose and destination."""
        wanted = set(fields)
        if not wanted:
            return None
        at = format_time(now)
        rows = self._db.query_all(
            "SELECT id, fields FROM governance_egress_exceptions WHERE region = ? AND purpose = ? "
            "AND destination = ? AND not_before <= ? AND ? < not_after ORDER BY id",
            (region, purpose, destination, at, at),
        )
        for exception_id, covered in rows:
            if wanted <= set(json.loads(covered)):
                return str(exception_id)
        return None


def _classes(records: RecordService, proposal: Proposal) -> dict[str, FieldSpec]:
    """The payload's fields as catalog entries; refuse unknown fields or purposes, naming them."""
    out: dict[str, FieldSpec] = {}
    for path, entry in dict(proposal.payload["fields"]).items():
        collection, _, name = str(path).partition(".")
        old = records.catalog.field(collection, name)
        purposes = frozenset(str(p) for p in entry["purposes"])
        for purpose in purposes:
            check_purpose(purpose)
        category = Category(str(entry["category"]))
        if category is not Category.EXCEPTED and purposes:
            raise InvalidInput(f"{path}: only excepted fields list the purposes they may leave for")
        out[str(path)] = replace(old, category=category, purposes=purposes)
    return out


class CatalogClassificationApplier:
    """Governance applier for ``catalog_classification``: reclassify, re-seal, put in force."""

    def __init__(
        self,
        records: RecordService,
        rules: GovernedRules,
        *,
        base_catalog: Catalog,
        base_regions: Mapping[str, RegionConfig],
    ) -> None:
        self.records = records
        self.rules = rules
        self.base_catalog = base_catalog
        self.base_regions = dict(base_regions)

    def check(self, proposal: Proposal) -> None:
        _classes(self.records, proposal)

    def apply(self, proposal: Proposal, *, now: datetime) -> str:
        """Idempotent: after a crash it runs again and re-seals what is still in the old form."""
        classes = _classes(self.records, proposal)
        moved = {
            path
            for path, spec in classes.items()
            if spec.sealed != self.records.catalog.field(*path.split(".", 1)).sealed
        }
        self.rules.set_classes(classes, proposal=proposal.id, now=now)
        self.rules.lay_over(self.records, self.base_catalog, self.base_regions)
        resealed = sum(
            self.records.reseal(collection, now=now)
            for collection in sorted({path.split(".", 1)[0] for path in moved})
        )
        return f"{len(classes)} field(s) reclassified; {resealed} record(s) sealed again"


class RegionEgressRulesApplier:
    """Governance applier for ``region_egress_rules``: a region's destinations and daily budgets."""

    def __init__(
        self,
        records: RecordService,
        rules: GovernedRules,
        *,
        base_catalog: Catalog,
        base_regions: Mapping[str, RegionConfig],
    ) -> None:
        self.records = records
        self.rules = rules
        self.base_catalog = base_catalog
        self.base_regions = dict(base_regions)

    def _parse(self, proposal: Proposal) -> tuple[str, EgressRules]:
        region = str(proposal.payload["region"])
        if region not in self.records.regions:
            raise InvalidInput(f"region {region!r} is not one of this deployment's regions")
        rules = proposal.payload["rules"]
        destinations = rules.get("destinations", [])
        budgets = rules.get("budgets", {})
        if not isinstance(destinations, list) or not all(isinstance(d, str) and d for d in destinations):
            raise InvalidInput("rules.destinations: expected a list of destination names")
        if not isinstance(budgets, Mapping):
            raise InvalidInput("rules.budgets: expected an object purpose → records per day")
        for purpose, count in budgets.items():
            check_purpose(str(purpose))
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise InvalidInput(f"rules.budgets.{purpose}: expected a number of records per day (≥ 0)")
        return region, EgressRules(tuple(destinations), {str(k): int(v) for k, v in budgets.items()})

    def check(self, proposal: Proposal) -> None:
        self._parse(proposal)

    def apply(self, proposal: Proposal, *, now: datetime) -> str:
        region, rules = self._parse(proposal)
        self.rules.set_egress(region, rules, proposal=proposal.id, now=now)
        self.rules.lay_over(self.records, self.base_catalog, self.base_regions)
        return f"egress rules of region {region} in force: {len(rules.destinations)} destination(s)"
