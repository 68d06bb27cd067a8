"""The appliers governance ships itself: a new trust root version, and egress exceptions.

Other rooms register theirs (policy set, catalog classification, region
egress rules) in the same ``Mapping[ProposalKind, ProposalApplier]`` handed to
:class:`~rempart.governance.proposals.ProposalService`.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import Any, Protocol

from rempart.clock import format_time
from rempart.db import Database
from rempart.errors import Conflict, InvalidInput
from rempart.governance.proposals import Proposal, ProposalKind, validate_payload
from rempart.governance.rootstore import TrustRootBundle, TrustRootStore
from rempart.governance.schema import migrate
from rempart.governance.trustroot import TrustRoot, TrustRootSource

__all__ = ["EgressExceptions", "GovernanceEgressExceptions", "TrustRootApplier"]


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
