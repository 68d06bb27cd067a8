"""End to end: two witness processes, a log that needs both cosignatures, auditors that catch a split view.

* Two real ``rempart witness serve`` processes witness a real log on SQLite,
  which collects both cosignatures for each checkpoint (threshold 2) and
  serves its tlog-tiles read path over HTTP.
* The log operator signs a second, different tree (a fork) with the log's
  key. The witnesses refuse it (422 for a larger forked tree whose
  consistency proof fails, 409 for a fork at the size they hold), so the fork
  stays below the threshold, and an auditor served it rejects it, naming why.
* The auditor who was served the fork and one who was served the real log
  compare what they were given and find that the two cannot both be true.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rempart.audit.mirror import LogTrust, Mirror, SyncReport, compare_checkpoints
from rempart.audit.witness import WitnessStore
from rempart.clock import ManualClock
from rempart.db import Database
from rempart.errors import VerificationFailed
from rempart.log import open_log
from rempart.log.source import HttpSource
from rempart.log.sqlite import SqliteLogStorage
from rempart.log.witnessing import CheckpointWitnessing, WitnessEndpoint
from rempart.tlog.checkpoint import Checkpoint
from rempart.tlog.cosignature import CosignatureVerifier
from rempart.tlog.note import Note, Signer
from tests.unit.audit.harness import asgi_server, read_path_app, rempart, witness_process

ORIGIN = "e2e.example/log"
W1, W2 = "witness.example/e2e-1", "witness.example/e2e-2"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def entry(i: int, tag: str = "honest") -> bytes:
    return b'{"i":%d,"type":"example.%s","v":1}' % (i, tag.encode())


def root_hex(note: bytes) -> str:
    return Checkpoint.parse(Note.parse(note).text).root.hex()


@contextlib.contextmanager
def served(path: Path) -> Iterator[str]:
    storage = SqliteLogStorage(path)
    try:
        with asgi_server(read_path_app(storage)) as url:
            yield url + "/"
    finally:
        storage.close()


def sync(url: str, state: Path, trust: LogTrust) -> SyncReport:
    source = HttpSource(url)
    try:
        with Mirror(state, trust=trust, clock=ManualClock(START)) as mirror:
            return mirror.sync(source)
    finally:
        source.close()


def test_two_witnesses_a_log_and_auditors_catch_a_split_view(tmp_path: Path) -> None:
    signer = Signer.generate(ORIGIN)
    clock = ManualClock(START)
    logs = [(ORIGIN, signer.vkey())]
    with (
        witness_process(tmp_path / "w1", W1, logs) as w1,
        witness_process(tmp_path / "w2", W2, logs) as w2,
    ):
        endpoints = [WitnessEndpoint(w.url, CosignatureVerifier.parse(w.vkey)) for w in (w1, w2)]
        keys = tuple(e.verifier for e in endpoints)
        trust = LogTrust(origin=ORIGIN, log=signer.verifier(), witnesses=keys, threshold=2)

        # The honest log: every checkpoint cosigned by both witnesses before auditors read it.
        log_path = tmp_path / "log.db"
        with (
            open_log(f"sqlite:///{log_path}", signer, checkpoint_interval=3600) as log,
            CheckpointWitnessing(
                storage=log.storage, witnesses=endpoints, threshold=2, clock=clock
            ) as witnessing,
        ):
            witnessing.attach(log)
            for size in (100, 300):
                log.append_many([entry(i) for i in range(log.size, size)])
                log.publish_checkpoint()
                status = witnessing.wait_idle()
                assert (status.size, status.cosigned_by, status.below_threshold) == (size, (W1, W2), False)
        with served(log_path) as url:
            alice = sync(url, tmp_path / "alice", trust)
            bob = sync(url, tmp_path / "bob", trust)
        assert (alice.size, alice.cosigned_by) == (300, (W1, W2)) == (bob.size, bob.cosigned_by)
        honest_300 = (tmp_path / "bob" / "checkpoint").read_bytes()

        # The operator signs a fork that agrees up to entry 249 and grows to 400: the witnesses
        # (at 300) get a consistency proof 300→400 from the forked tree, and it fails (422).
        fork_path = tmp_path / "fork.db"
        with (
            open_log(f"sqlite:///{fork_path}", signer, checkpoint_interval=3600) as fork,
            CheckpointWitnessing(
                storage=fork.storage, witnesses=endpoints, threshold=2, clock=clock
            ) as forking,
        ):
            fork.append_many([entry(i) if i < 250 else entry(i, "forked") for i in range(400)])
            fork_400 = fork.publish_checkpoint()
            status = forking.witness(fork_400)
        assert (status.size, status.cosigned_by, status.below_threshold) == (400, (), True)
        for health in status.witnesses:
            assert health.known_size == 300
            assert health.last_error is not None
            assert health.last_error.startswith(
                f"HTTP 422: consistency proof from size 300 (root {root_hex(honest_300)}) to size 400 "
                f"(root {root_hex(fork_400.note)}) does not verify: "
                "consistency proof 300→400 implies old root"
            )

        # Alice is served the fork: it lacks the witnesses' cosignatures, and she says so.
        with served(fork_path) as fork_url:
            with pytest.raises(VerificationFailed) as caught:
                sync(fork_url, tmp_path / "alice", trust)
            assert caught.value.message == (
                f"the checkpoint of size 400 (root {root_hex(fork_400.note)}) is signed by the log but not "
                f"witnessed enough: checkpoint has 0 of the 2 required cosignatures from 2 known witnesses; "
                f"missing: {W1}, {W2}"
            )
            evidence = Path(caught.value.details["evidence"])
            kept_fork = (evidence / "served-checkpoint").read_bytes()
            assert kept_fork == fork_400.note
            assert (tmp_path / "alice" / "checkpoint").read_bytes() == honest_300

            # Gossip: Alice's kept checkpoint against Bob's, with the tiles of the larger (forked) tree.
            fork_tiles = HttpSource(fork_url)
            try:
                with pytest.raises(VerificationFailed) as split:
                    compare_checkpoints(honest_300, kept_fork, trust=trust, tiles=fork_tiles)
            finally:
                fork_tiles.close()
        assert split.value.message.startswith(
            f"split view: the signed checkpoint of size 300 (root {root_hex(honest_300)}) is not a prefix of "
            f"the signed checkpoint of size 400 (root {root_hex(fork_400.note)}): consistency proof 300→400 "
            "implies old root"
        )

        # A fork at exactly the size the witnesses hold: 409, both times.
        same_path = tmp_path / "fork-300.db"
        with (
            open_log(f"sqlite:///{same_path}", signer, checkpoint_interval=3600) as fork,
            CheckpointWitnessing(
                storage=fork.storage, witnesses=endpoints, threshold=2, clock=clock
            ) as forking,
        ):
            fork.append_many([entry(i) if i < 250 else entry(i, "other") for i in range(300)])
            fork_300 = fork.publish_checkpoint()
            status = forking.witness(fork_300)
        assert status.cosigned_by == () and status.below_threshold
        assert [h.last_error for h in status.witnesses] == [
            "409: the witness cosigned another root for size 300: this checkpoint forks"
        ] * 2
        with pytest.raises(VerificationFailed) as same_size:
            compare_checkpoints(honest_300, fork_300.note, trust=trust)
        assert same_size.value.message == (
            f"split view: two signed checkpoints of size 300 with different roots {root_hex(honest_300)} and "
            f"{root_hex(fork_300.note)}"
        )
        # The CLI says the same to an operator.
        (tmp_path / "a.checkpoint").write_bytes(honest_300)
        (tmp_path / "b.checkpoint").write_bytes(fork_300.note)
        cli = rempart(
            "audit",
            "compare",
            str(tmp_path / "a.checkpoint"),
            str(tmp_path / "b.checkpoint"),
            "--vkey",
            signer.vkey(),
            check=False,
        )
        assert cli.returncode == 1
        assert cli.stderr.startswith(
            "error (verification_failed): split view: two signed checkpoints of size 300"
        )

    # Each witness kept the log-signed checkpoints it refused, as evidence of the fork.
    for directory in (tmp_path / "w1", tmp_path / "w2"):
        database = Database.open(f"sqlite:///{directory / 'witness.db'}")
        try:
            refused = WitnessStore(database).rejections(ORIGIN)
        finally:
            database.close()
        assert [r.status for r in refused] == [422, 409]
        assert refused[0].request.endswith(fork_400.note) and refused[1].request.endswith(fork_300.note)
