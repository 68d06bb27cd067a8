"""The board's and engineering's commands, end to end through ``rempart``'s one error handler."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import pytest

from rempart.cli import main
from rempart.tlog.note import Signer

BOARD = ("board-1", "board-2", "board-3")
REVIEWERS = ("reviewer-1", "reviewer-2")


def run_raw(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """Run ``rempart ARGS``; return the exit code, stdout and stderr as printed."""
    monkeypatch.setattr(sys, "argv", ["rempart", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run ``rempart ARGS``; return the exit code and stdout+stderr with whitespace collapsed."""
    code, out, err = run_raw(monkeypatch, capsys, *args)
    return code, " ".join((out + err).split())


def test_board_and_release_flow(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from rempart.governance.trustroot import example_document
    from rempart.keyfiles import read_secret_file

    data = tmp_path / "data"
    keys = tmp_path / "keys"
    assert run(monkeypatch, capsys, "log", "init", "--data-dir", str(data), "--origin", "log.example")[0] == 0
    for name in (*BOARD, *REVIEWERS, "registry", "engineer"):
        code, out = run(monkeypatch, capsys, "trust-root", "keygen", name, "--out", str(keys / f"{name}.key"))
        assert code == 0
        assert out.startswith(f"{name}+")

    def signer(name: str) -> Signer:
        return Signer.parse(read_secret_file(keys / f"{name}.key").decode().strip())

    log_signer = Signer.parse(read_secret_file(data / "keys" / "log.key").decode().strip())
    doc = json.loads(
        example_document(
            board=[signer(n) for n in BOARD],
            threshold=2,
            reviewers=[signer(n) for n in REVIEWERS],
            reviewer_threshold=2,
            log=log_signer,
            registry=signer("registry"),
            regions=("us", "row"),
        )
    )
    (tmp_path / "root.json").write_text(json.dumps(doc, indent=2))  # a person's file need not be canonical
    bundle = tmp_path / "v1.bundle.json"

    code, out = run(
        monkeypatch,
        capsys,
        "trust-root",
        "sign",
        str(tmp_path / "root.json"),
        "--key",
        str(keys / "board-1.key"),
        "--out",
        str(bundle),
    )
    assert code == 0
    assert re.fullmatch(rf"signed trust root version 1 \(document sha256 [0-9a-f]{{64}}\) into {bundle}", out)
    code, out = run(monkeypatch, capsys, "trust-root", "install", str(bundle), "--data-dir", str(data))
    assert code == 1
    assert out.startswith(
        "error (verification_failed): trust root version 1: 1 of 2 required signatures from its own board "
        "(version 1); 1 missing (signed by keys: board-1+"
    )
    assert (
        run(
            monkeypatch,
            capsys,
            "trust-root",
            "sign",
            str(bundle),
            "--key",
            str(keys / "board-2.key"),
            "--out",
            str(bundle),
        )[0]
        == 0
    )
    code, out = run(monkeypatch, capsys, "trust-root", "verify", str(bundle))
    assert (code, out) == (
        0,
        "trust root chain verified: version 1 of rempart.example is in force (board 2 of 3)",
    )
    code, out = run(monkeypatch, capsys, "trust-root", "install", str(bundle), "--data-dir", str(data))
    assert (code, out) == (0, "installed trust root version 1 of rempart.example")

    # The submitter is a principal of the deployment (issue 4's directory).
    from rempart.access.principals import Principal, PrincipalStore
    from rempart.clock import SystemClock
    from rempart.db import Database
    from rempart.events import LogRecorder
    from rempart.log import open_log

    db = Database.open(f"sqlite:///{data / 'control.db'}")
    with open_log(f"sqlite:///{data / 'log.db'}", log_signer) as log:
        PrincipalStore(db, recorder=LogRecorder(log), clock=SystemClock()).create(
            Principal.build(
                id="user:eng-1", display_name="Eng", org="operator", location="US", screening="cleared",
                vkey=signer("engineer").vkey(),
            ),
            actor="admin",
        )  # fmt: skip
    db.close()

    artifact = tmp_path / "rules.json"
    artifact.write_bytes(b'{"rules": []}')
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    code, out = run(
        monkeypatch, capsys, "release", "submit", str(artifact), "--region", "us",
        "--kind", "moderation_rule_set",
        "--submitter", "user:eng-1", "--key", str(keys / "engineer.key"), "--data-dir", str(data),
    )  # fmt: skip
    assert code == 0
    match = re.fullmatch(rf"submitted release (r-[0-9a-f]{{16}}): sha256:{digest} for us", out)
    assert match is not None
    release_id = match.group(1)
    code, out = run(
        monkeypatch, capsys, "release", "verify", digest, "--region", "us", "--data-dir", str(data)
    )
    assert (code, out) == (
        1,
        f"error (verification_failed): pending: sha256:{digest} in us has 0 of 2 reviewer signatures "
        "state: pending",
    )
    for name in REVIEWERS:
        assert (
            run(
                monkeypatch,
                capsys,
                "release",
                "review",
                release_id,
                "--key",
                str(keys / f"{name}.key"),
                "--data-dir",
                str(data),
            )[0]
            == 0
        )
    code, out = run(
        monkeypatch, capsys, "release", "verify", digest, "--region", "us", "--data-dir", str(data)
    )
    assert (code, out) == (
        0,
        f"approved: sha256:{digest} in us is release {release_id} (rules.json), submitted by user:eng-1, "
        "signed by reviewer-1, reviewer-2",
    )
    code, out, err = run_raw(
        monkeypatch,
        capsys,
        "release",
        "verify",
        "ab" * 32,
        "--region",
        "us",
        "--data-dir",
        str(data),
        "--json",
    )
    assert code == 1
    assert json.loads(out)["state"] == "unknown"
    assert (
        " ".join(err.split())
        == f"error (verification_failed): unknown: no release of sha256:{'ab' * 32} in us state: unknown"
    )
    code, out = run(
        monkeypatch, capsys, "release", "verify", "xyz", "--region", "us", "--data-dir", str(data)
    )
    assert (code, out) == (2, "error (invalid_input): digest 'xyz' is not sha256:<64 hex digits>")

    repo = tmp_path / "repo"
    code, out = run(
        monkeypatch,
        capsys,
        "release",
        "publish",
        "--out",
        str(repo),
        "--registry-key",
        str(keys / "registry.key"),
        "--region",
        "us",
        "--data-dir",
        str(data),
    )
    assert (code, out) == (0, f"us: metadata version 1, root version 1, 1 target(s) in {repo / 'us'}")
    assert sorted(p.name for p in (repo / "us" / "metadata").iterdir()) == [
        "1.root.json", "1.snapshot.json", "1.targets.json", "root.json", "timestamp.json",
    ]  # fmt: skip
    targets = json.loads((repo / "us" / "metadata" / "1.targets.json").read_text())
    assert list(targets["signed"]["targets"]) == [f"moderation_rule_set/{digest}"]
    code, out = run(
        monkeypatch,
        capsys,
        "release",
        "publish",
        "--out",
        str(repo),
        "--registry-key",
        str(keys / "board-1.key"),
        "--region",
        "us",
        "--data-dir",
        str(data),
    )
    assert code == 3
    assert out.startswith("error (configuration_error): the registry key board-1+")

    assert (
        run(
            monkeypatch,
            capsys,
            "release",
            "deployed",
            digest,
            "--region",
            "us",
            "--deployer",
            "feed-1",
            "--data-dir",
            str(data),
        )[0]
        == 0
    )
    code, out = run(monkeypatch, capsys, "release", "violations", "--data-dir", str(data))
    assert (code, out) == (0, "no deployment violations")
    assert (
        run(
            monkeypatch,
            capsys,
            "release",
            "deployed",
            "cd" * 32,
            "--region",
            "us",
            "--deployer",
            "feed-2",
            "--data-dir",
            str(data),
        )[0]
        == 0
    )
    code, out, err = run_raw(monkeypatch, capsys, "release", "violations", "--data-dir", str(data), "--json")
    assert code == 1
    assert (
        " ".join(err.split())
        == "error (verification_failed): 1 deployed digest(s) did not match an approved release"
    )
    assert [(v["digest"], v["reason"]) for v in json.loads(out)] == [
        (f"sha256:{'cd' * 32}", "no approved release of this digest in us")
    ]

    # A proposal one signature short is refused with the count.
    payload = tmp_path / "egress.json"
    payload.write_text(json.dumps({
        "region": "us", "fields": ["users.email"], "purpose": "interoperability",
        "destination": "partner.example",
        "not_before": "2026-03-01T00:00:00.000000Z", "not_after": "2026-04-01T00:00:00.000000Z",
    }))  # fmt: skip
    text = tmp_path / "proposal.txt"
    code, out = run(
        monkeypatch, capsys, "proposal", "draft", "--kind", "egress_exception", "--payload", str(payload),
        "--drafter", "user:op-1", "--org", "operator", "--out", str(text), "--data-dir", str(data),
    )  # fmt: skip
    assert code == 0
    proposal_id = re.search(r"drafted proposal (p-[0-9a-f]{16})", out).group(1)  # type: ignore[union-attr]
    code, note, _ = run_raw(
        monkeypatch, capsys, "proposal", "sign", str(text), "--key", str(keys / "board-3.key")
    )
    assert code == 0
    assert note.startswith(text.read_text() + "\n— board-3 ")
    (tmp_path / "signed.txt").write_text(note)
    code, out = run(
        monkeypatch,
        capsys,
        "proposal",
        "add-signature",
        proposal_id,
        str(tmp_path / "signed.txt"),
        "--data-dir",
        str(data),
    )
    assert (code, out) == (0, f"proposal {proposal_id}: signed by board-3 (1 of 2 needed)")
    code, out = run(monkeypatch, capsys, "proposal", "apply", proposal_id, "--data-dir", str(data))
    assert (code, out) == (
        3,
        f"error (permission_denied): proposal {proposal_id} cannot be applied: 1 of 2 board signatures; "
        "1 missing "
        "(signed: board-3; not yet: board-1, board-2) proposal: "
        f"{proposal_id} signed: ['board-3'] missing: 1 threshold: 2",
    )
    code, out = run(
        monkeypatch,
        capsys,
        "proposal",
        "draft",
        "--kind",
        "egress_exception",
        "--payload",
        str(payload),
        "--drafter",
        "user:pe-1",
        "--org",
        "parent",
        "--data-dir",
        str(data),
    )
    assert (code, out) == (
        3,
        "error (permission_denied): user:pe-1 is of org 'parent'; only board members and operator staff "
        "may draft a proposal",
    )


def test_violations_without_a_log_is_refused_not_reported_clean(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out = run(monkeypatch, capsys, "release", "violations", "--data-dir", str(tmp_path))
    assert (code, out) == (
        3,
        f"error (not_found): no log in {tmp_path}; create one with: rempart log init --data-dir {tmp_path}",
    )
    assert not (tmp_path / "log.db").exists()


def test_draft_payload_that_is_not_utf8_is_bad_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    payload = tmp_path / "payload.json"
    payload.write_bytes(b"\xff\xfe{")
    code, out = run(
        monkeypatch, capsys, "proposal", "draft", "--kind", "policy_set", "--payload", str(payload),
        "--drafter", "board-1", "--org", "board", "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert code == 2
    assert out.startswith(f"error (invalid_input): {payload} is not JSON: ")
