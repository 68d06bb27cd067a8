"""Access requests over HTTP: file, list, read, signed approvals and denials, withdraw, revoke,
break-glass and reviews; and every way a signed note is refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rempart import Client
from rempart.access import ApprovalDecision, sign_approval
from rempart.cli._connect import load_signer
from rempart.clock import SystemClock
from rempart.errors import Conflict, InvalidInput, NotFound, PermissionDenied, VerificationFailed
from rempart.tlog.note import Signer
from tests.unit.api.harness import RunningServer, rempart_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with rempart_server(tmp_path_factory.mktemp("access") / "data") as running:
        yield running


def api(server: RunningServer, principal: str) -> Client:
    return Client(server.url, server.tokens[principal])


def file_request(server: RunningServer, requester: str = "operator:alice", subject: str = "us-0001") -> str:
    with api(server, requester) as me:
        info = me.request_access(
            region="us",
            fields=["contact.email"],
            subjects=[subject],
            purpose="customer_support",
            ticket="SUP-1",
            duration_seconds=1800,
        )
    assert (info.state, info.current_state, info.record.required_approvals) == ("pending", "pending", 1)
    return info.id


def test_a_request_is_approved_by_a_custodian_signature(server: RunningServer) -> None:
    request_id = file_request(server)
    with api(server, "custodian:carol") as carol:
        info = carol.approve(request_id, load_signer(server.key("custodian:carol")))
    assert (info.state, info.record.counted_approvers) == ("active", ("custodian:carol",))
    approval = info.record.approvals[0]
    assert (approval.decision, approval.counted, approval.reasons) == (ApprovalDecision.APPROVE, True, ())
    assert approval.note.startswith("rempart/access-approval/v1\n")
    with api(server, "operator:alice") as alice:
        assert alice.get_access_request(request_id).state == "active"


def test_a_denial_is_a_signed_note_too(server: RunningServer) -> None:
    request_id = file_request(server)
    with api(server, "custodian:dan") as dan:
        info = dan.approve(request_id, load_signer(server.key("custodian:dan")), decision="deny")
    assert (info.state, info.record.approvals[0].decision) == ("denied", ApprovalDecision.DENY)
    with api(server, "custodian:carol") as carol, pytest.raises(Conflict):
        carol.approve(request_id, load_signer(server.key("custodian:carol")))


def test_a_note_signed_with_another_principals_key_is_refused(server: RunningServer) -> None:
    request_id = file_request(server)
    with api(server, "custodian:carol") as carol:
        request = carol.get_access_request(request_id).record.request
        # carol's name, dan's key: the signature does not verify with carol's registered key
        forged = sign_approval(
            _renamed(load_signer(server.key("custodian:dan")), "custodian:carol"),
            request,
            approver="custodian:carol",
            decision=ApprovalDecision.APPROVE,
            time=SystemClock().now(),
        )
        with pytest.raises(VerificationFailed) as bad:
            carol.submit_approval(request_id, forged)
        assert bad.value.message.startswith("no signature")
        # dan's genuine note, posted with carol's token: only the signer posts their own notes
        genuine = sign_approval(
            load_signer(server.key("custodian:dan")),
            request,
            approver="custodian:dan",
            decision=ApprovalDecision.APPROVE,
            time=SystemClock().now(),
        )
        with pytest.raises(PermissionDenied) as relayed:
            carol.submit_approval(request_id, genuine)
        assert relayed.value.message == (
            "the note is signed as custodian:dan, but you are custodian:carol: "
            "post only notes you signed with your own key"
        )
        assert carol.get_access_request(request_id).state == "pending"


def _renamed(signer: Signer, name: str) -> Signer:
    """The same private key under another name: what someone holding dan's key signs as carol with."""
    return Signer(name, signer._key)


def test_a_malformed_note_is_refused_as_invalid_input(server: RunningServer) -> None:
    request_id = file_request(server)
    with api(server, "operator:eve") as eve, pytest.raises(InvalidInput):
        eve.submit_approval(request_id, "not a signed note")


def test_listing_shows_your_own_requests_and_oversight_sees_all(server: RunningServer) -> None:
    mine = file_request(server, "operator:eve", "us-0003")
    with api(server, "operator:eve") as eve:
        own = eve.list_access_requests()
        assert {r.record.request.requester for r in own} == {"operator:eve"}
        assert mine in {r.id for r in own}
        with pytest.raises(PermissionDenied):
            eve.list_access_requests(requester="operator:alice")
    with api(server, "operator:alice") as alice, pytest.raises(NotFound):
        alice.get_access_request(mine)
    with api(server, "auditor:judy") as judy:
        everyone = {r.record.request.requester for r in judy.list_access_requests(limit=1000)}
        assert {"operator:eve", "operator:alice"} <= everyone
        pending = judy.list_access_requests(state="pending")
        assert all(r.state == "pending" for r in pending) and mine in {r.id for r in pending}
        with pytest.raises(InvalidInput):
            judy.list_access_requests(state="sleeping")


def test_withdraw_and_revoke(server: RunningServer) -> None:
    first = file_request(server)
    with api(server, "operator:alice") as alice:
        assert alice.withdraw(first).state == "withdrawn"
    second = file_request(server)
    with api(server, "custodian:carol") as carol:
        carol.approve(second, load_signer(server.key("custodian:carol")))
        revoked = carol.revoke(second, reason="ticket closed")
    assert (revoked.state, revoked.record.ended_by, revoked.record.end_reason) == (
        "revoked",
        "custodian:carol",
        "ticket closed",
    )


def test_break_glass_opens_at_once_and_is_reviewed(server: RunningServer) -> None:
    with api(server, "operator:alice") as alice:
        opened = alice.break_glass(
            region="us",
            fields=["contact.phone"],
            subjects=["us-0002"],
            purpose="security_incident",
            ticket="INC-9",
            duration_seconds=900,
        )
        assert (opened.state, opened.record.request.break_glass) == ("active", True)
        read = alice.get_record("us-0002", "contact", "main", purpose="security_incident", fields=["phone"])
        assert dict(read.fields) == {"phone": "+1 305 555 0199"}
    with api(server, "custodian:carol") as carol:
        reviewed = carol.review(opened.id, load_signer(server.key("custodian:carol")))
    assert [(r.reviewer, r.verdict.value, r.counted) for r in reviewed.record.reviews] == [
        ("custodian:carol", "upheld", True)
    ]


def test_the_parent_cannot_ask(server: RunningServer) -> None:
    with api(server, "parent:bob") as bob, pytest.raises(PermissionDenied) as denied:
        bob.request_access(
            region="us",
            fields=["contact.email"],
            subjects=["us-0001"],
            purpose="customer_support",
            ticket="X-1",
            duration_seconds=600,
        )
    assert denied.value.message == (
        "parent:bob may not request access: principals of the foreign parent cannot request access "
        "or open break-glass grants"
    )
