"""A deployment sends its checkpoints to a real witness process and serves them cosigned."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from rempart.clock import SystemClock
from rempart.config import WitnessSettings, default_config
from rempart.deployment import Deployment
from rempart.events import Event
from rempart.log import create_signer
from rempart.tlog.cosignature import CosignatureVerifier, open_cosigned_checkpoint
from tests.unit.audit.harness import witness_process


def test_checkpoints_are_cosigned_by_the_configured_witness(tmp_path: Path) -> None:
    config = default_config(tmp_path / "data")
    signer = create_signer(Path(config.log.key_file), config.log.origin)
    with witness_process(
        tmp_path / "witness", "witness.test/w1", [(config.log.origin, signer.vkey())]
    ) as witness:
        config = replace(
            config, witnesses=(WitnessSettings("witness.test/w1", witness.vkey, witness.url),)
        )
        with Deployment.open(config, clock=SystemClock()) as d:
            assert d.witnessing is not None
            for i in range(3):
                d.recorder.record(Event("test.entry", datetime.now(UTC), {"i": i}))
            stored = d.log.publish_checkpoint()
            status = d.witnessing.wait_idle(timeout=20)
            assert status.size == stored.size
            assert status.below_threshold is False
            served = d.read_path.get("checkpoint").body
        cosigned = open_cosigned_checkpoint(
            served,
            origin=config.log.origin,
            log=signer.verifier(),
            witnesses=[CosignatureVerifier.parse(witness.vkey)],
            threshold=1,
        )
        assert cosigned.checkpoint.size == stored.size
        assert cosigned.witnesses == ("witness.test/w1",)
