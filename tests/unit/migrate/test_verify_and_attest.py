"""Verification from both sides, tampering caught, and the signed attestation in the log."""

from __future__ import annotations

import json
import re

import pytest

from rempart.errors import Conflict, InvalidInput, VerificationFailed
from rempart.events import canonical_json
from rempart.migrate.attest import ATTESTATION_HEADER, attest_run, sign_statement, verify_attestation
from rempart.migrate.verify import merkle_root
from rempart.tlog.merkle import EMPTY_ROOT, leaf_hash, naive_root
from rempart.tlog.note import Signer
from tests.unit.migrate.conftest import MIGRATOR, World

CUSTODIAN_KEY = Signer.generate("custodian.example/migration")


def test_verify_matches_per_region_and_overall(world: World) -> None:
    world.run()
    report = world.verify()
    assert report.matches and report.problems == [] and report.batches == 4
    assert sorted(report.regions) == ["row", "us"]
    assert report.regions["us"]["records"] == 2 and report.regions["row"]["records"] == 3
    for r in report.regions.values():
        assert r["source_root"] == r["destination_root"] and r["match"] is True
    assert report.root["source"] == report.root["destination"]
    event = world.deployment.events("migration.verified")[-1].body
    assert event["result"] == "match" and event["root"] == report.root and event["problem_count"] == 0
    run = world.progress.get_run("legacy-test")
    assert run.verified_at == report.verified_at and (run.verification or {})["result"] == "match"


def test_merkle_root_is_rfc6962_over_leaves_sorted_by_record_key() -> None:
    leaves = [
        (("b", "c", "1"), leaf_hash(b"x")),
        (("a", "c", "1"), leaf_hash(b"y")),
        (("a", "c", "0"), leaf_hash(b"z")),
    ]
    assert merkle_root(leaves) == naive_root([leaf_hash(b"z"), leaf_hash(b"y"), leaf_hash(b"x")]).hex()
    assert merkle_root([]) == EMPTY_ROOT.hex()


def test_a_changed_record_in_the_destination_fails_verification(world: World) -> None:
    world.run()
    # Re-seal u6's record with a value that was not in the source: the store would accept it
    # (it is a valid write), but it is not what was migrated.
    service = world.deployment.service
    rec = service.read("u6", "contact", "main")
    service.write(
        MIGRATOR,
        "u6",
        "contact",
        "main",
        {**rec.fields, "email": "changed@example.com"},
        expected_version=rec.version,
    )
    with pytest.raises(VerificationFailed) as caught:
        world.verify()
    stored = world.progress.get_run("legacy-test").verification or {}
    recorded = world.progress.batches("legacy-test")[2].digest
    first = stored["problems"][0]
    assert re.fullmatch(rf"batch 3: the destination gives digest [0-9a-f]{{64}}, recorded {recorded}", first)
    assert first.split()[6] != recorded + ","
    assert caught.value.message == f"migration 'legacy-test' does not verify: 2 problem(s); first: {first}"
    assert stored["result"] == "mismatch" and stored["mismatched_batches"] == [3]
    assert stored["problems"][1:] == ["us: 1 records differ between source and destination"]
    assert stored["regions"]["us"]["match"] is False and stored["regions"]["row"]["match"] is True
    assert world.progress.get_run("legacy-test").verified_at is None
    assert world.deployment.events("migration.verified")[-1].body["result"] == "mismatch"


def test_a_tampered_ciphertext_and_a_deleted_record_are_caught(world: World) -> None:
    world.run()
    world.deployment.raw_write(
        "row", "UPDATE store_records SET sealed_fields = ? WHERE subject_id = 'u2'", (b"\x02" + bytes(40),)
    )
    world.deployment.raw_write("us", "DELETE FROM store_records WHERE subject_id = 'u6'")
    with pytest.raises(VerificationFailed):
        world.verify()
    problems = (world.progress.get_run("legacy-test").verification or {})["problems"]
    assert (
        "row: a migrated record did not open: integrity check failed for row/contact/main: its sealed "
        "fields, public fields, version or update time were altered in the database, or copied from "
        "another row, subject or region" in problems
    )
    assert "us: 1 migrated records are missing from the destination" in problems
    assert "row: 1 migrated records are missing from the destination" in problems


def test_a_row_changed_in_the_source_after_the_run_is_caught(world: World) -> None:
    world.run()
    path = world.folder / "legacy.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = json.dumps({"user_id": "u2", "country": "FR", "email": "other@example.fr", "verified": "no"})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(VerificationFailed) as caught:
        world.verify()
    assert caught.value.message.startswith("migration 'legacy-test' does not verify: ")
    assert (world.progress.get_run("legacy-test").verification or {})["mismatched_batches"] == [1]


