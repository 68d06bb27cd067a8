"""The auditor's whole job through the command line, against a real deployment's exported read path.

A deployment with traffic exports its tiles (the checkpoint cosigned by a
witness key) → ``rempart audit sync`` → ``rempart audit check`` passes → a
rogue operator appends a violation → sync + check exit 1 naming it →
``rempart audit report`` writes HTML and JSON whose proofs verify → a data
subject's report whose every proof file verifies offline, with
``rempart audit verify-proof`` and with the C2SP proof verifier directly.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rempart.cli import main
from rempart.governance import record_deployment
from rempart.log.export import export_tiles
from rempart.tlog.note import Note
from rempart.tlog.proof_file import verify_proof_file
from tests.unit.audit.audit_world import Auditor, ReadPathSource, Scene, clean_world, postgres_config


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


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    s = clean_world(tmp_path)
    yield s
    s.world.close()


def export(scene: Scene, folder: Path) -> None:
    """What a log operator publishes: its tiles, and the checkpoint with the witness's cosignature."""
    source = scene.source()  # publishes a checkpoint first
    export_tiles(scene.world.deployment.read_path, folder)
    (folder / "checkpoint").write_bytes(source.fetch("checkpoint"))


def forge_a_parent_read(scene: Scene) -> int:
    """What a rogue operator writes: a decision letting the parent read protected data; its index."""
    return scene.record(
        "access.decision",
        {
            "principal": "parent:bob",
            "org": "parent",
            "action": "read",
            "region": "us",
            "collection": "contact",
            "record": "main",
            "subject": scene.world.commitment("u1"),
            "purpose": "customer_support",
            "grant": None,
            "break_glass": False,
            "allowed": True,
            "fields": [
                {"name": "email", "category": "protected", "allowed": True, "policies": [], "reasons": []}
            ],
            "policy_version": scene.world.deployment.policy_engine.policies.version,
        },
    )


