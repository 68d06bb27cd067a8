"""The governance room wired together over one control database and one event recorder.

>>> from datetime import timedelta
>>> from rempart.db import Database
>>> from rempart.events import LogRecorder
>>> from rempart.log.memory import MemoryLogStorage
>>> from rempart.log.sequencer import TransparencyLog
>>> log = TransparencyLog(storage=MemoryLogStorage(), origin="example/log",
...                       sign=lambda cp: cp.body().encode())
>>> gov = Governance(db=Database.open("sqlite:///:memory:"), recorder=LogRecorder(log),
...                  submitters=StaticSubmitterKeys([]), proposal_lifetime=timedelta(days=7))
>>> gov.trust_roots.current_or_none() is None
True
>>> log.close()
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from rempart.db import Database
from rempart.events import EventRecorder
from rempart.governance.appliers import GovernanceEgressExceptions, TrustRootApplier
from rempart.governance.proposals import ProposalApplier, ProposalKind, ProposalService
from rempart.governance.releases import ReleaseRegistry, StaticSubmitterKeys, SubmitterKeys
from rempart.governance.rootstore import TrustRootStore
from rempart.governance.trustroot import TrustRootApproverRoster
from rempart.governance.tuf_repo import ArtifactSource, TufLifetimes, TufPublisher
from rempart.tlog.note import Signer

__all__ = ["Governance", "StaticSubmitterKeys"]


class Governance:
    """Trust root chain, proposals (with governance's own appliers), releases, TUF publishing.

    ``appliers`` adds the other rooms' appliers (policy set, catalog
    classification, region egress rules); governance's own cannot be replaced.
    """

    def __init__(
        self,
        *,
        db: Database,
        recorder: EventRecorder,
        submitters: SubmitterKeys,
        proposal_lifetime: timedelta,
        appliers: Mapping[ProposalKind, ProposalApplier] | None = None,
    ) -> None:
        self.trust_roots = TrustRootStore(db, recorder)
        self.egress_exceptions = GovernanceEgressExceptions(db, self.trust_roots)
        self.approver_roster = TrustRootApproverRoster(self.trust_roots)
        own: dict[ProposalKind, ProposalApplier] = {
            ProposalKind.TRUST_ROOT: TrustRootApplier(self.trust_roots),
            ProposalKind.APPROVER_ROSTER: TrustRootApplier(
                self.trust_roots, kind=ProposalKind.APPROVER_ROSTER
            ),
            ProposalKind.EGRESS_EXCEPTION: self.egress_exceptions,
        }
        self.proposals = ProposalService(
            db=db,
            recorder=recorder,
            trust_roots=self.trust_roots,
            appliers={**dict(appliers or {}), **own},
            lifetime=proposal_lifetime,
        )
        self.releases = ReleaseRegistry(
            db=db, recorder=recorder, trust_roots=self.trust_roots, submitters=submitters
        )

    def publisher(
        self,
        online_key: Signer,
        *,
        lifetimes: TufLifetimes | None = None,
        artifacts: ArtifactSource | None = None,
    ) -> TufPublisher:
        """A TUF publisher signing with the registry's online key (from its key file)."""
        return TufPublisher(
            releases=self.releases,
            trust_roots=self.trust_roots,
            online_key=online_key,
            lifetimes=lifetimes,
            artifacts=artifacts,
        )
