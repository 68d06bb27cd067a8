"""The governance room's public API is its ``__all__``: pinned here so a change is deliberate."""

from __future__ import annotations

import importlib

import pytest

import rempart.governance as governance

EXPECTED = [
    "PROPOSAL_HEADER", "RELEASE_HEADER", "TRUST_ROOT_HEADER", "ApproverRoster", "ArtifactKind",
    "DeploymentViolation", "DirectoryArtifacts", "DirectorySubmitterKeys", "Drafter", "EgressExceptions",
    "Governance", "GovernanceEgressExceptions", "Member", "Proposal", "ProposalApplier", "ProposalKind",
    "ProposalRecord", "ProposalService", "ProposalStatus", "Release", "ReleaseRegistry", "ReleaseState",
    "ReleaseStatus", "StaticSubmitterKeys", "Submitter", "SubmitterKeys", "TrustRoot", "TrustRootApplier",
    "TrustRootApproverRoster", "TrustRootBundle", "TrustRootSource", "TrustRootStore", "TufLifetimes",
    "TufPublisher", "Witness", "deployment_violations", "parse_document", "record_deployment", "release_text",
    "revocation_text", "sign_proposal", "sign_release", "sign_trust_root", "target_path", "verify_chain",
]  # fmt: skip


MODULES = ["appliers", "proposals", "releases", "rootstore", "schema", "service", "trustroot"]
MODULES += ["tuf_keys", "tuf_repo"]


def test_all_is_pinned() -> None:
    assert governance.__all__ == EXPECTED


@pytest.mark.parametrize(
    "module",
    MODULES,
)
def test_every_exported_name_exists(module: str) -> None:
    mod = importlib.import_module(f"rempart.governance.{module}")
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert missing == []
