"""The log's side of witnessing, against real witnesses served over HTTP on loopback.

The log is a real :class:`TransparencyLog` on SQLite or PostgreSQL; each
witness is Rempart's witness app served by uvicorn on a thread.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rempart.audit.witness import Witness, WitnessStore, witness_app
from rempart.clock import ManualClock
from rempart.db import Database
from rempart.errors import InvalidInput
from rempart.log import TransparencyLog, open_log
from rempart.log.witnessing import CheckpointWitnessing, WitnessEndpoint
from rempart.tlog.checkpoint import Checkpoint
from rempart.tlog.cosignature import Cosigner, open_cosigned_checkpoint
from rempart.tlog.note import Note, Signer
from tests.unit.audit.harness import asgi_server

ORIGIN = "example.com/log"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class RunningWitness:
    witness: Witness
    endpoint: WitnessEndpoint


@contextlib.contextmanager
def running_witness(
    tmp_path: Path, name: str, log_key: Signer, clock: ManualClock
) -> Iterator[RunningWitness]:
    store = WitnessStore(Database.open(f"sqlite:///{tmp_path / (name.replace('/', '_') + '.db')}"))
    witness = Witness(cosigner=Cosigner.generate(name), store=store, clock=clock)
    witness.add_log(ORIGIN, [log_key.verifier()])
    with asgi_server(witness_app(witness)) as url:
        yield RunningWitness(witness, WitnessEndpoint(url, witness.cosigner.verifier()))
    store.database.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return (
        f"sqlite:///{tmp_path / 'log.db'}"
        if request.param == "sqlite"
        else str(request.getfixturevalue("pg_dsn"))
    )


@pytest.fixture
def signer() -> Signer:
    return Signer.generate(ORIGIN)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


def publish(log: TransparencyLog, count: int) -> int:
    log.append_many([b"entry %d" % (log.size + i) for i in range(count)])
    return log.publish_checkpoint().size


def test_each_checkpoint_collects_both_cosignatures_and_is_stored_cosigned(
    tmp_path: Path, log_url: str, signer: Signer, clock: ManualClock
) -> None:
    with (
        running_witness(tmp_path, "witness.example/w1", signer, clock) as w1,
        running_witness(tmp_path, "witness.example/w2", signer, clock) as w2,
        open_log(log_url, signer, checkpoint_interval=3600) as log,
        CheckpointWitnessing(
            storage=log.storage, witnesses=[w1.endpoint, w2.endpoint], threshold=2, clock=clock
        ) as witnessing,
    ):
        witnessing.attach(log)
        for size in (3, 300, 301):
            assert publish(log, size - log.size) == size
            status = witnessing.wait_idle()
            assert (status.size, status.cosigned_by, status.below_threshold) == (
                size,
                ("witness.example/w1", "witness.example/w2"),
                False,
            )
            stored = log.storage.latest_checkpoint()
            assert stored is not None and stored.size == size
            opened = open_cosigned_checkpoint(
                stored.note,
                origin=ORIGIN,
                log=signer.verifier(),
                witnesses=[w1.endpoint.verifier, w2.endpoint.verifier],
                threshold=2,
            )
            assert opened.witnesses == ("witness.example/w1", "witness.example/w2")
            assert w1.witness.store.log(ORIGIN).size == size == w2.witness.store.log(ORIGIN).size
        health = {h.name: h for h in witnessing.status().witnesses}
        assert health["witness.example/w1"].last_success_size == 301
        assert health["witness.example/w1"].last_success_at == "2026-03-01T12:00:00.000000Z"
        assert health["witness.example/w1"].last_error is None
        # Nothing the witnesses saw was inconsistent.
        assert w1.witness.store.rejections(ORIGIN) == [] == w2.witness.store.rejections(ORIGIN)


def test_a_log_that_forgot_the_witness_size_learns_it_from_the_409(
    tmp_path: Path, signer: Signer, clock: ManualClock
) -> None:
    with (
        running_witness(tmp_path, "witness.example/w1", signer, clock) as w1,
        open_log(f"sqlite:///{tmp_path / 'log.db'}", signer, checkpoint_interval=3600) as log,
    ):
        with CheckpointWitnessing(
            storage=log.storage, witnesses=[w1.endpoint], threshold=1, clock=clock
        ) as first:
            publish(log, 10)
            ten = log.storage.latest_checkpoint()
            assert ten is not None
            assert first.witness(ten).cosigned_by == ("witness.example/w1",)
        publish(log, 7)
        # A restarted log: no memory of the witness's size, so it sends old 0, gets 409 "10", retries.
        with CheckpointWitnessing(
            storage=log.storage, witnesses=[w1.endpoint], threshold=1, clock=clock
        ) as again:
            latest = log.storage.latest_checkpoint()
            assert latest is not None
            status = again.witness(latest)
        assert (status.size, status.cosigned_by) == (17, ("witness.example/w1",))
        assert status.witnesses[0].known_size == 17 and status.witnesses[0].last_error is None
        assert w1.witness.store.log(ORIGIN).size == 17


def test_a_witness_that_is_down_does_not_stop_the_log_but_flags_the_checkpoint(
    tmp_path: Path, signer: Signer, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    dead = WitnessEndpoint(
        f"http://127.0.0.1:{dead_port}", Cosigner.generate("witness.example/down").verifier()
    )
    with (
        running_witness(tmp_path, "witness.example/w1", signer, clock) as w1,
        open_log(f"sqlite:///{tmp_path / 'log.db'}", signer, checkpoint_interval=3600) as log,
        CheckpointWitnessing(
            storage=log.storage, witnesses=[w1.endpoint, dead], threshold=2, clock=clock
        ) as witnessing,
        caplog.at_level(logging.WARNING, logger="rempart.log.witnessing"),
    ):
        witnessing.attach(log)
        assert publish(log, 5) == 5
        status = witnessing.wait_idle()
        assert (status.size, status.cosigned_by, status.below_threshold) == (5, ("witness.example/w1",), True)
        down = {h.name: h for h in status.witnesses}["witness.example/down"]
        assert down.last_success_size is None and down.last_error_at == "2026-03-01T12:00:00.000000Z"
        assert down.last_error is not None and down.last_error.startswith("ConnectError: ")
        # The log still appends and publishes; the one cosignature it got is stored.
        assert publish(log, 2) == 7
        assert witnessing.wait_idle().size == 7
        stored = log.storage.latest_checkpoint()
        assert stored is not None
        assert [s.name for s in Note.parse(stored.note).signatures] == [ORIGIN, "witness.example/w1"]
    assert (
        "checkpoint of size 5 has 1 of the 2 required cosignatures (cosigned by: witness.example/w1)"
        in caplog.messages
    )


def test_a_hanging_witness_never_blocks_the_sequencer(
    tmp_path: Path, signer: Signer, clock: ManualClock
) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hanging = WitnessEndpoint(
            f"http://127.0.0.1:{silent.getsockname()[1]}",
            Cosigner.generate("witness.example/slow").verifier(),
        )
        with (
            open_log(f"sqlite:///{tmp_path / 'log.db'}", signer, checkpoint_interval=3600) as log,
            CheckpointWitnessing(
                storage=log.storage, witnesses=[hanging], threshold=1, clock=clock, timeout=1.0
            ) as witnessing,
        ):
            witnessing.attach(log)
            assert publish(log, 3) == 3
            # publish_checkpoint returned while the witness still holds the request.
            assert witnessing.status().size is None
            assert publish(log, 3) == 6
            status = witnessing.wait_idle()
        assert status.below_threshold and status.cosigned_by == ()
        error = status.witnesses[0].last_error
        assert error is not None and error.startswith("ReadTimeout: ")


def test_a_witness_ahead_of_the_checkpoint_is_reported(
    tmp_path: Path, signer: Signer, clock: ManualClock
) -> None:
    with (
        running_witness(tmp_path, "witness.example/w1", signer, clock) as w1,
        open_log(f"sqlite:///{tmp_path / 'log.db'}", signer, checkpoint_interval=3600) as log,
        CheckpointWitnessing(
            storage=log.storage, witnesses=[w1.endpoint], threshold=1, clock=clock
        ) as witnessing,
    ):
        publish(log, 4)
        early = log.storage.latest_checkpoint()
        publish(log, 4)
        later = log.storage.latest_checkpoint()
        assert early is not None and later is not None
        witnessing.witness(later)
        status = witnessing.witness(early)
    assert status.cosigned_by == () and status.below_threshold
    assert (
        status.witnesses[0].last_error
        == "409: the witness already cosigned size 8, larger than this checkpoint (4)"
    )
    assert Checkpoint.parse(Note.parse(early.note).text).size == 4


@pytest.mark.parametrize(
    ("threshold", "message"),
    [
        (3, "witness threshold 3 is not in 0..2 (the number of witnesses)"),
        (-1, "witness threshold -1 is not in 0..2"),
    ],
)
def test_the_threshold_must_be_possible(tmp_path: Path, threshold: int, message: str) -> None:
    from rempart.log.memory import MemoryLogStorage

    endpoints = [
        WitnessEndpoint("http://127.0.0.1:1", Cosigner.generate(f"w.example/{i}").verifier())
        for i in range(2)
    ]
    with pytest.raises(InvalidInput) as caught:
        CheckpointWitnessing(
            storage=MemoryLogStorage(), witnesses=endpoints, threshold=threshold, clock=ManualClock()
        )
    assert caught.value.message.startswith(message)


def test_a_witness_url_must_be_http() -> None:
    with pytest.raises(InvalidInput, match=r"^witness URL 'ftp://x' must start with http:// or https://$"):
        WitnessEndpoint("ftp://x", Cosigner.generate("w.example/1").verifier())
