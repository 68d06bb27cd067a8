"""Crash safety: SIGKILL the appending process at random moments, many times, on both backends.

After every kill: every entry whose append had returned is still there, at its
index, with its data; and every checkpoint published before any crash is
consistent with the tree as it stands (its root is the stored tree's root at
its size), so the next checkpoint is consistent with all of them.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rempart.log import create_signer, open_log, open_storage
from rempart.tlog.merkle import leaf_hash, tree_root
from rempart.tlog.note import Signer

REPO = Path(__file__).resolve().parents[2]
ROUNDS = int(os.environ.get("REMPART_CRASH_ROUNDS", "12"))


def run_and_kill(url: str, key: Path, tag: str, rng: random.Random) -> tuple[list[str], list[str]]:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.crash_appender", url, str(key), tag],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    early: list[bytes] = []
    while (line := child.stdout.readline()) != b"READY\n":
        if not line:  # the child died before it was ready
            _, err = child.communicate()
            pytest.fail(f"crash_appender did not start: {err.decode(errors='replace')}")
        early.append(line)
    time.sleep(rng.uniform(0.02, 0.4))
    child.send_signal(signal.SIGKILL)
    out, _ = child.communicate()
    lines = (b"".join(early) + out).decode(errors="replace").split("\n")
    complete = lines[:-1]  # the last piece may be a line cut by the kill
    acks = [line for line in complete if line.startswith("ACK ")]
    checkpoints = [line for line in complete if line.startswith("CP ")]
    return acks, checkpoints


def crash_many_times(url: str, tmp_path: Path) -> None:
    key = tmp_path / "log.key"
    signer: Signer = create_signer(key, "crash.test/log")
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    acknowledged: dict[int, tuple[bytes, bytes]] = {}
    published: dict[int, bytes] = {}
    for round_ in range(ROUNDS):
        acks, checkpoints = run_and_kill(url, key, f"r{round_}", rng)
        for line in acks:
            _, index, leaf, entry = line.split(" ", 3)
            assert int(index) not in acknowledged, f"index {index} acknowledged twice"
            acknowledged[int(index)] = (bytes.fromhex(leaf), entry.encode())
        for line in checkpoints:
            _, size, root = line.split(" ")
            assert published.get(int(size), bytes.fromhex(root)) == bytes.fromhex(root)
            published[int(size)] = bytes.fromhex(root)

        # Recovery runs the same code as start-up: opening the log re-reads and cross-checks.
        log = open_log(url, signer)
        try:
            storage = log.storage
            size = log.size
            assert not acknowledged or max(acknowledged) < size
            stored = storage.read_entries(0, size)
            for index, (leaf, entry) in acknowledged.items():
                assert stored[index] == entry, f"round {round_}: entry {index} lost or changed"
                assert leaf_hash(stored[index]) == leaf
            for cp_size, root in published.items():
                assert cp_size <= size
                assert tree_root(cp_size, storage) == root, f"checkpoint {cp_size} inconsistent"
            latest = log.publish_checkpoint()
            assert latest.size == size
        finally:
            log.close()
    assert len(acknowledged) > ROUNDS  # the children did real work before dying


@pytest.mark.slow
def test_sigkill_sqlite(tmp_path: Path) -> None:
    crash_many_times(f"sqlite:///{tmp_path / 'log.db'}", tmp_path)


@pytest.mark.slow
@pytest.mark.postgres
def test_sigkill_postgres(tmp_path: Path, pg_dsn: str) -> None:
    crash_many_times(pg_dsn, tmp_path)
    open_storage(pg_dsn).close()