def test_sync_check_violation_report_and_subject_report(
    scene: Scene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    d = scene.world.deployment
    tiles, state = tmp_path / "tiles", tmp_path / "mirror"
    (tmp_path / "log.vkey").write_text(d.log_signer.vkey() + "\n")
    (tmp_path / "w.vkey").write_text(scene.witness.vkey() + "\n")
    keys = ["--vkey", f"@{tmp_path / 'log.vkey'}"]
    witness = ["--witness", f"@{tmp_path / 'w.vkey'}"]

    export(scene, tiles)
    code, out, err = run(
        monkeypatch, capsys, "audit", "sync", str(tiles), "--state", str(state), *keys, *witness, "--json"
    )
    assert code == 0, err
    assert json.loads(out)["cosigned_by"] == ["witness.example-w1"]
    code, out, err = run(monkeypatch, capsys, "audit", "check", "--state", str(state), "--json")
    assert code == 0, err
    clean = json.loads(out)
    assert clean["ok"] is True
    assert clean["findings"] == []
    assert clean["trust_root"] == {"source": "log (verified from version 1)", "version_in_force": 1}
    assert clean["checkpoint"]["cosigned_by"] == ["witness.example-w1"]
    code, out, _ = run(monkeypatch, capsys, "audit", "check", "--state", str(state))
    assert code == 0
    assert "no violations, 0 notice(s)" in out

    # A rogue operator writes a decision letting the parent read protected data.
    forged = forge_a_parent_read(scene)
    export(scene, tiles)
    code, _, err = run(
        monkeypatch, capsys, "audit", "sync", str(tiles), "--state", str(state), *keys, *witness
    )
    assert code == 0, err
    code, out, _ = run(monkeypatch, capsys, "audit", "check", "--state", str(state), "--json")
    assert code == 1
    found = json.loads(out)
    assert found["ok"] is False
    assert [(f["invariant"], f["index"]) for f in found["findings"]] == [
        ("access-grant", forged),
        ("parent-protected", forged),
    ]
    subject = scene.world.commitment("u1")[:12]
    assert found["findings"][1]["message"] == (
        "parent principal parent:bob was allowed to read protected field(s) contact.email "
        f"of subject {subject}…"
    )
    code, out, _ = run(monkeypatch, capsys, "audit", "check", "--state", str(state))
    assert code == 1
    assert "parent-protected" in out and "2 violation(s), 0 notice(s)" in out

    # The regulator's report: HTML and JSON, a proof per finding that verifies against the checkpoint.
    reports = tmp_path / "report"
    code, out, err = run(
        monkeypatch, capsys, "audit", "report", "--state", str(state), "--out", str(reports), "--json"
    )
    assert code == 0, err
    written = json.loads(out)
    assert written["violations"] == 2
    doc = json.loads((reports / "report.json").read_text())
    assert doc["format"] == "rempart/audit-report/v1"
    assert [f["index"] for f in doc["findings"]] == [forged, forged]
    entry = d.read_path.entry(forged)
    proof_path = reports / doc["findings"][0]["proof"]["file"]
    verified = verify_proof_file(
        proof_path.read_bytes(),
        origin=d.log_signer.name,
        log=d.log_signer.verifier(),
        witnesses=(scene.witness.verifier(),),
        threshold=1,
        entry=entry,
    )
    assert verified.index == forged
    assert verified.checkpoint.size == doc["checkpoint"]["size"] == d.log.size
    page = (reports / "report.html").read_text()
    assert f'<a href="proofs/{forged}.tlog-proof">entry {forged}</a>' in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert page.count("<svg") == 9  # violations, 2 lines (purpose, org), latency, 2 denials, 3 egress

    # A data subject's report: every proof file verifies offline.
    key = d.records.commitment_key("u1").hex()
    subject_dir = tmp_path / "subject"
    code, out, err = run(
        monkeypatch,
        capsys,
        "audit",
        "subject-report",
        "--state",
        str(state),
        "--subject",
        "u1",
        "--key",
        key,
        "--out",
        str(subject_dir),
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["accesses"] == 6  # five in the clean world, and the forged one
    assert report["entries"][-1]["principal"] == "parent:bob"
    proofs = sorted((subject_dir / "proofs").iterdir())
    assert len(proofs) == len(report["entries"])
    code, out, err = run(
        monkeypatch, capsys, "audit", "verify-proof", *map(str, proofs), *keys, *witness, "--json"
    )
    assert code == 0, err
    checked = json.loads(out)["proofs"]
    assert sorted(c["index"] for c in checked) == [e["index"] for e in report["entries"]]
    assert all(c["cosigned_by"] == ["witness.example-w1"] for c in checked)
    for proof in proofs:
        index = int(proof.name.split(".")[0])
        verify_proof_file(
            proof.read_bytes(),
            origin=d.log_signer.name,
            log=d.log_signer.verifier(),
            witnesses=(scene.witness.verifier(),),
            threshold=1,
            entry=(subject_dir / "entries" / f"{index}.json").read_bytes(),
        )

    # A proof file whose entry was altered is refused, exit 1.
    altered = tmp_path / "altered.tlog-proof"
    altered.write_bytes(proofs[0].read_bytes().replace(b"index ", b"index 1", 1))
    code, _, err = run(monkeypatch, capsys, "audit", "verify-proof", str(altered), *keys, *witness)
    assert code == 1
    assert err.startswith("error (verification_failed):")


def test_check_with_sync_is_sync_then_check_in_one_pass(
    scene: Scene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``audit check --sync`` answers as ``audit sync`` then ``audit check`` do, first and incremental."""
    d = scene.world.deployment
    tiles, serial, one_pass = tmp_path / "tiles", tmp_path / "serial", tmp_path / "one-pass"
    keys = ["--vkey", d.log_signer.vkey(), "--witness", scene.witness.vkey()]

    def both() -> tuple[int, dict[str, object]]:
        export(scene, tiles)
        code, _, err = run(monkeypatch, capsys, "audit", "sync", str(tiles), "--state", str(serial), *keys)
        assert code == 0, err
        code, expected, _ = run(monkeypatch, capsys, "audit", "check", "--state", str(serial), "--json")
        sync = ["--sync", str(tiles), "--state", str(one_pass)]
        again, out, err = run(monkeypatch, capsys, "audit", "check", *sync, *keys, "--json")
        assert (again, json.loads(out)) == (code, json.loads(expected)), err
        return code, json.loads(out)

    assert both()[0] == 0
    code, out, _ = run(monkeypatch, capsys, "audit", "check", "--sync", str(tiles), "--state", str(one_pass))
    assert code == 0
    assert f"synced: size {d.log.size}, 0 new entries" in out and "no violations" in out
    forge_a_parent_read(scene)
    code, found = both()
    assert code == 1
    assert [f["invariant"] for f in found["findings"]] == ["access-grant", "parent-protected"]  # type: ignore[index]

    # Witness keys belong to a sync with its own --vkey; alone they are a mistake, said so.
    code, _, err = run(
        monkeypatch, capsys, "audit", "check", "--state", str(one_pass), "--witness", scene.witness.vkey()
    )
    assert code == 2
    assert err.startswith(
        "error (invalid_input): --witness, --witness-threshold and --origin need --sync and --vkey"
    )


def test_check_without_a_synced_mirror_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(monkeypatch, capsys, "audit", "check", "--state", str(tmp_path / "none"))
    assert code == 3
    assert " ".join(err.split()) == (
        f"error (not_found): {tmp_path / 'none'} holds no mirror synced by this version of rempart "
        "(sync-trust.json is missing); run rempart audit sync first, or give --vkey"
    )


def test_a_cosigned_checkpoint_export_keeps_the_logs_signature(scene: Scene, tmp_path: Path) -> None:
    export(scene, tmp_path / "tiles")
    note = Note.parse((tmp_path / "tiles" / "checkpoint").read_bytes())
    assert [s.name for s in note.signatures] == [scene.world.deployment.log_signer.name, "witness.example-w1"]
    assert isinstance(scene.source(), ReadPathSource)


@pytest.mark.postgres
def test_the_audit_of_a_deployment_on_postgresql(
    tmp_path: Path, pg_database_factory: Callable[[], str]
) -> None:
    """The operator's control database and log on PostgreSQL: the auditor checks the same log the same way."""
    config = postgres_config(tmp_path / "deployment", pg_database_factory(), pg_database_factory())
    scene = clean_world(tmp_path, config=config)
    try:
        assert scene.world.deployment.log.storage.__class__.__name__ == "PostgresLogStorage"
        auditor = Auditor(scene, tmp_path / "mirror")
        auditor.sync()
        clean = auditor.check()
        assert clean.findings == ()
        assert clean.checked["access-grant"] == 6
        index = record_deployment(
            scene.recorder,
            region="us",
            digest="sha256:" + "cd" * 32,
            deployer="deployer:pg",
            now=scene.world.now,
        ).index
        auditor.sync()
        assert [(f.invariant, f.index) for f in auditor.check().violations] == [("release-approved", index)]
    finally:
        scene.world.close()
