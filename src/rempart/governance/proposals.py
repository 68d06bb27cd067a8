r"""Board proposals: drafted, signed by board members over the exact bytes, applied at threshold.

A proposal is a signed-note text ``rempart/proposal/v1\n<canonical JSON>\n``.
Board members sign that text (a stock note signer does); once the signatures
of distinct board members of the trust root *in force* reach its board
threshold, the proposal may be applied, which calls the :class:`ProposalApplier`
registered for its kind. Governance never imports the store or the policy
engine: those rooms register appliers.

Every step is a log event, durable before the call returns (fail closed):
``governance.proposal.drafted``, ``.signed``, ``.applied``, ``.apply_refused``,
``.expired`` (see docs/events.md).

What a crash at each step of :meth:`ProposalService.apply` leaves behind:

1. before the ``approved`` commit: nothing changed; apply again.
2. after it (status ``approved``, ``applied`` event durable), before the
   applier ran or finished: :meth:`ProposalService.apply` on an approved
   proposal runs the (idempotent) applier again, and so does :meth:`resume`.
3. after the applier, before status ``applied``: same as 2; appliers are
   idempotent, so the second run changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from rempart.clock import format_time, parse_time
from rempart.db import Database
from rempart.errors import (
    ConfigurationError,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RempartError,
    VerificationFailed,
)
from rempart.events import Event, EventRecorder, canonical_json
from rempart.governance._notes import key_label, sign_or_extend
from rempart.governance.schema import migrate
from rempart.governance.trustroot import Member, TrustRoot, TrustRootSource
from rempart.tlog.note import Note, NoteSignature, NoteSigner

__all__ = [
    "DRAFTER_ORGS",
    "PROPOSAL_HEADER",
    "Drafter",
    "Proposal",
    "ProposalApplier",
    "ProposalKind",
    "ProposalRecord",
    "ProposalService",
    "ProposalStatus",
    "parse_proposal_text",
    "sign_proposal",
    "validate_payload",
]

PROPOSAL_HEADER = "rempart/proposal/v1"
DRAFTER_ORGS = frozenset({"board", "operator"})
_CATEGORIES = frozenset({"protected", "excepted", "public"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}\Z")
_FIELD = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\Z")
_ID = re.compile(r"^p-[0-9a-f]{16}\Z")


class ProposalKind(StrEnum):
    POLICY_SET = "policy_set"
    CATALOG_CLASSIFICATION = "catalog_classification"
    APPROVER_ROSTER = "approver_roster"
    TRUST_ROOT = "trust_root"
    REGION_EGRESS_RULES = "region_egress_rules"
    EGRESS_EXCEPTION = "egress_exception"


class ProposalStatus(StrEnum):
    DRAFTED = "drafted"
    APPROVED = "approved"  # threshold met and recorded; the applier has not finished yet
    APPLIED = "applied"
    EXPIRED = "expired"


class Drafter(Protocol):
    """Who drafts: an authenticated principal of org ``board`` or ``operator``."""

    @property
    def id(self) -> str: ...

    @property
    def org(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposal as drafted; ``text`` is the exact note text board members sign."""

    id: str
    kind: ProposalKind
    payload: Mapping[str, Any]
    deployment: str
    drafted_by: str
    drafted: datetime
    expires: datetime
    trust_root_version: int
    text: str

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of the signed text: what a signature is over."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ProposalRecord:
    """A proposal and where it stands: status, who signed, what applying did."""

    proposal: Proposal
    status: ProposalStatus
    signers: tuple[str, ...]
    closed: datetime | None
    result: str | None


class ProposalApplier(Protocol):
    """What another room registers to make an approved proposal of one kind take effect.

    ``check`` raises (InvalidInput, VerificationFailed, …) if the payload cannot
    be applied now, changing nothing. ``apply`` must be idempotent: after a
    crash it may run again for the same proposal. It returns a short result
    for the log (e.g. "trust root version 2 installed").
    """

    def check(self, proposal: Proposal) -> None: ...

    def apply(self, proposal: Proposal, *, now: datetime) -> str: ...


# -- payloads ------------------------------------------------------------------


