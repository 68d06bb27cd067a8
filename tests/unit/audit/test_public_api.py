"""The public names of the audit room and the log's witnessing client, pinned (a change is a decision)."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "rempart.audit": [],
    "rempart.audit.witness": [
        "MAX_PROOF_LINES",
        "MAX_REQUEST_SIZE",
        "SIZE_CONTENT_TYPE",
        "WITNESS_SCHEMA",
        "AddCheckpointRequest",
        "SizeConflict",
        "Witness",
        "WitnessLog",
        "WitnessRejection",
        "WitnessStore",
        "status_for",
        "witness_app",
    ],
    "rempart.audit.mirror": [
        "MIRROR_SCHEMA",
        "CheckpointComparison",
        "LogTrust",
        "Mirror",
        "MirroredCheckpoint",
        "SyncReport",
        "compare_checkpoints",
    ],
    "rempart.audit.evidence": ["EvidenceLocker", "EvidenceRecord"],
    "rempart.log.witnessing": [
        "CheckpointWitnessing",
        "WitnessAddress",
        "WitnessEndpoint",
        "WitnessHealth",
        "WitnessingStatus",
    ],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names(module: str) -> None:
    loaded = importlib.import_module(module)
    assert loaded.__all__ == PUBLIC[module]
    for name in loaded.__all__:
        assert getattr(loaded, name) is not None


def test_a_trust_root_witness_is_a_witness_address() -> None:
    """The log takes its witnesses straight from the trust root."""
    from rempart.governance.trustroot import Witness
    from rempart.log.witnessing import WitnessAddress
    from rempart.tlog.cosignature import Cosigner

    verifier = Cosigner.generate("w.example/1").verifier()
    member = Witness("w.example/1", verifier.vkey(), "https://w.example/", verifier)
    address: WitnessAddress = member
    assert (address.url, address.verifier) == ("https://w.example/", verifier)
