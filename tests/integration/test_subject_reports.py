"""Per-user reports over the real server: support issues a subject token; the subject fetches
"who accessed my data", and every line's C2SP tlog-proof checks offline with the log's key."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

import rempart
from rempart.client import my_access_report
from rempart.demo import DemoFiles
from rempart.errors import PermissionDenied, Unauthenticated
from rempart.events import Event
from rempart.tlog.note import Verifier
from rempart.tlog.proof_file import ProofFile, verify_proof_file
from tests.unit.api.harness import rempart_server

ORIGIN = "rempart.local/log"


def test_support_issues_a_subject_token_and_the_subject_checks_every_access(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with rempart_server(data) as server:
        tokens = server.tokens
        with (
            rempart.Client(server.url, tokens["operator:alice"]) as alice,
            rempart.Client(server.url, tokens["parent:bob"]) as bob,
        ):
            public = alice.get_record(
                "us-0001", "profile", "main", purpose="customer_support", fields=["handle"]
            )
            assert "handle" in public.fields
            with pytest.raises(PermissionDenied):
                bob.get_record("us-0001", "contact", "main", purpose="customer_support")
            with pytest.raises(PermissionDenied, match="support staff and the custodian"):
                bob.issue_subject_token("us-0001")
            issued = alice.issue_subject_token("us-0001", lifetime=timedelta(hours=1))
            assert issued["token"].startswith("rps_")
            by_support = alice.subject_access_report("us-0001")

        report = my_access_report(server.url, issued["token"])
        assert report["commitment"] == by_support["commitment"]
        decisions = [e for e in report["entries"] if e["type"] == "access.decision"]
        assert {(e["principal"], e["decision"]) for e in decisions} >= {
            ("operator:alice", "allowed"),
            ("parent:bob", "denied"),
        }
        log_key = Verifier.parse(DemoFiles(data).log_vkey.read_text().strip())
        for line in report["entries"]:
            proof = base64.b64decode(line["proof"])
            entry = ProofFile.parse(proof)
            verified = verify_proof_file(
                proof,
                leaf_hash=bytes.fromhex(line["leaf_hash"]),
                origin=ORIGIN,
                log=log_key,
                witnesses=(),
                threshold=0,
            )
            assert verified.index == line["index"] == entry.index
        # The subject appears in the log only as its commitment.
        checkpoint = httpx.get(f"{server.url}/log/checkpoint").text
        assert "us-0001" not in checkpoint

        with pytest.raises(Unauthenticated, match="malformed"):
            my_access_report(server.url, tokens["operator:alice"])  # a principal token is not one
        with pytest.raises(Unauthenticated, match="unknown subject token"):
            my_access_report(server.url, issued["token"][:-4] + "AAAA")

    issued_events = [
        Event.decode(e)
        for e in _log_entries(data)
        if b"access.subject_token.issued" in e
    ]
    assert [e.body["issued_by"] for e in issued_events] == ["operator:alice"]
    assert issued_events[0].body["subject"] == by_support["commitment"]


def _log_entries(data: Path) -> list[bytes]:
    with rempart.open(data) as r:
        log = r.deployment.log
        return log.storage.read_entries(0, log.size)
