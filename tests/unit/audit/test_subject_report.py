"""Per-subject reports from a real deployment: every line about the subject, each with a proof."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rempart.audit.mirror import Mirror
from rempart.audit.subject_report import (
    MirrorView,
    ReadPathView,
    SubjectEntry,
    SubjectReport,
    SubjectReportBundle,
    build_subject_report,
    subject_access_report,
    verify_entry_proof,
)
from rempart.errors import InvalidInput, VerificationFailed
from rempart.events import Event
from rempart.tlog.checkpoint import Checkpoint, sign_checkpoint
from rempart.tlog.note import Signer
from rempart.tlog.proof_file import ProofFile
from tests.unit.audit.audit_world import Auditor, Scene, clean_world


@pytest.fixture
def mirrored(tmp_path: Path) -> Iterator[tuple[Scene, Auditor]]:
    scene = clean_world(tmp_path)
    auditor = Auditor(scene, tmp_path / "mirror")
    auditor.sync()
    yield scene, auditor
    scene.world.close()


def _lines(report: object) -> list[tuple[str, str | None, str | None, str | None, tuple[str, ...]]]:
    return [(e.kind, e.principal, e.purpose, e.decision, e.fields_allowed) for e in report.entries]  # type: ignore[attr-defined]


def test_the_report_lists_every_entry_about_the_subject_and_nothing_else(
    mirrored: tuple[Scene, Auditor],
) -> None:
    scene, auditor = mirrored
    with Mirror(auditor.state, trust=auditor.trust, clock=scene.world.clock) as mirror:
        report = subject_access_report(mirror.entries(), scene.world.commitment("u1"))
        size = mirror.size
    assert report.scanned == size
    assert _lines(report) == [
        ("created", "operator:svc-ingest", None, None, ()),
        (
            "access request",
            "operator:alice",
            "customer_support",
            None,
            ("contact.email", "contact.email_verified"),
        ),
        ("access", "operator:alice", "customer_support", "partly allowed", ("email", "email_verified")),
        ("access", "operator:olga", "customer_support", "allowed", ("phone",)),
        ("access", "operator:eve", "customer_support", "denied", ()),
        ("access", "operator:eve", "customer_support", "allowed", ("handle",)),
        ("break-glass", "operator:eve", "customer_support", None, ("contact.postal_address",)),
        ("access", "operator:eve", "customer_support", "allowed", ("postal_address",)),
    ]
    assert report.accesses[0].fields_denied == ("phone", "postal_address")  # masked: outside the grant
    denied = report.accesses[2]
    assert denied.fields_denied == ("email", "phone", "postal_address", "email_verified")
    assert denied.reasons == (
        "reading, erasing or relocating protected data needs an approved access grant, and none applies",
        "no policy permits read on us/contact/email_verified by operator:eve for purpose 'customer_support'",
    )
    assert report.accesses[3].break_glass is False and report.accesses[4].break_glass is True
    assert report.accesses[0].summary == (
        "operator:alice (operator) asked to read contact for customer_support: partly allowed "
        "(email, email_verified)"
    )
    other = subject_access_report([(0, Event.decode(_entry(mirrored)).encode())], "ab" * 32)
    assert other.entries == ()


def _entry(mirrored: tuple[Scene, Auditor]) -> bytes:
    return mirrored[0].world.deployment.read_path.entry(0)


def test_every_line_carries_a_proof_that_verifies_offline_against_the_witnessed_checkpoint(
    mirrored: tuple[Scene, Auditor], tmp_path: Path
) -> None:
    scene, auditor = mirrored
    key = scene.world.deployment.records.commitment_key("u1")
    with Mirror(auditor.state, trust=auditor.trust, clock=scene.world.clock) as mirror:
        bundle = build_subject_report(mirror, key, "u1")
    assert len(bundle.report.entries) == 8
    witness = scene.witness.verifier()
    log = scene.world.deployment.log_signer.verifier()
    for line in bundle.report.entries:
        verified, entry = verify_entry_proof(
            bundle.proofs[line.index], origin=log.name, log=log, witnesses=(witness,), threshold=1
        )
        assert verified.index == line.index
        assert entry == scene.world.deployment.read_path.entry(line.index)
        assert [c.name for c in verified.cosignatures] == ["witness.example-w1"]
    written = bundle.write(tmp_path / "report")
    assert written[0].name == "subject-report.json"
    doc = json.loads((tmp_path / "report" / "subject-report.json").read_text())
    assert doc["commitment"] == scene.world.commitment("u1")
    assert doc["accesses"] == 5
    first = doc["entries"][0]
    on_disk = (tmp_path / "report" / first["proof_file"]).read_bytes()
    assert base64.b64decode(first["proof"]) == on_disk
    assert (tmp_path / "report" / "entries" / f"{first['index']}.json").read_bytes() == bundle.entries[
        first["index"]
    ]
    page = (tmp_path / "report" / "subject-report.html").read_text()
    assert "<script" not in page and "http" not in page.replace("https://w1.example/", "")
    assert f'href="proofs/{first["index"]}.tlog-proof"' in page


def test_a_changed_entry_or_a_wrong_key_fails_the_proof(mirrored: tuple[Scene, Auditor]) -> None:
    scene, auditor = mirrored
    key = scene.world.deployment.records.commitment_key("u1")
    with Mirror(auditor.state, trust=auditor.trust, clock=scene.world.clock) as mirror:
        bundle = build_subject_report(mirror, key, "u1")
    log = scene.world.deployment.log_signer.verifier()
    index = bundle.report.accesses[0].index
    proof = ProofFile.parse(bundle.proofs[index])
    forged = ProofFile(proof.index, proof.proof, proof.checkpoint, proof.extra.replace(b"alice", b"alicf"))  # type: ignore[union-attr]
    with pytest.raises(VerificationFailed):
        verify_entry_proof(forged.to_bytes(), origin=log.name, log=log)
    with pytest.raises(VerificationFailed):
        verify_entry_proof(bundle.proofs[index], origin=log.name, log=Signer.generate(log.name).verifier())
    bare = ProofFile(proof.index, proof.proof, proof.checkpoint).to_bytes()
    with pytest.raises(InvalidInput) as caught:
        verify_entry_proof(bare, origin=log.name, log=log)
    assert caught.value.message == (
        "the proof file carries no entry in its extra line; give the entry file too"
    )
    verified, _ = verify_entry_proof(bare, origin=log.name, log=log, entry=bundle.entries[index])
    assert verified.index == index


def test_the_operators_read_path_gives_the_same_report_with_its_own_proofs(
    mirrored: tuple[Scene, Auditor],
) -> None:
    scene, auditor = mirrored
    d = scene.world.deployment
    key = d.records.commitment_key("u2")
    served = build_subject_report(d.read_path, key, "u2")
    with Mirror(auditor.state, trust=auditor.trust, clock=scene.world.clock) as mirror:
        mine = build_subject_report(MirrorView(mirror), key, "u2")
    assert served.report == mine.report
    assert [e.principal for e in served.report.accesses] == ["operator:olga"]
    log = d.log_signer.verifier()
    for index, proof in served.proofs.items():
        verify_entry_proof(proof, origin=log.name, log=log, entry=d.read_path.entry(index))
    assert ReadPathView(d.read_path).size() == served.tree_size


def test_a_commitment_key_and_id_are_checked() -> None:
    with pytest.raises(InvalidInput) as caught:
        subject_access_report([], "XYZ")
    assert caught.value.message == "a subject commitment is 64 lowercase hex digits"


def test_an_altered_mirror_database_is_refused(mirrored: tuple[Scene, Auditor]) -> None:
    scene, auditor = mirrored
    with Mirror(auditor.state, trust=auditor.trust, clock=scene.world.clock) as mirror:
        entries = [data for _, data in mirror.entries(0, 256)]
        entries[3] = b'{"tampered":1}'
        bundle = b"".join(len(e).to_bytes(2, "big") + e for e in entries)
        with mirror.database.transaction() as tx:
            tx.execute("UPDATE mirror_bundles SET codec = 'none', data = ? WHERE tile = 0", (bundle,))
        view = MirrorView(mirror)
        with pytest.raises(VerificationFailed) as caught:
            view.inclusion_proof(0)
    assert "the mirror's database was altered" in caught.value.message


def test_the_page_escapes_what_the_log_says_even_when_it_looks_like_a_link(tmp_path: Path) -> None:
    """A hostile log names a principal ``<a href=…>``: the subject's page shows it as text."""
    log = Signer.generate("example.com/log")
    note = sign_checkpoint(Checkpoint("example.com/log", 1, bytes(32)), [log])
    hostile = '<a href="javascript:alert(1)">x</a>'
    line = SubjectEntry(
        index=0,
        time="2026-05-04T09:00:00.000000Z",
        kind="access",
        type="access.decision",
        principal=hostile,
        summary=hostile,
    )
    bundle = SubjectReportBundle(SubjectReport("ab" * 32, (line,), 1), note, {0: b"proof"}, {0: b"entry"})
    bundle.write(tmp_path / "report")
    page = (tmp_path / "report" / "subject-report.html").read_text()
    assert hostile not in page
    assert page.count(f"<td>{html.escape(hostile)}</td>") == 2
    assert '<td><a href="proofs/0.tlog-proof">proof</a></td>' in page


@pytest.mark.parametrize(
    ("key", "subject", "message"),
    [
        (b"short", "u1", "the subject commitment key is at least 16 bytes"),
        (b"k" * 32, "", "the subject id is a non-empty string"),
    ],
)
def test_the_subjects_key_and_id_are_checked_before_anything_is_read(
    mirrored: tuple[Scene, Auditor], key: bytes, subject: str, message: str
) -> None:
    scene, _ = mirrored
    with pytest.raises(InvalidInput) as caught:
        build_subject_report(scene.world.deployment.read_path, key, subject)
    assert caught.value.message == message
