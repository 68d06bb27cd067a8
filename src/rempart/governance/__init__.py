"""Governance: the trust root, board proposals, and the release registry (TUF).

The promise it keeps: the foreign parent cannot change the rules alone (every
rule change is a board proposal applied at the board's threshold), and nothing
steers content in a region unless the custodian has reviewed and signed it
(releases need the submitter's and a threshold of custodian reviewers'
signatures, and are published as TUF metadata that any TUF client verifies).
"""

from rempart.governance.appliers import EgressExceptions, GovernanceEgressExceptions, TrustRootApplier
from rempart.governance.proposals import (
    PROPOSAL_HEADER,
    Drafter,
    Proposal,
    ProposalApplier,
    ProposalKind,
    ProposalRecord,
    ProposalService,
    ProposalStatus,
    sign_proposal,
)
from rempart.governance.releases import (
    RELEASE_HEADER,
    ArtifactKind,
    DeploymentViolation,
    DirectorySubmitterKeys,
    Release,
    ReleaseRegistry,
    ReleaseState,
    ReleaseStatus,
    StaticSubmitterKeys,
    Submitter,
    SubmitterKeys,
    deployment_violations,
    record_deployment,
    release_text,
    revocation_text,
    sign_release,
)
from rempart.governance.rootstore import TrustRootBundle, TrustRootStore, sign_trust_root
from rempart.governance.service import Governance
from rempart.governance.trustroot import (
    TRUST_ROOT_HEADER,
    ApproverRoster,
    Member,
    TrustRoot,
    TrustRootApproverRoster,
    TrustRootSource,
    Witness,
    parse_document,
    verify_chain,
)
from rempart.governance.tuf_repo import DirectoryArtifacts, TufLifetimes, TufPublisher, target_path

__all__ = [
    "PROPOSAL_HEADER",
    "RELEASE_HEADER",
    "TRUST_ROOT_HEADER",
    "ApproverRoster",
    "ArtifactKind",
    "DeploymentViolation",
    "DirectoryArtifacts",
    "DirectorySubmitterKeys",
    "Drafter",
    "EgressExceptions",
    "Governance",
    "GovernanceEgressExceptions",
    "Member",
    "Proposal",
    "ProposalApplier",
    "ProposalKind",
    "ProposalRecord",
    "ProposalService",
    "ProposalStatus",
    "Release",
    "ReleaseRegistry",
    "ReleaseState",
    "ReleaseStatus",
    "StaticSubmitterKeys",
    "Submitter",
    "SubmitterKeys",
    "TrustRoot",
    "TrustRootApplier",
    "TrustRootApproverRoster",
    "TrustRootBundle",
    "TrustRootSource",
    "TrustRootStore",
    "TufLifetimes",
    "TufPublisher",
    "Witness",
    "deployment_violations",
    "parse_document",
    "record_deployment",
    "release_text",
    "revocation_text",
    "sign_proposal",
    "sign_release",
    "sign_trust_root",
    "target_path",
    "verify_chain",
]
