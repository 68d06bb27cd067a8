"""Signed approvals: the exact text, stock-note verification, and every tampering refused."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rempart.access import (
    APPROVAL_HEADER,
    REVIEW_HEADER,
    AccessRequest,
    ApprovalDecision,
    ReviewVerdict,
    Scope,
    approval_text,
    read_statement,
    sign_approval,
    sign_review,
    verify_statement,
)
from rempart.errors import InvalidInput, VerificationFailed
from rempart.events import canonical_json
from rempart.tlog.note import Note, open_note, sign_note
from tests.unit.access.cast import SIGNERS, START, subject

CAROL = SIGNERS["custodian:carol"]
REQUEST = AccessRequest(
    id="req_0123456789abcdef",
    requester="operator:alice",
    requester_org="operator",
    scope=Scope("us", frozenset({"contact"}), frozenset({"contact.email"}), (subject("a"),)),
    purpose="customer_support",
    ticket="SUP-9",
    duration=timedelta(hours=1),
    created_at=START,
)


def test_the_signed_text_is_header_canonical_json_newline() -> None:
    text = approval_text(REQUEST, approver="custodian:carol", decision=ApprovalDecision.APPROVE, time=START)
    header, body, end = text.split("\n")
    assert (header, end) == ("rempart/access-approval/v1", "")
    assert body == canonical_json({
        "approver": "custodian:carol",
        "decision": "approve",
        "request": REQUEST.canonical(),
        "request_digest": REQUEST.digest(),
        "time": "2026-03-02T09:00:00.000000Z",
    }).decode()


def test_a_stock_note_verifier_accepts_it_and_so_does_verify_statement() -> None:
    note = sign_approval(CAROL, REQUEST, approver="custodian:carol",
                         decision=ApprovalDecision.APPROVE, time=START)
    opened = open_note(note, [CAROL.verifier()])
    assert opened.text.startswith("rempart/access-approval/v1\n")
    statement = verify_statement(note, CAROL.verifier(), expect=APPROVAL_HEADER)
    assert (statement.signer, statement.verdict, statement.request, statement.time) == (
        "custodian:carol", "approve", REQUEST, START
    )
    assert statement.request_digest == REQUEST.digest()
    assert statement.note == note.decode()


def test_wrong_key_is_refused() -> None:
    note = sign_approval(SIGNERS["custodian:dan"], REQUEST, approver="custodian:carol",
                         decision=ApprovalDecision.APPROVE, time=START)
    with pytest.raises(VerificationFailed):
        verify_statement(note, CAROL.verifier(), expect=APPROVAL_HEADER)


def test_changed_text_breaks_the_signature() -> None:
    note = sign_approval(CAROL, REQUEST, approver="custodian:carol",
                         decision=ApprovalDecision.APPROVE, time=START).decode()
    forged = note.replace('"decision":"approve"', '"decision":"deny"   ')
    with pytest.raises(VerificationFailed):
        verify_statement(forged, CAROL.verifier(), expect=APPROVAL_HEADER)


def _signed(text: str) -> bytes:
    return sign_note(text, [CAROL])


def _body(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "approver": "custodian:carol", "decision": "approve", "request": REQUEST.canonical(),
        "request_digest": REQUEST.digest(), "time": "2026-03-02T09:00:00.000000Z",
    }
    body.update(changes)
    return body


MALFORMED = [
    ("other header", "rempart/other/v1\n" + canonical_json(_body()).decode() + "\n",
     "signed note header is 'rempart/other/v1', expected 'rempart/access-approval/v1' or "
     "'rempart/break-glass-review/v1'"),
    ("review where an approval is expected",
     REVIEW_HEADER + "\n" + canonical_json(_body()).decode() + "\n",
     "signed note is a 'rempart/break-glass-review/v1', expected a 'rempart/access-approval/v1'"),
    ("not canonical", APPROVAL_HEADER + "\n" + canonical_json(_body()).decode().replace(",", ", ", 1) + "\n",
     "signed statement is not canonical JSON"),
    ("wrong digest", APPROVAL_HEADER + "\n" + canonical_json(_body(request_digest="00" * 32)).decode() + "\n",
     f"request_digest '{'00' * 32}' is not the SHA-256 of the request ({REQUEST.digest()})"),
    ("bad decision", APPROVAL_HEADER + "\n" + canonical_json(_body(decision="maybe")).decode() + "\n",
     "decision 'maybe' is not one of approve, deny"),
    ("extra key", APPROVAL_HEADER + "\n" + canonical_json(_body(comment="ok")).decode() + "\n",
     "signed statement has keys ['approver', 'comment', 'decision', 'request', 'request_digest', 'time'], "
     "expected ['approver', 'decision', 'request', 'request_digest', 'time']"),
    ("time format",
     APPROVAL_HEADER + "\n" + canonical_json(_body(time="2026-03-02T09:00:00Z")).decode() + "\n",
     "time '2026-03-02T09:00:00Z' is not in the log's time format (UTC, microseconds, Z)"),
]


@pytest.mark.parametrize(("name", "text", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_statements_are_refused(name: str, text: str, message: str) -> None:
    note = _signed(text)
    with pytest.raises(InvalidInput) as caught:
        verify_statement(note, CAROL.verifier(), expect=APPROVAL_HEADER)
    assert str(caught.value) == message


def test_review_notes() -> None:
    note = sign_review(
        CAROL, REQUEST, reviewer="custodian:carol", verdict=ReviewVerdict.REJECTED, time=START
    )
    claimed = read_statement(note, expect=REVIEW_HEADER)
    assert (claimed.signer, claimed.verdict, claimed.is_review) == ("custodian:carol", "rejected", True)
    assert Note.parse(note).text.startswith("rempart/break-glass-review/v1\n")
    assert verify_statement(note, CAROL.verifier(), expect=REVIEW_HEADER).verdict == "rejected"
