r"""Signed approvals and break-glass reviews: C2SP signed notes over the exact request.

An approval is a signed note whose text is::

    rempart/access-approval/v1
    {"approver":"custodian:carol","decision":"approve","request":{…},"request_digest":"…","time":"…"}

(the header line, the canonical JSON of the statement, a newline), signed
with the approver's Ed25519 note key. ``request`` is the request's canonical
JSON object and ``request_digest`` the hex SHA-256 of its canonical bytes, so
the signature covers the exact request. A break-glass review is the same
with the header ``rempart/break-glass-review/v1``, ``reviewer`` and
``verdict`` (``upheld`` or ``rejected``). Anyone holding the approvers'
public keys re-verifies them with a stock note verifier: see docs/approvers.md.

Who counts as a custodian approver sits behind :class:`ApproverRoster`;
:class:`PrincipalRoster` reads it from the principals table (org custodian,
role approver, a registered key); a deployment uses
:class:`rempart.deployment.RosterInForce`, which reads the trust root in force
and falls back on this one before the first trust root is installed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from rempart.access.model import AccessRequest, ApprovalDecision, ReviewVerdict
from rempart.access.principals import PrincipalStore
from rempart.clock import format_time, parse_time
from rempart.errors import InvalidInput
from rempart.events import canonical_json
from rempart.tlog.note import Note, NoteSigner, NoteVerifier, Verifier, open_note, sign_note

__all__ = [
    "APPROVAL_HEADER",
    "REVIEW_HEADER",
    "ApproverRoster",
    "PrincipalRoster",
    "RosterEntry",
    "SignedStatement",
    "approval_text",
    "read_statement",
    "review_text",
    "sign_approval",
    "sign_review",
    "verify_statement",
]

APPROVAL_HEADER: Final = "rempart/access-approval/v1"
REVIEW_HEADER: Final = "rempart/break-glass-review/v1"

_KINDS: Final = {
    APPROVAL_HEADER: ("approver", "decision", frozenset(d.value for d in ApprovalDecision)),
    REVIEW_HEADER: ("reviewer", "verdict", frozenset(v.value for v in ReviewVerdict)),
}


def _text(header: str, request: AccessRequest, who: str, signer_key: str, verdict_key: str,
          verdict: str, time: datetime) -> str:
    body = {
        "request": request.canonical(),
        "request_digest": request.digest(),
        signer_key: who,
        verdict_key: verdict,
        "time": format_time(time),
    }
    return f"{header}\n{canonical_json(body).decode('utf-8')}\n"


def approval_text(
    request: AccessRequest, *, approver: str, decision: ApprovalDecision, time: datetime
) -> str:
    """The exact text an approver signs to approve or deny ``request``."""
    return _text(APPROVAL_HEADER, request, approver, "approver", "decision",
                 ApprovalDecision(decision).value, time)


def review_text(
    request: AccessRequest, *, reviewer: str, verdict: ReviewVerdict, time: datetime
) -> str:
    """The exact text a custodian approver signs to review a break-glass grant."""
    return _text(REVIEW_HEADER, request, reviewer, "reviewer", "verdict",
                 ReviewVerdict(verdict).value, time)


def sign_approval(
    signer: NoteSigner,
    request: AccessRequest,
    *,
    approver: str,
    decision: ApprovalDecision,
    time: datetime,
) -> bytes:
    """The approver's side: a signed note approving (or denying) ``request``."""
    return sign_note(approval_text(request, approver=approver, decision=decision, time=time), [signer])


def sign_review(
    signer: NoteSigner,
    request: AccessRequest,
    *,
    reviewer: str,
    verdict: ReviewVerdict,
    time: datetime,
) -> bytes:
    """The reviewer's side: a signed note upholding or rejecting a break-glass grant."""
    return sign_note(review_text(request, reviewer=reviewer, verdict=verdict, time=time), [signer])


@dataclass(frozen=True, slots=True)
class SignedStatement:
    """The content of an approval or review note (trusted only once :func:`verify_statement` returned it)."""

    header: str
    request: AccessRequest
    request_digest: str
    signer: str
    verdict: str
    time: datetime
    note: str

    @property
    def is_review(self) -> bool:
        return self.header == REVIEW_HEADER