def _obj(value: Any, what: str, keys: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{what}: expected an object")
    unknown, absent = sorted(set(value) - keys), sorted(keys - set(value))
    if unknown:
        raise InvalidInput(f"{what}: unknown field(s) {', '.join(unknown)}")
    if absent:
        raise InvalidInput(f"{what}: missing field(s) {', '.join(absent)}")
    return value


def _str(value: Any, what: str, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what}: expected a non-empty string")
    if pattern is not None and not pattern.fullmatch(value):
        raise InvalidInput(f"{what}: {value[:80]!r} does not match {pattern.pattern}")
    return value


def _when(value: Any, what: str) -> datetime:
    text = _str(value, what)
    try:
        when = parse_time(text)
    except ValueError as exc:
        raise InvalidInput(f"{what}: {text!r} is not an RFC 3339 time") from exc
    if format_time(when) != text:
        raise InvalidInput(f"{what}: write it as {format_time(when)!r}")
    return when


def _region(value: Any, what: str, root: TrustRoot) -> str:
    region = _str(value, what)
    if region not in root.regions:
        raise InvalidInput(
            f"{what}: region {region!r} is not in trust root version {root.version} "
            f"(regions: {', '.join(root.regions)})"
        )
    return region


def validate_payload(kind: ProposalKind, payload: Any, root: TrustRoot) -> None:
    """Refuse a payload that cannot mean what its kind says, naming the field."""
    what = f"{kind.value} payload"
    if kind is ProposalKind.POLICY_SET:
        _str(_obj(payload, what, {"policies"})["policies"], f"{what}.policies")
    elif kind is ProposalKind.CATALOG_CLASSIFICATION:
        fields = _obj(payload, what, {"fields"})["fields"]
        if not isinstance(fields, Mapping) or not fields:
            raise InvalidInput(f"{what}.fields: expected a non-empty object collection.field → class")
        for name, spec in fields.items():
            _str(name, f"{what}.fields key", _FIELD)
            entry = _obj(spec, f"{what}.fields[{name!r}]", {"category", "purposes"})
            if entry["category"] not in _CATEGORIES:
                raise InvalidInput(
                    f"{what}.fields[{name!r}].category: {entry['category']!r} is not one of "
                    f"{', '.join(sorted(_CATEGORIES))}"
                )
            purposes = entry["purposes"]
            if not isinstance(purposes, list) or not all(isinstance(p, str) and p for p in purposes):
                raise InvalidInput(f"{what}.fields[{name!r}].purposes: expected a list of purpose codes")
            if entry["category"] == "protected" and purposes:
                raise InvalidInput(
                    f"{what}.fields[{name!r}]: a protected field has no egress purposes "
                    "(approve an egress_exception instead)"
                )
    elif kind in (ProposalKind.TRUST_ROOT, ProposalKind.APPROVER_ROSTER):
        bundle = _obj(payload, what, {"trust_root"})["trust_root"]
        from rempart.governance.rootstore import TrustRootBundle

        TrustRootBundle.parse(bundle)
    elif kind is ProposalKind.REGION_EGRESS_RULES:
        obj = _obj(payload, what, {"region", "rules"})
        _region(obj["region"], f"{what}.region", root)
        # The same shape as a region's [regions.<name>.egress] table in the deployment file.
        rules = _obj(obj["rules"], f"{what}.rules", {"destinations", "budgets"})
        destinations = rules["destinations"]
        if not isinstance(destinations, list) or not all(isinstance(d, str) and d for d in destinations):
            raise InvalidInput(f"{what}.rules.destinations: expected a list of destination names")
        budgets = rules["budgets"]
        if not isinstance(budgets, Mapping) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in budgets.values()
        ):
            raise InvalidInput(f"{what}.rules.budgets: expected an object purpose → records per day (≥ 0)")
    elif kind is ProposalKind.EGRESS_EXCEPTION:
        obj = _obj(payload, what, {"region", "fields", "purpose", "destination", "not_before", "not_after"})
        _region(obj["region"], f"{what}.region", root)
        fields_list = obj["fields"]
        if (
            not isinstance(fields_list, list)
            or not fields_list
            or len(set(map(str, fields_list))) != len(fields_list)
        ):
            raise InvalidInput(f"{what}.fields: expected a non-empty list of distinct collection.field names")
        for i, f in enumerate(fields_list):
            _str(f, f"{what}.fields[{i}]", _FIELD)
        _str(obj["purpose"], f"{what}.purpose", _NAME)
        _str(obj["destination"], f"{what}.destination", _NAME)
        start, end = (
            _when(obj["not_before"], f"{what}.not_before"),
            _when(obj["not_after"], f"{what}.not_after"),
        )
        if end <= start:
            raise InvalidInput(f"{what}: not_after must be after not_before")
    else:  # pragma: no cover - ProposalKind is closed
        raise InvalidInput(f"unknown proposal kind {kind!r}")