def test_verify_needs_a_finished_run(world: World) -> None:
    world.progress.start_run(
        "legacy-test", mapping_sha256=world.mapping.digest, source={}, batch_size=3, started_at="t"
    )
    with pytest.raises(Conflict) as caught:
        world.verify()
    assert caught.value.message == "run 'legacy-test' is not finished; run it to the end before verifying"


def test_attestation_is_signed_recorded_and_verifiable(world: World) -> None:
    world.run()
    report = world.verify()
    att = attest_run(
        service=world.deployment.service,
        progress=world.progress,
        run_id="legacy-test",
        signer=CUSTODIAN_KEY,
        clock=world.deployment.clock,
        actor=MIGRATOR,
        deployment="test",
    )
    statement = verify_attestation(att.note, CUSTODIAN_KEY.verifier())
    assert statement == dict(att.statement)
    assert att.note.decode().startswith(f"{ATTESTATION_HEADER}\n{canonical_json(statement).decode()}\n\n— ")
    assert statement["regions"]["us"] == {
        "read": 4,
        "migrated": 2,
        "quarantined": 2,
        "records": 2,
        "subjects": 2,
        "root": report.regions["us"]["destination_root"],
    }
    assert statement["regions"]["(unrouted)"] == {
        "read": 3,
        "migrated": 0,
        "quarantined": 3,
        "records": 0,
        "subjects": 0,
    }
    assert statement["totals"] == {"read": 10, "migrated": 5, "quarantined": 5, "records": 5, "subjects": 5}
    assert statement["root"] == report.root["destination"]
    assert statement["quarantine"]["count"] == 5
    assert statement["purge"] is None
    assert statement["source"] == {"kind": "jsonl", "file": "legacy.jsonl", "key": "line"}
    entry = world.deployment.events("migration.attestation")[-1]
    assert entry.body["signed_note"] == att.note.decode()
    assert entry.body["key"] == f"custodian.example/migration+{CUSTODIAN_KEY.key_id:08x}"
    assert att.position.index == world.deployment.storage.size() - 1
    # An auditor with the public key reads the statement back from the log entry alone.
    assert verify_attestation(entry.body["signed_note"], CUSTODIAN_KEY.verifier()) == statement


def test_attestation_refuses_an_unverified_run_and_wrong_keys(world: World) -> None:
    world.run()
    with pytest.raises(Conflict) as caught:
        attest_run(
            service=world.deployment.service,
            progress=world.progress,
            run_id="legacy-test",
            signer=CUSTODIAN_KEY,
            clock=world.deployment.clock,
            actor=MIGRATOR,
            deployment="test",
        )
    assert caught.value.message == (
        "run 'legacy-test' has no successful verification since it finished; "
        "run `rempart migrate verify` first"
    )
    note = sign_statement({"run": "x"}, CUSTODIAN_KEY)
    other = Signer.generate("custodian.example/migration")
    with pytest.raises(VerificationFailed) as bad:
        verify_attestation(note, other.verifier())
    assert bad.value.message.startswith("no signature from a known key")
    forged = note.replace(b'"x"', b'"y"')
    with pytest.raises(VerificationFailed) as altered:
        verify_attestation(forged, CUSTODIAN_KEY.verifier())
    assert altered.value.message == (
        f"Ed25519 signature by custodian.example/migration+{CUSTODIAN_KEY.key_id:08x} does not verify"
    )
    not_canonical = sign_statement({"run": "x"}, CUSTODIAN_KEY).replace(b'{"run":"x"}', b'{"run": "x"}')
    with pytest.raises(VerificationFailed):
        verify_attestation(not_canonical, CUSTODIAN_KEY.verifier())
    from rempart.tlog.note import sign_note

    wrong_header = sign_note('rempart/access-approval/v1\n{"run":"x"}\n', [CUSTODIAN_KEY])
    with pytest.raises(VerificationFailed) as header:
        verify_attestation(wrong_header, CUSTODIAN_KEY.verifier())
    assert (
        header.value.message
        == "the note is a 'rempart/access-approval/v1', not a rempart/migration-attestation/v1"
    )
    spaced = sign_note(f'{ATTESTATION_HEADER}\n{{"run": "x"}}\n', [CUSTODIAN_KEY])
    with pytest.raises(InvalidInput) as form:
        verify_attestation(spaced, CUSTODIAN_KEY.verifier())
    assert form.value.message == "the attestation's statement is not canonical JSON of an object"