def _parse_text(text: str, note: str, expect: str) -> SignedStatement:
    header, _newline, rest = text.partition("\n")
    if header not in _KINDS:
        raise InvalidInput(
            f"signed note header is {header[:60]!r}, expected {APPROVAL_HEADER!r} or {REVIEW_HEADER!r}"
        )
    if header != expect:
        raise InvalidInput(f"signed note is a {header!r}, expected a {expect!r}")
    if not rest.endswith("\n") or "\n" in rest[:-1]:
        raise InvalidInput("signed note text is the header line and one line of JSON")
    raw = rest[:-1]
    try:
        body: Any = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"signed statement is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidInput("signed statement is not a JSON object")
    signer_key, verdict_key, verdicts = _KINDS[header]
    expected_keys = {"request", "request_digest", signer_key, verdict_key, "time"}
    if set(body) != expected_keys:
        raise InvalidInput(f"signed statement has keys {sorted(body)}, expected {sorted(expected_keys)}")
    if canonical_json(body).decode("utf-8") != raw:
        raise InvalidInput("signed statement is not canonical JSON")
    request = AccessRequest.from_canonical(body["request"])
    digest = hashlib.sha256(canonical_json(body["request"])).hexdigest()
    if body["request_digest"] != digest:
        raise InvalidInput(
            f"request_digest {str(body['request_digest'])[:64]!r} is not the SHA-256 "
            f"of the request ({digest})"
        )
    signer, verdict, when = body[signer_key], body[verdict_key], body["time"]
    if not isinstance(signer, str) or not signer:
        raise InvalidInput(f"{signer_key} must be a principal id")
    if verdict not in verdicts:
        raise InvalidInput(f"{verdict_key} {verdict!r} is not one of {', '.join(sorted(verdicts))}")
    if not isinstance(when, str):
        raise InvalidInput("time must be an RFC 3339 string")
    try:
        time = parse_time(when)
    except ValueError as exc:
        raise InvalidInput(f"time {when!r} is not RFC 3339: {exc}") from exc
    if format_time(time) != when:
        raise InvalidInput(f"time {when!r} is not in the log's time format (UTC, microseconds, Z)")
    return SignedStatement(header, request, digest, signer, verdict, time, note)


def read_statement(note: bytes | str, *, expect: str) -> SignedStatement:
    """Parse a signed approval or review note WITHOUT verifying it: to learn who claims to sign.

    Nothing in the result may be trusted until :func:`verify_statement` checks
    the signature.
    """
    parsed = Note.parse(note)
    return _parse_text(parsed.text, parsed.to_bytes().decode("utf-8"), expect)


def verify_statement(note: bytes | str, verifier: NoteVerifier, *, expect: str) -> SignedStatement:
    """Verify a signed approval or review with the signer's key; VerificationFailed if it does not verify.

    The signer named inside must be the owner of ``verifier`` (the caller
    looks the key up by that name), and the statement must be well formed.
    """
    opened = open_note(note, [verifier])
    return _parse_text(opened.text, Note.parse(note).to_bytes().decode("utf-8"), expect)


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """A custodian approver in force now: their principal id and their note verifier key."""

    principal_id: str
    verifier: Verifier


class ApproverRoster(Protocol):
    """Who the custodian approvers are now, and their keys (principals table or trust root)."""

    def lookup(self, principal_id: str) -> RosterEntry | None:
        """The approver with this id, or None if they are not a custodian approver now."""
        ...


class PrincipalRoster:
    """The default roster: enabled principals of org ``custodian`` with role ``approver`` and a key."""

    def __init__(self, principals: PrincipalStore) -> None:
        self.principals = principals

    def lookup(self, principal_id: str) -> RosterEntry | None:
        principal = self.principals.find(principal_id)
        if (
            principal is None
            or principal.disabled
            or principal.org != "custodian"
            or "approver" not in principal.roles
        ):
            return None
        verifier = principal.verifier()
        return None if verifier is None else RosterEntry(principal.id, verifier)

    def approvers(self) -> list[RosterEntry]:
        """Every custodian approver in force now."""
        entries = (self.lookup(p.id) for p in self.principals.list(org="custodian", include_disabled=False))
        return [e for e in entries if e is not None]

