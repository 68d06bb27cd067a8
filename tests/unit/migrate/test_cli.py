"""``rempart migrate …`` in-process through the real entry point (exit codes, JSON, tables)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rempart.cli import main
from rempart.log import create_signer
from rempart.tlog.note import Signer
from tests.unit.migrate.conftest import MAPPING, ROWS, write_jsonl
from tests.unit.store.conftest import CONFIG


def rempart(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: object
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["rempart", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "rempart.toml").write_text(CONFIG)
    create_signer(tmp_path / "keys" / "log.key", "test.example/log")
    write_jsonl(tmp_path / "legacy.jsonl", ROWS)
    key = tmp_path / "keys" / "migration.key"
    from rempart.keyfiles import write_secret_file

    write_secret_file(key, (Signer.generate("custodian.example/migration").skey() + "\n").encode())
    text = MAPPING.format(batch=3, kind="jsonl", path="legacy.jsonl").replace(
        'name = "legacy-test"', 'name = "legacy-test"\nkey_file = "keys/migration.key"'
    )
    (tmp_path / "mapping.toml").write_text(text)
    return tmp_path / "rempart.toml", tmp_path / "mapping.toml"


def test_plan_run_status_verify_attest(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, mapping = files
    common = ("--config", config, "--mapping", mapping)
    code, out, _ = rempart(capsys, monkeypatch, "migrate", "plan", *common, "--json")
    assert code == 0
    plan = json.loads(out)
    assert plan["source_rows"] == 10 and plan["planned_rows"] == 10
    assert plan["regions"]["row"]["migrated"] == 3
    # The plan cannot see the duplicate (it is found against the store by the run), so u1's second row counts.
    assert plan["quarantine_reasons"] == {
        "missing_subject_id": 1,
        "undecodable_row": 1,
        "undecodable_value": 1,
        "unknown_region": 1,
    }
    assert plan["fields"] == {
        "contact": {"email": "protected", "phone": "protected", "email_verified": "excepted"}
    }

    code, out, err = rempart(capsys, monkeypatch, "migrate", "status", *common)
    assert code == 3 and err.startswith("error (not_found): run 'legacy-test' has not started")

    code, out, _ = rempart(capsys, monkeypatch, "migrate", "run", *common)
    assert code == 0
    assert "migrated 5 of 10 rows; 5 quarantined" in out

    code, out, _ = rempart(capsys, monkeypatch, "migrate", "status", *common, "--quarantine", "2")
    assert code == 0
    assert "quarantined 1: duplicate_record" in out
    assert "[unknown_region] key 4 (batch 2, region -): column 'country' holds a value" in out
    assert "verification: not run; purge: not done; attestation: none" in out

    code, out, _ = rempart(capsys, monkeypatch, "migrate", "verify", *common, "--json")
    assert code == 0 and json.loads(out)["result"] == "match"

    code, out, err = rempart(capsys, monkeypatch, "migrate", "purge", *common)
    assert code == 2 and err.strip() == "purge deletes legacy rows; run again with --yes to confirm"
    code, out, err = rempart(capsys, monkeypatch, "migrate", "purge", *common, "--yes")
    assert code == 2
    assert err.startswith("error (invalid_input): purge deletes rows from a PostgreSQL table source")

    code, out, _ = rempart(capsys, monkeypatch, "migrate", "attest", *common, "--json")
    assert code == 0
    attested = json.loads(out)
    assert attested["statement"]["totals"]["migrated"] == 5 and attested["statement"]["purge"] is None
    assert attested["note"].startswith("rempart/migration-attestation/v1\n{")


def test_mapping_mistakes_exit_with_their_key_path(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, mapping = files
    mapping.write_text(mapping.read_text().replace('FR = "row"', 'FR = "eu"'))
    code, _, err = rempart(capsys, monkeypatch, "migrate", "run", "--config", config, "--mapping", mapping)
    assert code == 3
    assert (
        err.splitlines()[0]
        == "error (configuration_error): region.map.FR: unknown region 'eu' (the deployment has: row, us)"
    )


def test_check_attestation_names_a_file_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    vkey = Signer.generate("custodian.example/migration").vkey()
    missing = tmp_path / "absent.note"
    code, _, err = rempart(capsys, monkeypatch, "migrate", "check-attestation", missing, "--vkey", vkey)
    assert code == 2
    absent = "No such file or directory"
    assert err.strip() == f"error (invalid_input): cannot read the attestation {missing}: {absent}"
    code, _, err = rempart(
        capsys, monkeypatch, "migrate", "check-attestation", missing, "--vkey", f"@{tmp_path / 'absent.vkey'}"
    )
    assert code == 2
    assert (
        err.strip()
        == f"error (invalid_input): cannot read the --vkey file {tmp_path / 'absent.vkey'}: {absent}"
    )
