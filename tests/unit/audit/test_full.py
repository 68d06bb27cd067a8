"""The full audit in one pass: the same verdict as sync-then-check, and the sync's errors unchanged."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rempart.audit.full import full_audit
from rempart.audit.invariants import InvariantReplay, ReplayResult
from rempart.audit.mirror import Mirror
from rempart.errors import StorageUnavailable, VerificationFailed
from tests.unit.audit.audit_world import Auditor, Scene, clean_world
from tests.unit.audit.test_invariants import SCENARIOS


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    s = clean_world(tmp_path)
    yield s
    s.world.close()


def one_pass(auditor: Auditor, processes: int = 2, **kwargs: Any) -> ReplayResult:
    with Mirror(auditor.state, trust=auditor.trust, clock=auditor.scene.world.clock) as mirror:
        audit = full_audit(mirror, auditor.scene.source(), processes=processes, **kwargs)
    assert audit.sync.size == auditor.scene.world.deployment.log.size
    return audit.replay


def verdict(result: ReplayResult) -> tuple[Any, ...]:
    return (result.entries, dict(result.checked), result.findings, result.first_time, result.last_time)


@pytest.mark.parametrize(("name", "forge"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_one_pass_finds_what_sync_then_check_finds(
    scene: Scene, tmp_path: Path, name: str, forge: Callable[[Scene], Any]
) -> None:
    """A first audit, a violation, then an incremental one: old entries from the mirror, new ones synced."""
    serial, parallel = Auditor(scene, tmp_path / "serial"), Auditor(scene, tmp_path / "one-pass")
    serial.sync()
    first = one_pass(parallel)
    assert first.ok and verdict(first) == verdict(serial.check())
    forge(scene)
    serial.sync()
    expected = serial.check()
    assert not expected.ok
    assert verdict(one_pass(parallel)) == verdict(expected)
    assert multiprocessing.active_children() == []


def test_in_one_process_the_verdict_is_the_same(scene: Scene, tmp_path: Path) -> None:
    forge = dict(SCENARIOS)["read outside the grant's scope"]
    forge(scene)
    serial = Auditor(scene, tmp_path / "serial")
    serial.sync()
    assert verdict(one_pass(Auditor(scene, tmp_path / "local"), processes=1)) == verdict(serial.check())


def test_a_log_that_does_not_verify_raises_the_syncs_error_and_stops_the_replay(
    scene: Scene, tmp_path: Path
) -> None:
    auditor = Auditor(scene, tmp_path / "mirror")
    one_pass(auditor)
    scene.world.clock.advance(minutes=1)
    scene.record("store.erasure", {"subject": scene.world.commitment("u1"), "receipt": "r"})
    source = scene.source()
    original = source.fetch

    def tampered(path: str) -> bytes:  # the log serves the new entry changed, its tile hash not
        data = original(path)
        return data.replace(b'"receipt":"r"', b'"receipt":"s"') if path.startswith("tile/entries/") else data

    source.fetch = tampered  # type: ignore[method-assign]
    with (
        Mirror(auditor.state, trust=auditor.trust, clock=scene.world.clock) as mirror,
        pytest.raises(VerificationFailed, match=r"entry \d+ served in tile/entries/"),
    ):
        full_audit(mirror, source)
    assert multiprocessing.active_children() == []


def test_a_replay_that_fails_in_its_process_is_raised_with_its_traceback(
    scene: Scene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: InvariantReplay, index: int, data: bytes) -> None:
        raise ValueError(f"cannot replay entry {index}")

    monkeypatch.setattr(InvariantReplay, "feed", broken)
    auditor = Auditor(scene, tmp_path / "mirror")
    with pytest.raises(
        RuntimeError, match=r"(?s)the replay process failed:.*ValueError: cannot replay entry 0"
    ):
        one_pass(auditor)
    assert multiprocessing.active_children() == []


def test_a_store_failure_during_the_sync_is_raised_and_keeps_the_old_state(
    scene: Scene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auditor = Auditor(scene, tmp_path / "mirror")
    size = auditor.sync()
    scene.world.clock.advance(minutes=1)
    scene.record("store.erasure", {"subject": scene.world.commitment("u1"), "receipt": "r"})

    def full_disk(self: Mirror, bundles: list[tuple[int, int, bytes]]) -> None:
        raise StorageUnavailable("SQLite transaction: database or disk is full")

    with monkeypatch.context() as patched:
        patched.setattr(Mirror, "_insert", full_disk)
        with pytest.raises(StorageUnavailable, match="disk is full"):
            one_pass(auditor)
    with Mirror(auditor.state, trust=auditor.trust, clock=scene.world.clock) as mirror:
        assert mirror.size == size
    assert auditor.sync() == size + 1


def test_when_no_second_process_can_start_the_replay_runs_here(
    scene: Scene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fork(self: object) -> None:
        raise BlockingIOError(11, "Resource temporarily unavailable")  # what fork says at a process limit

    monkeypatch.setattr(multiprocessing.context.ForkProcess, "start", no_fork)
    serial = Auditor(scene, tmp_path / "serial")
    serial.sync()
    assert verdict(one_pass(Auditor(scene, tmp_path / "one-pass"))) == verdict(serial.check())