# -- the text that is signed -----------------------------------------------------


def _proposal_text(document: Mapping[str, Any]) -> str:
    return f"{PROPOSAL_HEADER}\n{canonical_json(document).decode('utf-8')}\n"


def parse_proposal_text(text: str) -> Proposal:
    """Read a proposal back from its signed text (as stored, or as a board member receives it)."""
    header, _, rest = text.partition("\n")
    if header != PROPOSAL_HEADER:
        raise InvalidInput(f"proposal text starts with {header[:60]!r}, expected {PROPOSAL_HEADER!r}")
    try:
        doc = json.loads(rest)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"proposal text is not one line of JSON: {exc}") from exc
    obj = _obj(
        doc,
        "proposal",
        {"id", "kind", "payload", "deployment", "drafted_by", "drafted", "expires", "trust_root_version"},
    )
    if _proposal_text(obj) != text:
        raise InvalidInput("proposal text is not canonical (header, canonical JSON, newline)")
    try:
        kind = ProposalKind(obj["kind"])
    except ValueError as exc:
        raise InvalidInput(f"proposal kind {obj['kind']!r} is unknown") from exc
    version = obj["trust_root_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise InvalidInput("proposal trust_root_version: expected an integer")
    return Proposal(
        id=_str(obj["id"], "proposal id", _ID),
        kind=kind,
        payload=obj["payload"],
        deployment=_str(obj["deployment"], "proposal deployment"),
        drafted_by=_str(obj["drafted_by"], "proposal drafted_by"),
        drafted=_when(obj["drafted"], "proposal drafted"),
        expires=_when(obj["expires"], "proposal expires"),
        trust_root_version=version,
        text=text,
    )


def sign_proposal(proposal: Proposal | str | bytes, signers: Sequence[NoteSigner]) -> bytes:
    """A board member's signature: the proposal text as a signed note (or more lines on one)."""
    return sign_or_extend(proposal.text if isinstance(proposal, Proposal) else proposal, signers)


def _key(sig: NoteSignature) -> str:
    return key_label(sig.name, sig.key_id)


# -- the service ---------------------------------------------------------------------


class ProposalService:
    """Draft, sign, apply and expire board proposals, in the control database."""

    def __init__(
        self,
        *,
        db: Database,
        recorder: EventRecorder,
        trust_roots: TrustRootSource,
        appliers: Mapping[ProposalKind, ProposalApplier],
        lifetime: timedelta,
    ) -> None:
        if lifetime <= timedelta(0):
            raise ConfigurationError(
                "proposal lifetime must be positive", path="governance.proposal_lifetime"
            )
        migrate(db)
        self._db = db
        self._recorder = recorder
        self._trust_roots = trust_roots
        self._appliers = dict(appliers)
        self.lifetime = lifetime

    def register(self, kind: ProposalKind, applier: ProposalApplier) -> None:
        """Add the applier of a kind no applier serves yet (rooms opened after governance)."""
        if kind in self._appliers:
            raise ConfigurationError(f"proposals of kind {kind.value} already have an applier")
        self._appliers[kind] = applier

    # -- reading -------------------------------------------------------------------

    def get(self, proposal_id: str) -> ProposalRecord:
        row = self._db.query_one(
            "SELECT text, status, closed, result FROM governance_proposals WHERE id = ?", (proposal_id,)
        )
        if row is None:
            raise NotFound(f"no proposal {proposal_id!r}")
        signers = self._db.query_all(
            "SELECT member FROM governance_proposal_signatures WHERE proposal = ? ORDER BY signed, member",
            (proposal_id,),
        )
        return ProposalRecord(
            parse_proposal_text(row[0]),
            ProposalStatus(row[1]),
            tuple(r[0] for r in signers),
            parse_time(row[2]) if row[2] else None,
            row[3],
        )

    def records(self, status: ProposalStatus | None = None) -> list[ProposalRecord]:
        if status is None:
            rows = self._db.query_all("SELECT id FROM governance_proposals ORDER BY drafted, id")
        else:
            rows = self._db.query_all(
                "SELECT id FROM governance_proposals WHERE status = ? ORDER BY drafted, id", (status.value,)
            )
        return [self.get(r[0]) for r in rows]

    def signatures(self, proposal_id: str) -> bytes:
        """The proposal with every stored board signature, as one signed note for stock tools."""
        record = self.get(proposal_id)
        rows = self._db.query_all(
            "SELECT signature_line FROM governance_proposal_signatures WHERE proposal = ? "
            "ORDER BY signed, member",
            (proposal_id,),
        )
        if not rows:
            raise NotFound(f"proposal {proposal_id} has no signatures yet")
        sigs = tuple(NoteSignature.parse_line(r[0]) for r in rows)
        return Note(record.proposal.text, sigs).to_bytes()

    # -- drafting --------------------------------------------------------------------

    def draft(
        self, *, kind: ProposalKind | str, payload: Mapping[str, Any], drafter: Drafter, now: datetime
    ) -> Proposal:
        """Draft a proposal; it expires ``lifetime`` after ``now`` unless applied."""
        try:
            kind = ProposalKind(kind)
        except ValueError as exc:
            kinds = ", ".join(k.value for k in ProposalKind)
            raise InvalidInput(f"proposal kind {kind!r} is unknown (kinds: {kinds})") from exc
        if drafter.org not in DRAFTER_ORGS:
            raise PermissionDenied(
                f"{drafter.id} is of org {drafter.org!r}; only board members and operator staff "
                "may draft a proposal"
            )
        root = self._trust_roots.current()
        validate_payload(kind, payload, root)
        document = {
            "id": f"p-{secrets.token_hex(8)}",
            "kind": kind.value,
            "payload": payload,
            "deployment": root.deployment,
            "drafted_by": _str(drafter.id, "drafter id"),
            "drafted": format_time(now),
            "expires": format_time(now + self.lifetime),
            "trust_root_version": root.version,
        }
        proposal = parse_proposal_text(_proposal_text(document))
        event = Event(
            "governance.proposal.drafted",
            now,
            {
                "proposal": proposal.id,
                "kind": kind.value,
                "drafted_by": proposal.drafted_by,
                "drafter_org": drafter.org,
                "expires": format_time(proposal.expires),
                "trust_root_version": root.version,
                "proposal_sha256": proposal.digest,
                "text": proposal.text,
            },
        )
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO governance_proposals (id, kind, text, drafted_by, drafted, expires, status) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    proposal.id,
                    kind.value,
                    proposal.text,
                    proposal.drafted_by,
                    format_time(now),
                    format_time(proposal.expires),
                    ProposalStatus.DRAFTED.value,
                ),
            )
            self._recorder.record(event)
        return proposal

    # -- signing ---------------------------------------------------------------------------

    def sign(self, proposal_id: str, signed_note: bytes | str, *, now: datetime) -> ProposalRecord:
        """Add board signatures (a signed note of the proposal's exact text).

        The whole note is refused, and nothing stored, if any line is by a key
        that is not a board key of the trust root in force, is a duplicate, does
        not verify, or if the note's text is not the proposal's text.
        """
        record = self.get(proposal_id)
        proposal = record.proposal
        self._require_open(record, now)
        note = Note.parse(signed_note)
        if note.text != proposal.text:
            got = hashlib.sha256(note.text.encode("utf-8")).hexdigest()
            raise VerificationFailed(
                f"the signed note is over different bytes than proposal {proposal.id} "
                f"(sha256 {got[:16]}…, the proposal's is {proposal.digest[:16]}…); "
                "sign the exact proposal text",
                proposal=proposal.id,
            )
        root = self._trust_roots.current()
        message = note.text.encode("utf-8")
        accepted: list[tuple[Member, NoteSignature]] = []
        for sig in note.signatures:
            member = root.board_member(sig.name, sig.key_id)
            if member is None:
                raise PermissionDenied(
                    f"key {_key(sig)} is not a board key of trust root version {root.version}; "
                    f"its signature on proposal {proposal.id} does not count",
                    key=_key(sig),
                )
            if member.id in record.signers or any(m.id == member.id for m, _ in accepted):
                raise Conflict(
                    f"board member {member.id} has already signed proposal {proposal.id}; "
                    "a member counts once",
                    member=member.id,
                )
            try:
                member.verifier.verify(message, sig.signature)
            except VerificationFailed as exc:
                raise VerificationFailed(
                    f"the signature by board member {member.id} ({_key(sig)}) does not verify over "
                    f"proposal {proposal.id}'s bytes",
                    member=member.id,
                ) from exc
            accepted.append((member, sig))
        with self._db.transaction() as tx:
            for member, sig in accepted:
                tx.execute(
                    "INSERT INTO governance_proposal_signatures (proposal, member, signature_line, signed) "
                    "VALUES (?, ?, ?, ?)",
                    (proposal.id, member.id, sig.line().rstrip("\n"), format_time(now)),
                )
            for member, sig in accepted:
                self._recorder.record(
                    Event(
                        "governance.proposal.signed",
                        now,
                        {
                            "proposal": proposal.id,
                            "kind": proposal.kind.value,
                            "member": member.id,
                            "key": _key(sig),
                            "proposal_sha256": proposal.digest,
                            "trust_root_version": root.version,
                            "signature": sig.line().rstrip("\n"),
                        },
                    )
                )
        return self.get(proposal_id)

    # -- applying and expiring --------------------------------------------------------------

    def count(self, proposal_id: str) -> tuple[TrustRoot, list[str]]:
        """The trust root in force and the board members of it whose stored signatures verify."""
        record = self.get(proposal_id)
        root = self._trust_roots.current()
        rows = self._db.query_all(
            "SELECT signature_line FROM governance_proposal_signatures WHERE proposal = ? "
            "ORDER BY signed, member",
            (proposal_id,),
        )
        message = record.proposal.text.encode("utf-8")
        valid: list[str] = []
        for (line,) in rows:
            sig = NoteSignature.parse_line(line)
            member = root.board_member(sig.name, sig.key_id)
            if member is None or member.id in valid:
                continue  # a member rotated out of the board no longer counts
            member.verifier.verify(message, sig.signature)
            valid.append(member.id)
        return root, valid

    def apply(self, proposal_id: str, *, now: datetime) -> ProposalRecord:
        """Apply once the board threshold of the trust root in force is met; else refuse with the count."""
        record = self.get(proposal_id)
        proposal = record.proposal
        if record.status is ProposalStatus.APPROVED:
            return self._run_applier(proposal, now)
        self._require_open(record, now)
        root, valid = self.count(proposal_id)
        if len(valid) < root.board_threshold:
            missing = root.board_threshold - len(valid)
            unsigned = [m.id for m in root.board if m.id not in valid]
            reason = f"{len(valid)} of {root.board_threshold} board signatures; {missing} missing"
            self._refuse(proposal, now, reason, valid, root)
            raise PermissionDenied(
                f"proposal {proposal.id} cannot be applied: {reason} "
                f"(signed: {', '.join(valid) or 'nobody'}; not yet: {', '.join(unsigned)})",
                proposal=proposal.id,
                signed=valid,
                missing=missing,
                threshold=root.board_threshold,
            )
        applier = self._appliers.get(proposal.kind)
        if applier is None:
            reason = f"no applier is registered for proposals of kind {proposal.kind.value}"
            self._refuse(proposal, now, reason, valid, root)
            raise ConfigurationError(f"proposal {proposal.id} cannot be applied: {reason}")
        try:
            applier.check(proposal)
        except RempartError as exc:
            self._refuse(proposal, now, exc.message, valid, root)
            raise
        with self._db.transaction() as tx:
            updated = tx.execute(
                "UPDATE governance_proposals SET status = ? WHERE id = ? AND status = ?",
                (ProposalStatus.APPROVED.value, proposal.id, ProposalStatus.DRAFTED.value),
            ).rowcount
            if updated != 1:
                raise Conflict(f"proposal {proposal.id} changed while being applied; look again")
            self._recorder.record(
                Event(
                    "governance.proposal.applied",
                    now,
                    {
                        "proposal": proposal.id,
                        "kind": proposal.kind.value,
                        "proposal_sha256": proposal.digest,
                        "signers": valid,
                        "threshold": root.board_threshold,
                        "trust_root_version": root.version,
                    },
                )
            )
        return self._run_applier(proposal, now)

    def resume(self, *, now: datetime) -> list[ProposalRecord]:
        """Finish every proposal left approved by a crash (its applier runs again, idempotently)."""
        return [self._run_applier(r.proposal, now) for r in self.records(ProposalStatus.APPROVED)]

    def expire_due(self, *, now: datetime) -> list[str]:
        """Expire every drafted proposal whose time has passed; returns their ids."""
        rows = self._db.query_all(
            "SELECT id FROM governance_proposals WHERE status = ? AND expires <= ? ORDER BY expires",
            (ProposalStatus.DRAFTED.value, format_time(now)),
        )
        for (proposal_id,) in rows:
            self._expire(self.get(proposal_id).proposal, now)
        return [r[0] for r in rows]

    # -- internals -----------------------------------------------------------------------------

    def _run_applier(self, proposal: Proposal, now: datetime) -> ProposalRecord:
        applier = self._appliers.get(proposal.kind)
        if applier is None:
            raise ConfigurationError(
                f"proposal {proposal.id} is approved but no applier is registered for kind "
                f"{proposal.kind.value}"
            )
        result = applier.apply(proposal, now=now)
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE governance_proposals SET status = ?, closed = ?, result = ? "
                "WHERE id = ? AND status = ?",
                (
                    ProposalStatus.APPLIED.value,
                    format_time(now),
                    result,
                    proposal.id,
                    ProposalStatus.APPROVED.value,
                ),
            )
        return self.get(proposal.id)

    def _require_open(self, record: ProposalRecord, now: datetime) -> None:
        proposal = record.proposal
        if record.status is not ProposalStatus.DRAFTED:
            raise Conflict(
                f"proposal {proposal.id} is {record.status.value}, not open for signing or applying"
            )
        if now >= proposal.expires:
            self._expire(proposal, now)
            raise Conflict(
                f"proposal {proposal.id} expired at {format_time(proposal.expires)}; draft it again",
                proposal=proposal.id,
            )

    def _expire(self, proposal: Proposal, now: datetime) -> None:
        with self._db.transaction() as tx:
            updated = tx.execute(
                "UPDATE governance_proposals SET status = ?, closed = ? WHERE id = ? AND status = ?",
                (ProposalStatus.EXPIRED.value, format_time(now), proposal.id, ProposalStatus.DRAFTED.value),
            ).rowcount
            if updated == 1:
                self._recorder.record(
                    Event(
                        "governance.proposal.expired",
                        now,
                        {
                            "proposal": proposal.id,
                            "kind": proposal.kind.value,
                            "expires": format_time(proposal.expires),
                        },
                    )
                )

    def _refuse(
        self, proposal: Proposal, now: datetime, reason: str, valid: list[str], root: TrustRoot
    ) -> None:
        self._recorder.record(
            Event(
                "governance.proposal.apply_refused",
                now,
                {
                    "proposal": proposal.id,
                    "kind": proposal.kind.value,
                    "reason": reason,
                    "signers": valid,
                    "threshold": root.board_threshold,
                    "trust_root_version": root.version,
                },
            )
        )
