"""`rempart log …` as a real process: init, append, prove, export, verify; forks and rollbacks fail loudly."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from rempart.tlog.checkpoint import open_checkpoint
from rempart.tlog.note import Verifier
from rempart.tlog.proof_file import verify_proof_file

RUN = [sys.executable, "-m", "rempart.cli._main"]


def rempart(*args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*RUN, *map(str, args)], capture_output=True, text=True, timeout=120)
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def test_log_lifecycle_and_fork_detection(tmp_path: Path) -> None:
    honest, forked = tmp_path / "honest", tmp_path / "forked"
    rempart("log", "init", "--data-dir", honest, "--origin", "cli.test/log")
    vkey = rempart("log", "vkey", "--data-dir", honest).stdout.strip()
    verifier = Verifier.parse(vkey)
    rempart("log", "append", "one", "two", "three", "--data-dir", honest)

    proof = rempart("log", "prove", "--index", "1", "--data-dir", honest).stdout.encode()
    verified = verify_proof_file(
        proof, entry=b"two", origin="cli.test/log", log=verifier, witnesses=(), threshold=0
    )
    assert (verified.index, verified.checkpoint.size) == (1, 3)

    tiles3 = tmp_path / "tiles3"
    rempart("log", "export", tiles3, "--data-dir", honest)

    # The log operator copies its key and grows a different history: a fork.
    shutil.copytree(honest, forked)
    rempart("log", "append", "four", "--data-dir", honest)
    rempart("log", "append", "FOUR", "five", "--data-dir", forked)

    tiles, fork_tiles, state = tmp_path / "tiles", tmp_path / "fork-tiles", tmp_path / "state"
    rempart("log", "export", tiles, "--data-dir", honest)
    rempart("log", "export", fork_tiles, "--data-dir", forked)
    first = rempart("log", "verify", tiles, "--vkey", vkey, "--state", state, "--json")
    assert '"size": 4' in first.stdout
    honest_root = open_checkpoint(state.read_bytes(), origin="cli.test/log", log=verifier)

    fork = rempart("log", "verify", fork_tiles, "--vkey", vkey, "--state", state, ok=False)
    assert fork.returncode == 1
    assert "fork: checkpoint of size 5" in fork.stderr
    assert "earlier checkpoint of size 4" in fork.stderr
    assert f"old_root: {honest_root.checkpoint.root.hex()}" in fork.stderr
    # The state still holds the honest checkpoint: a fork never overwrites it.
    assert state.read_bytes() == (tiles / "checkpoint").read_bytes()

    # A rollback (an older, honest checkpoint served again) is refused too.
    rollback = rempart("log", "verify", tiles3, "--vkey", vkey, "--state", state, ok=False)
    assert rollback.returncode == 1
    assert "rollback: the log now shows size 3" in rollback.stderr
    assert "smaller than size 4" in rollback.stderr


def test_bad_input_gets_one_clear_line(tmp_path: Path) -> None:
    missing = rempart("log", "vkey", "--data-dir", tmp_path / "nothing", ok=False)
    assert missing.returncode == 3
    assert "no log in" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad_key = rempart("log", "verify", tmp_path, "--vkey", "nope", ok=False)
    assert bad_key.returncode == 2
    assert "verifier key must be name+hexid+base64" in bad_key.stderr
    rempart("log", "init", "--data-dir", tmp_path / "d")
    too_big = rempart(
        "log", "prove", "--index", "5", "--data-dir", tmp_path / "d", ok=False
    )
    assert too_big.returncode in (2, 3)
    assert "Traceback" not in too_big.stderr
    assert "the log has not published a checkpoint yet" in too_big.stderr


def test_unreadable_files_get_one_clear_line(tmp_path: Path) -> None:
    no_key = rempart("log", "verify", tmp_path, "--vkey", f"@{tmp_path / 'missing.vkey'}", ok=False)
    assert no_key.returncode == 2
    assert "cannot read the verifier key file" in no_key.stderr
    assert "Traceback" not in no_key.stderr
    rempart("log", "init", "--data-dir", tmp_path / "d")
    no_entries = rempart(
        "log", "append", "--file", tmp_path / "missing.txt", "--data-dir", tmp_path / "d", ok=False
    )
    assert no_entries.returncode == 2
    assert "cannot read the entries file" in no_entries.stderr
    rempart("log", "append", "one", "--data-dir", tmp_path / "d")
    no_folder = rempart(
        "log", "prove", "--index", "0", "--data-dir", tmp_path / "d",
        "--output", tmp_path / "missing" / "p.tlog-proof", ok=False,
    )
    assert no_folder.returncode == 2
    assert "cannot write the proof file" in no_folder.stderr
    assert "Traceback" not in no_entries.stderr + no_folder.stderr
    export = tmp_path / "tiles"
    rempart("log", "export", export, "--data-dir", tmp_path / "d")
    vkey = rempart("log", "vkey", "--data-dir", tmp_path / "d").stdout.strip()
    state_is_a_folder = rempart("log", "verify", export, "--vkey", vkey, "--state", tmp_path, ok=False)
    assert state_is_a_folder.returncode == 2
    assert "cannot read the state file" in state_is_a_folder.stderr
