"""Tampering with a real log, caught by auditors mirroring its read path over HTTP.

The log is a real :class:`TransparencyLog` on SQLite; its tlog-tiles read path
is served over loopback HTTP straight from that database. The attacks are made
where an attacker would make them: a database administrator edits, drops or
reorders entries in ``log_chunks``; a log operator signs a fork and serves it to
one auditor and not to another. Each is detected and named: which entry
index, which sizes and roots.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rempart.audit.mirror import LogTrust, Mirror, compare_checkpoints
from rempart.clock import ManualClock
from rempart.errors import VerificationFailed
from rempart.log import open_log
from rempart.log.source import HttpSource
from rempart.log.sqlite import SqliteLogStorage
from rempart.log.storage import chunk_entries, entries_from_chunks
from rempart.tlog.checkpoint import Checkpoint
from rempart.tlog.merkle import leaf_hash, tree_root
from rempart.tlog.note import Note, Signer
from tests.unit.audit.harness import asgi_server, read_path_app

ORIGIN = "tamper.example/log"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def entry(i: int, tag: str = "honest") -> bytes:
    return b'{"i":%d,"time":"2026-03-01T12:00:00.000000Z","type":"example.%s","v":1}' % (i, tag.encode())


def leaf(data: bytes) -> str:
    return leaf_hash(data).hex()


def build_log(path: Path, signer: Signer, entries: list[bytes]) -> bytes:
    """Append ``entries`` to the log at ``path`` (creating it), publish, return the signed checkpoint."""
    with open_log(f"sqlite:///{path}", signer, checkpoint_interval=3600) as log:
        log.append_many(entries[log.size :])
        return log.publish_checkpoint().note


@contextlib.contextmanager
def served(path: Path) -> Iterator[str]:
    storage = SqliteLogStorage(path)
    try:
        with asgi_server(read_path_app(storage)) as url:
            yield url + "/"
    finally:
        storage.close()


def root_hex(note: bytes) -> str:
    return Checkpoint.parse(Note.parse(note).text).root.hex()


@pytest.fixture
def signer() -> Signer:
    return Signer.generate(ORIGIN)


@pytest.fixture
def trust(signer: Signer) -> LogTrust:
    return LogTrust(origin=ORIGIN, log=signer.verifier())


@pytest.fixture
def log_path(tmp_path: Path, signer: Signer) -> Path:
    path = tmp_path / "log.db"
    build_log(path, signer, [entry(i) for i in range(300)])
    return path


def rewrite_entries(log_path: Path, change: Callable[[list[bytes]], list[bytes]]) -> None:
    """What a database administrator could do: rewrite the stored entries behind the log's back."""
    conn = sqlite3.connect(log_path)
    try:
        rows = conn.execute("SELECT start, count, data FROM log_chunks ORDER BY start").fetchall()
        size = rows[-1][0] + rows[-1][1] if rows else 0
        entries = change(entries_from_chunks(rows, 0, size))
        conn.execute("DELETE FROM log_chunks")
        conn.executemany(
            "INSERT INTO log_chunks (start, count, data) VALUES (?, ?, ?)", chunk_entries(0, entries)
        )
        conn.commit()
    finally:
        conn.close()


def replace_at(entries: list[bytes], index: int, value: bytes) -> list[bytes]:
    return [*entries[:index], value, *entries[index + 1 :]]


def sync(url: str, state: Path, trust: LogTrust) -> None:
    source = HttpSource(url)
    try:
        with Mirror(state, trust=trust, clock=ManualClock(START)) as mirror:
            mirror.sync(source)
    finally:
        source.close()


def refused(url: str, state: Path, trust: LogTrust) -> VerificationFailed:
    with pytest.raises(VerificationFailed) as caught:
        sync(url, state, trust)
    return caught.value


def test_one_changed_byte_of_one_entry_is_named(log_path: Path, trust: LogTrust, tmp_path: Path) -> None:
    original = entry(137)
    changed = original.replace(b'"i":137', b'"i":136')
    assert len(changed) == len(original) and sum(a != b for a, b in zip(changed, original, strict=True)) == 1
    rewrite_entries(log_path, lambda entries: replace_at(entries, 137, changed))
    with served(log_path) as url:
        error = refused(url, tmp_path / "auditor", trust)
    assert error.message == (
        f"entry 137 served in tile/entries/000 has leaf hash {leaf(changed)}, but tile/0/000 says "
        f"{leaf(original)}; entries that do not match their hashes: 137"
    )
    assert error.details["entries"] == [137] and error.details["diagnosis"] is None
    evidence = Path(error.details["evidence"])
    assert evidence.name == "20260301T120000.000000Z-entry-mismatch"
    served_bundle = (evidence / "tile/entries/000").read_bytes()
    assert changed in served_bundle and original not in served_bundle
    assert json.loads((evidence / "report.json").read_text())["details"]["entries"] == [137]


def test_a_changed_entry_already_mirrored_is_a_rewritten_past(
    log_path: Path, signer: Signer, trust: LogTrust, tmp_path: Path
) -> None:
    with served(log_path) as url:
        sync(url, tmp_path / "auditor", trust)  # mirrors 300 entries, the last bundle partial
    build_log(log_path, signer, [entry(i) for i in range(310)])
    original = entry(290)
    changed = original.replace(b"honest", b"hOnest")
    rewrite_entries(log_path, lambda entries: replace_at(entries, 290, changed))
    with served(log_path) as url:
        error = refused(url, tmp_path / "auditor", trust)
    assert error.message == (
        "rewritten past: entry 290 served in tile/entries/001.p/54 differs from the copy verified at "
        f"size 300 (leaf hash {leaf(changed)} now, {leaf(original)} then); changed entries: 290"
    )
    assert (error.details["entries"], error.details["mirrored_size"]) == ([290], 300)
    with Mirror(tmp_path / "auditor", trust=trust, clock=ManualClock(START)) as mirror:
        assert mirror.size == 300 and dict(mirror.entries(290, 291)) == {290: original}


