"""The regulator's report from a real deployment's mirror: exact figures, offline page, proofs per finding."""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rempart.audit.mirror import Mirror
from rempart.audit.report import ReportStatistics, render_html, write_report
from rempart.audit.subject_report import MirrorView
from rempart.tlog.proof_file import ProofFile, verify_proof_file
from tests.unit.audit.audit_world import Auditor, Scene, clean_world

GENERATED = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    s = clean_world(tmp_path)
    yield s
    s.world.close()


def _write(scene: Scene, tmp_path: Path) -> tuple[dict[str, object], str]:
    auditor = Auditor(scene, tmp_path / "mirror")
    auditor.sync()
    with Mirror(auditor.state, trust=auditor.trust, clock=scene.world.clock) as mirror:
        files = write_report(MirrorView(mirror), tmp_path / "out", generated=GENERATED, mirror_threshold=1)
    return json.loads(files.json.read_text()), files.html.read_text()


def test_the_figures_are_exactly_the_clean_worlds(scene: Scene, tmp_path: Path) -> None:
    doc, page = _write(scene, tmp_path)
    stats = doc["statistics"]
    assert isinstance(stats, dict)
    assert stats["accesses"] == {
        "decisions": 6,
        "allowed": 5,
        "denied": 1,
        "per_purpose_per_hour": {"customer_support": {"2026-05-04T09": 6}},
        "per_org_per_hour": {"operator": {"2026-05-04T09": 6}},
    }
    approvals = stats["approvals"]
    assert [(a["latency_seconds"], a["approvers"]) for a in approvals["requests"]] == [
        (180, ["custodian:carol"]),  # submitted, approved three minutes later
        (600, ["custodian:carol", "custodian:dan"]),  # the second approval came ten minutes later
    ]
    assert approvals["latency_seconds"] == {"median": 390, "max": 600}
    assert approvals["break_glass_grants"] == 1
    assert stats["denials"]["by_policy"] == {"protected-read-needs-grant": 3, "(no policy: default deny)": 1}
    assert stats["egress"] == {
        "transfers": 1,
        "refused": 0,
        "bytes": stats["egress"]["bytes"],
        "transfers_by_purpose": {"customer_support": 1},
        "transfers_by_destination": {"interop-partners": 1},
        "records_by_purpose": {"customer_support": 2},
    }
    assert doc["ok"] is True and doc["findings"] == []
    assert doc["generated"] == "2026-06-01T12:00:00Z"
    # The page shows the same facts.
    assert "6 access decisions: 5 allowed, 1 denied." in page
    assert "2 approved access requests, median latency 390 s, longest 600 s; 1 break-glass grants." in page
    assert "1 transfers (" in page and "0 refused" in page
    assert html.escape("protected-read-needs-grant") in page
    assert "no violations in" in page


def test_each_finding_links_a_proof_file_that_verifies(scene: Scene, tmp_path: Path) -> None:
    d = scene.world.deployment
    index = scene.record(
        "egress.transfer",
        {
            "region": "us",
            "destination": "parent-analytics",
            "purpose": "interoperability",
            "collection": "contact",
            "fields": ["phone"],
            "count": 1,
            "digest": "00" * 32,
            "bytes": 10,
            "exception": None,
            "requested_by": {"principal": "operator:eve", "org": "operator"},
        },
    )
    doc, page = _write(scene, tmp_path)
    findings = doc["findings"]
    assert isinstance(findings, list)
    assert [(f["invariant"], f["index"]) for f in findings] == [("egress-exception", index)]
    proof = findings[0]["proof"]
    data = (tmp_path / "out" / proof["file"]).read_bytes()
    parsed = ProofFile.parse(data)
    assert list(proof["hashes"]) == [base64.b64encode(h).decode() for h in parsed.proof]
    entry = d.read_path.entry(index)
    assert parsed.extra == entry
    verified = verify_proof_file(
        data,
        origin=d.log_signer.name,
        log=d.log_signer.verifier(),
        witnesses=(scene.witness.verifier(),),
        threshold=1,
        entry=entry,
    )
    assert verified.index == index
    assert proof["leaf_hash"] == hashlib.sha256(b"\x00" + entry).hexdigest()
    assert f'<a href="proofs/{index}.tlog-proof">entry {index}</a>' in page
    assert html.escape(findings[0]["message"]) in page
    assert "1 violation(s) in" in page


def test_an_empty_statistics_page_still_renders() -> None:
    stats = ReportStatistics()
    doc = {
        "format": "rempart/audit-report/v1",
        "generated": "2026-06-01T12:00:00Z",
        "checkpoint_note": "",
        "ok": True,
        "entries": 0,
        "trust_root": {"source": "log", "version_in_force": None},
        "first_time": None,
        "last_time": None,
        "now": None,
        "checkpoint": None,
        "invariants": [],
        "findings": [],
        "statistics": stats.to_json(),
    }
    page = render_html(doc)
    assert "no data" in page and "none" in page


def test_public_names_of_the_replay_report_and_subject_report_modules() -> None:
    from rempart.audit import invariants, report, subject_report

    assert invariants.__all__ == [
        "INVARIANTS", "DecisionEntry", "DecisionField", "Finding", "InvariantReplay", "ReplayObserver",
        "ReplayResult", "Severity", "WitnessStatus", "decode_entry", "replay",
    ]
    assert report.__all__ == [
        "REPORT_FORMAT", "ReportFiles", "ReportStatistics", "build_report", "render_html", "report_document",
        "write_report",
    ]
    assert subject_report.__all__ == [
        "LogView", "MirrorTree", "MirrorView", "ReadPathView", "SubjectEntry", "SubjectReport",
        "SubjectReportBundle", "build_subject_report", "proof_file", "subject_access_report",
        "verify_entry_proof", "write_file",
    ]
