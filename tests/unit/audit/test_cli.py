"""``rempart witness …`` and ``rempart audit …`` through the one error handler, in process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rempart.audit.mirror import LogTrust, Mirror
from rempart.audit.witness import WitnessStore
from rempart.cli import main
from rempart.clock import ManualClock
from rempart.db import Database
from rempart.errors import VerificationFailed
from rempart.log import open_log
from rempart.log.export import export_tiles
from rempart.log.serving import LogReadPath
from rempart.tlog.cosignature import CosignatureVerifier
from rempart.tlog.note import Signer


def run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["rempart", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_witness_init_vkey_and_add_log(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = str(tmp_path / "w")
    code, out, _ = run(monkeypatch, capsys, "witness", "init", "--data-dir", folder, "--name", "w.example/1")
    assert code == 0 and "created witness w.example/1" in out
    code, vkey, _ = run(monkeypatch, capsys, "witness", "vkey", "--data-dir", folder)
    assert code == 0 and CosignatureVerifier.parse(vkey.strip()).name == "w.example/1"
    assert (tmp_path / "w" / "witness.key").stat().st_mode & 0o777 == 0o600

    log = Signer.generate("example.com/log")
    (tmp_path / "log.vkey").write_text(log.vkey() + "\n")
    code, out, _ = run(
        monkeypatch,
        capsys,
        "witness",
        "add-log",
        "--data-dir",
        folder,
        "--vkey",
        f"@{tmp_path / 'log.vkey'}",
        "--json",
    )
    assert code == 0
    assert json.loads(out) == {"origin": "example.com/log", "keys": [log.vkey()], "size": 0}
    database = Database.open(f"sqlite:///{tmp_path / 'w' / 'witness.db'}")
    try:
        assert WitnessStore(database).log("example.com/log").keys == (log.verifier(),)
    finally:
        database.close()

    code, _, err = run(monkeypatch, capsys, "witness", "init", "--data-dir", folder, "--name", "w.example/1")
    assert code == 3
    assert err.startswith(f"error (configuration_error): {tmp_path / 'w' / 'witness.key'} already exists;")


def test_witness_commands_explain_what_is_wrong(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "nowhere"
    code, _, err = run(monkeypatch, capsys, "witness", "vkey", "--data-dir", str(folder))
    assert code == 3
    assert " ".join(err.split()) == (
        f"error (not_found): no witness in {folder}; create one with: "
        f"rempart witness init --data-dir {folder} --name NAME"
    )
    run(monkeypatch, capsys, "witness", "init", "--data-dir", str(folder), "--name", "w.example/1")
    code, _, err = run(
        monkeypatch, capsys, "witness", "add-log", "--data-dir", str(folder), "--vkey", "nonsense"
    )
    assert code == 2
    assert err.startswith("error (invalid_input): verifier key must be name+hexid+base64(type‖key), found 1")
    witness_key = CosignatureVerifier.parse(
        run(monkeypatch, capsys, "witness", "vkey", "--data-dir", str(folder))[1].strip()
    )
    code, _, err = run(
        monkeypatch, capsys, "witness", "add-log", "--data-dir", str(folder), "--vkey", witness_key.vkey()
    )
    assert code == 2
    assert err.startswith(
        "error (invalid_input): verifier key 'w.example/1' has signature type 0x04, not Ed25519"
    )


def test_audit_sync_json_and_entries(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    signer = Signer.generate("example.com/log")
    with open_log(f"sqlite:///{tmp_path / 'log.db'}", signer, checkpoint_interval=3600) as log:
        log.append_many([b"a", b"b", b"c"])
        log.publish_checkpoint()
        export_tiles(LogReadPath(log.storage), tmp_path / "tiles")
    state = tmp_path / "state"
    args = ["audit", "sync", str(tmp_path / "tiles"), "--vkey", signer.vkey(), "--state", str(state)]
    code, out, _ = run(monkeypatch, capsys, *args)
    assert code == 0 and "log mirrored and verified" in out and "first sync: state saved" in out
    code, out, _ = run(monkeypatch, capsys, *args, "--json")
    assert code == 0
    report = json.loads(out)
    assert (report["size"], report["previous_size"], report["new_entries"]) == (3, 3, 0)
    trust = LogTrust(origin="example.com/log", log=signer.verifier())
    with Mirror(state, trust=trust, clock=ManualClock()) as mirror:
        assert list(mirror.entries()) == [(0, b"a"), (1, b"b"), (2, b"c")]
    # A witness key that is not a cosignature key is bad input, and a threshold above the keys too.
    code, _, err = run(monkeypatch, capsys, *args, "--witness", signer.vkey())
    assert code == 2 and "has signature type 0x01, not Ed25519 cosignature/v1 (0x04)" in err
    code, _, err = run(monkeypatch, capsys, *args, "--witness-threshold", "1")
    assert code == 2
    assert err.startswith("error (invalid_input): witness threshold 1 is not in 0..0")


def test_an_altered_mirror_database_is_noticed(tmp_path: Path) -> None:
    signer = Signer.generate("example.com/log")
    with open_log(f"sqlite:///{tmp_path / 'log.db'}", signer, checkpoint_interval=3600) as log:
        log.append_many([b"%d" % i for i in range(10)])
        log.publish_checkpoint()
        export_tiles(LogReadPath(log.storage), tmp_path / "tiles")
    from rempart.log.source import DirectorySource

    trust = LogTrust(origin="example.com/log", log=signer.verifier())
    with Mirror(tmp_path / "state", trust=trust, clock=ManualClock()) as mirror:
        mirror.sync(DirectorySource(tmp_path / "tiles"))
        with mirror.database.transaction() as tx:
            tx.execute("DELETE FROM mirror_bundles WHERE tile = 0")
        with pytest.raises(VerificationFailed) as caught:
            list(mirror.entries())
        assert caught.value.message == (
            f"the mirror in {tmp_path / 'state'} lacks entries in [0, 10): its database was altered"
        )


def test_a_witness_key_file_that_is_not_text_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "w"
    run(monkeypatch, capsys, "witness", "init", "--data-dir", str(folder), "--name", "w.example/1")
    (folder / "witness.key").write_bytes(b"\xff\xfe not a key")
    code, _, err = run(monkeypatch, capsys, "witness", "vkey", "--data-dir", str(folder))
    assert code == 3
    assert " ".join(err.split()).startswith(
        f"error (configuration_error): key file {folder / 'witness.key'} is not UTF-8 text"
    )


@pytest.mark.parametrize(
    "command",
    [
        ["witness", "add-log", "--data-dir", "{tmp}/w"],
        ["audit", "verify-proof", "{tmp}/none.tlog-proof"],
    ],
)
def test_a_vkey_file_that_is_not_text_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str]
) -> None:
    run(monkeypatch, capsys, "witness", "init", "--data-dir", str(tmp_path / "w"), "--name", "w.example/1")
    (tmp_path / "log.vkey").write_bytes(b"\xff\xfe")
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    code, _, err = run(monkeypatch, capsys, *args, "--vkey", f"@{tmp_path / 'log.vkey'}")
    assert code == 2
    assert " ".join(err.split()).startswith(
        f"error (invalid_input): cannot read the log key file {tmp_path / 'log.vkey'}: not UTF-8 text"
    )