def test_a_dropped_entry_is_named(log_path: Path, trust: LogTrust, tmp_path: Path) -> None:
    rewrite_entries(log_path, lambda entries: entries[:40] + entries[41:])
    with served(log_path) as url:
        error = refused(url, tmp_path / "auditor", trust)
    assert error.message == (
        f"entry 40 served in tile/entries/000 has leaf hash {leaf(entry(41))}, but tile/0/000 says "
        f"{leaf(entry(40))}; entries that do not match their hashes: 40, 41, 42, 43, 44, 45, 46, 47 "
        "and 208 more (entry 40 was dropped: the entries after it moved up by one)"
    )
    assert error.details["entries"] == list(range(40, 256))


def test_two_reordered_entries_are_named(log_path: Path, trust: LogTrust, tmp_path: Path) -> None:
    rewrite_entries(
        log_path, lambda entries: replace_at(replace_at(entries, 10, entry(200)), 200, entry(10))
    )
    with served(log_path) as url:
        error = refused(url, tmp_path / "auditor", trust)
    assert error.message == (
        f"entry 10 served in tile/entries/000 has leaf hash {leaf(entry(200))}, but tile/0/000 says "
        f"{leaf(entry(10))}; entries that do not match their hashes: 10, 200 (entries 10 and 200 are swapped)"
    )
    assert error.details["diagnosis"] == "entries 10 and 200 are swapped"


def test_a_fork_served_to_one_auditor_and_not_the_other(
    log_path: Path, signer: Signer, trust: LogTrust, tmp_path: Path
) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    with served(log_path) as url:
        sync(url, alice, trust)
        sync(url, bob, trust)
    at_300 = (alice / "checkpoint").read_bytes()
    honest_400 = build_log(log_path, signer, [entry(i) for i in range(400)])
    # The operator keeps a second tree that agrees up to entry 249 and signs it with the log's key.
    fork_path = tmp_path / "fork.db"
    fork_400 = build_log(fork_path, signer, [entry(i) if i < 250 else entry(i, "forked") for i in range(400)])
    fork_storage = SqliteLogStorage(fork_path)
    fork_root_300 = tree_root(300, fork_storage).hex()
    fork_storage.close()
    with served(fork_path) as fork_url:
        error = refused(fork_url, alice, trust)
    assert error.message == (
        f"fork: the checkpoint of size 400 (root {root_hex(fork_400)}) is not consistent with the checkpoint "
        f"of size 300 (root {root_hex(at_300)}) verified before: consistency proof 300→400 implies old root "
        f"{fork_root_300}, not {root_hex(at_300)}"
    )
    assert {k: error.details[k] for k in ("old_size", "old_root", "new_size", "new_root")} == {
        "old_size": 300,
        "old_root": root_hex(at_300),
        "new_size": 400,
        "new_root": root_hex(fork_400),
    }
    evidence = Path(error.details["evidence"])
    assert (evidence / "previous-checkpoint").read_bytes() == at_300
    assert (evidence / "served-checkpoint").read_bytes() == fork_400
    with served(log_path) as url:
        sync(url, bob, trust)
    assert (bob / "checkpoint").read_bytes() == honest_400
    assert (alice / "checkpoint").read_bytes() == at_300  # Alice's good state is untouched
    # Gossip: Bob's checkpoint and the one Alice kept as evidence cannot both be true.
    with pytest.raises(VerificationFailed) as caught:
        compare_checkpoints(honest_400, (evidence / "served-checkpoint").read_bytes(), trust=trust)
    assert caught.value.message == (
        f"split view: two signed checkpoints of size 400 with different roots {root_hex(honest_400)} and "
        f"{root_hex(fork_400)}"
    )


def test_a_fork_after_what_both_saw_is_caught_only_by_gossip(
    log_path: Path, signer: Signer, trust: LogTrust, tmp_path: Path
) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    with served(log_path) as url:
        sync(url, alice, trust)
        sync(url, bob, trust)
    honest_420 = build_log(log_path, signer, [entry(i) for i in range(420)])
    fork_path = tmp_path / "fork.db"
    fork_410 = build_log(fork_path, signer, [entry(i) if i < 350 else entry(i, "forked") for i in range(410)])
    with served(fork_path) as fork_url:
        sync(fork_url, alice, trust)  # consistent with the 300 entries Alice saw: she cannot tell alone
    with served(log_path) as url:
        sync(url, bob, trust)
        source = HttpSource(url)
        try:
            with pytest.raises(VerificationFailed) as caught:
                compare_checkpoints(
                    (alice / "checkpoint").read_bytes(),
                    (bob / "checkpoint").read_bytes(),
                    trust=trust,
                    tiles=source,
                )
        finally:
            source.close()
    assert caught.value.message.startswith(
        f"split view: the signed checkpoint of size 410 (root {root_hex(fork_410)}) is not a prefix of the "
        f"signed checkpoint of size 420 (root {root_hex(honest_420)}): "
        "consistency proof 410→420 implies old root"
    )
