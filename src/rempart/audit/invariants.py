"""Invariant replay: ``rempart audit check`` re-reads every mirrored entry and checks the agreement.

The auditor does not trust the operator: it replays the verified entries of
its own mirror (:meth:`rempart.audit.mirror.Mirror.entries`), in log order,
through one state machine, and every promise of the agreement is one checker
over that state. Signatures are verified again with the keys of the trust
root *in force at that point of the log* (the chain of
``governance.trust_root.installed`` entries, verified from version 1 with
:func:`rempart.governance.trustroot.verify_next`, or a chain the auditor
brings). The invariants, each a stable code:

``entry-format``
    every entry decodes (:meth:`rempart.events.Event.decode`: canonical JSON
    of a valid event) and the bodies the checkers read have their fields.
``access-grant`` (1)
    every allowed protected read, erase or relocation, and every allowed
    protected write that is not a registered service's, cites a grant that
    was, at the decision's time, approved by enough counted custodian
    approvals (each approval's signed note verified against the trust root's
    approver keys; the threshold is the one the request entry recorded), not
    revoked, expired or not yet started, the principal's own, and in scope
    (region, collection, field, subject, purpose): or a break-glass grant.
``parent-protected`` (2)
    no principal of org ``parent`` was ever allowed a protected field.
``egress-exception`` (3)
    no protected field left its region (``egress.transfer``) without a
    board-approved exception in force that covers it.
``governance-threshold`` (4)
    every applied proposal, installed trust root and activated policy set met
    the board threshold of the trust root in force (signatures verified
    again); every policy activation after the initial one comes from an
    applied ``policy_set`` proposal; decisions name activated policy sets.
``break-glass-review`` (5)
    every break-glass grant got a counted, verified custodian review within
    its window (judged at ``now``: the last entry's time unless given).
``erasure`` (6)
    every erasure receipt says what was destroyed, nothing is allowed on an
    erased subject afterwards, and an allowed subject erasure has a receipt.
``release-approved`` (7)
    every ``release.deployed`` names a release approved and not revoked
    there at that time (:func:`rempart.governance.deployment_violations`),
    and every approval met the reviewer threshold (signatures verified).
``checkpoint-witnessed`` (8)
    the checkpoint the mirror verified is signed by the trust root's log key
    and cosigned by its witness threshold (a notice, not a violation, when
    the mirror itself was synced with witness threshold 0).

Speed: the dominant entry, ``access.decision``, is decoded into a typed
:class:`DecisionEntry` and re-encoded to check canonical form (msgspec, about
2 µs); other entries take a generic decoder that refuses floats. Anything
either fast path does not accept goes through :meth:`Event.decode` itself, so
acceptance is exactly ``Event.decode``'s. Times stay canonical strings (fixed
width, UTC), so comparing them as strings compares instants. Signatures are
verified once each, grant checks are cached per grant version.

>>> result = replay([])
>>> result.ok, result.entries
(True, 0)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, Protocol

import msgspec

from rempart.access.approvals import APPROVAL_HEADER, REVIEW_HEADER, read_statement, verify_statement
from rempart.access.model import AccessRequest
from rempart.clock import format_time, parse_time
from rempart.errors import InvalidInput, RempartError, VerificationFailed
from rempart.events import Event
from rempart.governance.proposals import parse_proposal_text
from rempart.governance.releases import deployment_violations
from rempart.governance.rootstore import TrustRootBundle
from rempart.governance.trustroot import TrustRoot, parse_signed_trust_root, verify_chain, verify_next
from rempart.tlog.checkpoint import open_checkpoint
from rempart.tlog.note import Note, NoteSignature
from rempart.tlog.tiles import MAX_ENTRY_SIZE

__all__ = [
    "INVARIANTS",
    "DecisionEntry",
    "DecisionField",
    "Finding",
    "InvariantReplay",
    "ReplayObserver",
    "ReplayResult",
    "Severity",
    "WitnessStatus",
    "decode_entry",
    "replay",
]

Severity = Literal["violation", "notice"]

INVARIANTS: Final[Mapping[str, str]] = {
    "entry-format": "every entry is a canonical event whose body has the fields its type needs",
    "access-grant": "every allowed protected access had an approved, active, in-scope grant (or break-glass)",
    "parent-protected": "no parent principal was ever allowed a protected field",
    "egress-exception": "no protected field left its region without a board-approved exception",
    "governance-threshold": "every governance change met the board threshold of the trust root in force",
    "break-glass-review": "every break-glass grant was reviewed by a custodian within its window",
    "erasure": "every erasure has its receipt and nothing is accessed after it",
    "release-approved": "every deployed release was approved and not revoked at that time",
    "checkpoint-witnessed": "the verified checkpoint is signed by the trust root's log and witnessed enough",
}
"""Every invariant's code and the promise it checks, in report order."""

_PROTECTED: Final = "protected"
_REORDER_SECONDS: Final = 60
_NEEDS_GRANT: Final = frozenset({"read", "erase", "relocate"})
_TYPE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
_TIME = re.compile(r"[1-9]\d{3}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the replay found: which invariant, how bad, where in the log, and exactly what."""

    invariant: str
    severity: Severity
    index: int | None
    message: str
    related: tuple[int, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "invariant": self.invariant,
            "severity": self.severity,
            "index": self.index,
            "related": list(self.related),
            "message": self.message,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class WitnessStatus:
    """Invariant 8's facts: the checkpoint replayed against, and who cosigned it."""

    size: int
    root: str
    cosigned_by: tuple[str, ...]
    witness_threshold: int | None
    mirror_threshold: int | None


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay checked and found; ``ok`` is False when any violation was found."""

    entries: int
    findings: tuple[Finding, ...]
    checked: Mapping[str, int]
    trust_source: str
    trust_root_version: int | None
    first_time: str | None
    last_time: str | None
    now: str | None
    witness: WitnessStatus | None = None

    @property
    def violations(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "violation")

    @property
    def notices(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "notice")

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> list[dict[str, Any]]:
        """One row per invariant: what it promises, how much it checked, violations and notices."""
        rows = []
        for code, promise in INVARIANTS.items():
            rows.append(
                {
                    "invariant": code,
                    "promise": promise,
                    "checked": self.checked.get(code, 0),
                    "violations": sum(1 for f in self.violations if f.invariant == code),
                    "notices": sum(1 for f in self.notices if f.invariant == code),
                }
            )
        return rows

    def to_json(self) -> dict[str, Any]:
        witness = self.witness
        return {
            "ok": self.ok,
            "entries": self.entries,
            "trust_root": {"source": self.trust_source, "version_in_force": self.trust_root_version},
            "first_time": self.first_time,
            "last_time": self.last_time,
            "now": self.now,
            "checkpoint": None
            if witness is None
            else {
                "size": witness.size,
                "root": witness.root,
                "cosigned_by": list(witness.cosigned_by),
                "witness_threshold": witness.witness_threshold,
                "mirror_threshold": witness.mirror_threshold,
            },
            "invariants": self.summary(),
            "findings": [f.to_json() for f in self.findings],
        }


# -- decoding -------------------------------------------------------------------------


class DecisionField(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One field's verdict inside an ``access.decision`` entry (keys in canonical order).

    Frozen: the decoded verdict lists of a log repeat, and are shared between entries.
    """

    allowed: bool
    category: str
    name: str
    policies: tuple[str, ...]
    reasons: tuple[str, ...]


class DecisionEntry(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """An ``access.decision`` entry, typed: the gateway's verdict for one access (see docs/events.md).

    Attributes are in canonical (sorted) order, so encoding one gives its
    canonical JSON; ``destination`` (egress) and ``limit`` (listings) appear
    only on the decisions that carry them. The ``fields`` list is kept as the
    JSON it was read from (``fields_json``) and decoded once per distinct list:
    a log repeats a handful of them millions of times.
    """

    action: str
    allowed: bool
    break_glass: bool
    collection: str
    fields_json: msgspec.Raw = msgspec.field(name="fields")
    grant: str | None
    org: str
    policy_version: str | None
    principal: str
    purpose: str
    record: str | None
    region: str
    subject: str | None
    time: str
    type: str
    v: int
    destination: str | msgspec.UnsetType = msgspec.UNSET
    limit: int | msgspec.UnsetType = msgspec.UNSET

    @property
    def fields(self) -> tuple[DecisionField, ...]:
        """The verdict per field."""
        fields = _decision_fields(self.fields_json)
        if fields is None:  # pragma: no cover - entries are only made of lists that decoded
            raise InvalidInput("access.decision fields are not a canonical list of field verdicts")
        return fields


_FIELDS_DECODER = msgspec.json.Decoder(tuple[DecisionField, ...])
_FIELDS_SEEN: dict[bytes, tuple[DecisionField, ...]] = {}
_FIELDS_SEEN_MAX = 4096


def _decision_fields(raw: msgspec.Raw) -> tuple[DecisionField, ...] | None:
    """A decision's field verdicts, if ``raw`` is a canonical list of them (else None)."""
    key = bytes(raw)
    fields = _FIELDS_SEEN.get(key)
    if fields is None:
        try:
            fields = _FIELDS_DECODER.decode(key)
        except (msgspec.DecodeError, ValueError):
            return None
        if _ENCODER.encode(fields) != key:
            return None
        if len(_FIELDS_SEEN) >= _FIELDS_SEEN_MAX:
            _FIELDS_SEEN.clear()
        _FIELDS_SEEN[key] = fields
    return fields


def _no_float(text: str) -> Any:
    raise ValueError(f"floats are not allowed in log entries (not canonical): {text}")


_DECISION_DECODER = msgspec.json.Decoder(DecisionEntry)
_GENERIC_DECODER = msgspec.json.Decoder(float_hook=_no_float)
_ENCODER = msgspec.json.Encoder(order="sorted")
# Canonical JSON sorts keys, and "time", "type", "v" sort last in a decision: every canonical
# access.decision ends so (others are still decoded, on the general path).
_DECISION_END = b'"type":"access.decision","v":1}'
_DECISION_KEYS = frozenset(DecisionEntry.__struct_encode_fields__)


_TAIL = re.compile(r":[0-5]\d:[0-5]\d\.\d{6}Z")
_valid_hour: list[str] = [""]
_valid_second: list[str] = [""]


def _canonical_time(text: Any) -> bool:
    """Is ``text`` exactly what ``format_time`` writes (so parse+format gives it back)?

    The first time of each date and hour is checked in full (pattern and
    calendar); later times that share that date and hour (most of them, in a
    log) only need a valid minute, second and microsecond part, and those that
    share the second of the last one checked only their microseconds.
    """
    if type(text) is not str or len(text) != 27:
        return False
    if text[:20] == _valid_second[0]:
        micros = text[20:26]
        return text[26] == "Z" and micros.isascii() and micros.isdigit()
    if text[:13] == _valid_hour[0]:
        if _TAIL.fullmatch(text, 13) is None:
            return False
        _valid_second[0] = text[:20]
        return True
    if not _TIME.fullmatch(text):
        return False
    try:
        datetime.fromisoformat(text[:-1])
    except ValueError:
        return False
    _valid_hour[0] = text[:13]
    _valid_second[0] = text[:20]
    return True


def decode_entry(data: bytes) -> tuple[str, str, DecisionEntry | dict[str, Any]]:
    """Decode one entry as :meth:`Event.decode` would: ``(type, time, body)``, or InvalidInput.

    ``access.decision`` bodies come back as a :class:`DecisionEntry`, others as
    a dict without the envelope keys. ``time`` is the canonical time string.
    The fast paths accept only canonical entries; whatever they do not accept
    is handed to ``Event.decode``, whose answer (and error message) stands.
    """
    if len(data) <= MAX_ENTRY_SIZE:
        if data.endswith(_DECISION_END):
            try:
                entry = _DECISION_DECODER.decode(data)
            except (msgspec.DecodeError, ValueError):
                pass
            else:
                if (
                    entry.type == "access.decision"
                    and entry.v == 1
                    and _canonical_time(entry.time)
                    and _decision_fields(entry.fields_json) is not None
                    and _ENCODER.encode(entry) == data
                ):
                    return entry.type, entry.time, entry
        try:
            obj = _GENERIC_DECODER.decode(data)
        except (msgspec.DecodeError, ValueError):
            obj = None
        if type(obj) is dict:
            kind, when, version = obj.get("type"), obj.get("time"), obj.get("v")
            if (
                type(version) is int
                and version == 1
                and type(kind) is str
                and _TYPE.fullmatch(kind)
                and _canonical_time(when)
                and _ENCODER.encode(obj) == data
            ):
                del obj["type"], obj["time"], obj["v"]
                return kind, str(when), _typed(kind, obj)
    event = Event.decode(data)  # the reference: raises InvalidInput with the exact reason
    body = dict(event.body)
    return event.type, format_time(event.time), _typed(event.type, body)


def _typed(kind: str, body: dict[str, Any]) -> DecisionEntry | dict[str, Any]:
    if kind != "access.decision":
        return body
    known = {k: v for k, v in body.items() if k in _DECISION_KEYS}
    try:
        entry = _DECISION_DECODER.decode(_ENCODER.encode({**known, "type": kind, "time": "", "v": 1}))
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"access.decision body is malformed: {exc}") from exc
    try:
        _FIELDS_DECODER.decode(entry.fields_json)
    except msgspec.ValidationError as exc:  # its path starts inside the list: name the list
        text = str(exc)
        where = text.replace("`$", "`$.fields", 1) if "`$" in text else f"{text} - at `$.fields`"
        raise InvalidInput(f"access.decision body is malformed: {where}") from exc
    return entry


# -- replay state ------------------------------------------------------------------------


class ReplayObserver(Protocol):
    """Something that sees every decoded entry during a replay (the report's statistics)."""

    def decision(self, index: int, entry: DecisionEntry) -> None: ...

    def event(self, index: int, kind: str, time: str, body: Mapping[str, Any]) -> None: ...


class _Malformed(Exception):
    """A body lacks a field a checker needs (turned into an ``entry-format`` finding)."""


def _need(body: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in body:
        raise _Malformed(f"lacks {key!r}")
    value = body[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _Malformed(f"{key!r} is {type(value).__name__}, not the expected type")
    return value


def _time_field(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Malformed(f"{key!r} is not a time")
    try:
        return format_time(parse_time(value))
    except ValueError as exc:
        raise _Malformed(f"{key!r} {value!r} is not an RFC 3339 time") from exc


def _short(commitment: str | None) -> str:
    return "-" if commitment is None else commitment[:12] + "…"


class _Grant:
    """What the log says about one access request / grant, as the replay learns it."""

    __slots__ = (
        "approvals",
        "approved",
        "break_glass",
        "bulk_limit",
        "bulk_subjects",
        "collections",
        "counted",
        "denied",
        "digest",
        "duration",
        "ended",
        "expires_at",
        "fields",
        "id",
        "opened",
        "over_bulk",
        "problem",
        "purpose",
        "region",
        "requester",
        "requester_org",
        "required",
        "review_due",
        "reviewed",
        "reviews",
        "starts_at",
        "subjects",
        "version",
    )

    def __init__(self, request: AccessRequest, index: int, required: int) -> None:
        self.id = request.id
        self.digest = request.digest()
        self.requester = request.requester
        self.requester_org = request.requester_org
        self.region = request.scope.region
        self.collections = request.scope.collections
        self.fields = request.scope.fields
        self.subjects = frozenset(request.scope.subjects)
        self.bulk_limit = request.scope.bulk_limit
        self.purpose = request.purpose
        self.break_glass = request.break_glass
        self.duration = int(request.duration.total_seconds())
        self.required = required
        self.opened = index
        self.approvals: list[int] = []
        self.counted: dict[str, int] = {}
        self.problem: str | None = None
        self.approved: int | None = None
        self.denied: int | None = None
        self.starts_at: str | None = None
        self.expires_at: str | None = None
        self.ended: tuple[int, str, str] | None = None  # index, time, how
        self.review_due: str | None = None
        self.reviewed: tuple[int, str] | None = None
        self.reviews: list[int] = []
        self.bulk_subjects: set[str] = set()
        self.over_bulk = False
        self.version = 0

    def related(self) -> tuple[int, ...]:
        indexes = [self.opened, *self.approvals]
        if self.approved is not None:
            indexes.append(self.approved)
        if self.ended is not None:
            indexes.append(self.ended[0])
        return tuple(sorted(set(indexes)))


@dataclass(slots=True)
class _Proposal:
    id: str
    kind: str
    text: str
    payload: Mapping[str, Any]
    drafted: int
    signatures: list[tuple[int, NoteSignature]] = field(default_factory=list)
    applied: int | None = None
    valid: bool = False


@dataclass(slots=True)
class _Release:
    id: str
    region: str
    digest: str
    text: str | None
    submitted: int
    reviews: list[tuple[int, NoteSignature]] = field(default_factory=list)


class InvariantReplay:
    """The state machine: :meth:`feed` every entry in log order, then :meth:`finish`.

    ``trust_chain`` is the auditor's own chain of signed trust root notes
    (versions 1…N); without it, the chain comes from the log's
    ``governance.trust_root.installed`` entries. ``now`` judges deadlines
    (break-glass reviews); by default the time of the last entry.
    """

    def __init__(
        self,
        *,
        trust_chain: Sequence[bytes] | None = None,
        trust_source: str | None = None,
        now: datetime | None = None,
        observers: Sequence[ReplayObserver] = (),
    ) -> None:
        self._file_chain: list[TrustRoot] | None = None
        if trust_chain is not None:
            verify_chain(trust_chain)  # refuse a chain that does not verify, before anything
            roots: list[TrustRoot] = []
            for signed in trust_chain:
                roots.append(verify_next(roots[-1] if roots else None, signed))
            self._file_chain = roots
        self.trust_source = trust_source or ("auditor's file" if trust_chain is not None else "log")
        self._now = None if now is None else format_time(now)
        self._observers = tuple(observers)
        self.findings: list[Finding] = []
        self.checked: dict[str, int] = dict.fromkeys(INVARIANTS, 0)
        self.entries = 0
        self.first_time: str | None = None
        self.last_time: str | None = None
        self.root: TrustRoot | None = self._file_chain[0] if self._file_chain else None
        self._root_index: int | None = None
        self._grants: dict[str, _Grant] = {}
        self._grant_checks: dict[tuple[Any, ...], list[str]] = {}
        self._principals: dict[str, dict[str, Any]] = {}
        self._policy_versions: set[str] = set()
        self._policy_activations = 0
        self._proposals: dict[str, _Proposal] = {}
        self._exceptions: dict[str, _Proposal] = {}
        self._releases: dict[str, _Release] = {}
        self._release_events: dict[tuple[str, str], list[Event]] = {}
        self._verified: dict[tuple[bytes, bytes, bytes], str | None] = {}
        self._categories: dict[tuple[str, str], str] = {}
        self._shapes: set[tuple[str, int, str]] = set()
        self._egress_decisions: dict[tuple[str, str, str, str], dict[str, str]] = {}
        self._erased: dict[str, int] = {}
        self._erase_decided: dict[str, int] = {}
        self._handlers = {
            "access.principal.created": self._principal_created,
            "access.principal.updated": self._principal_updated,
            "access.request.submitted": self._request_submitted,
            "access.approval.recorded": self._approval_recorded,
            "access.request.approved": self._request_approved,
            "access.request.denied": self._request_ended,
            "access.request.withdrawn": self._request_ended,
            "access.request.lapsed": self._request_ended,
            "access.grant.activated": self._grant_activated,
            "access.grant.expired": self._request_ended,
            "access.grant.revoked": self._request_ended,
            "access.break_glass.opened": self._break_glass_opened,
            "access.break_glass.reviewed": self._break_glass_reviewed,
            "governance.trust_root.installed": self._trust_root_installed,
            "governance.proposal.drafted": self._proposal_drafted,
            "governance.proposal.signed": self._proposal_signed,
            "governance.proposal.applied": self._proposal_applied,
            "governance.release.submitted": self._release_submitted,
            "governance.release.reviewed": self._release_reviewed,
            "governance.release.approved": self._release_approved,
            "governance.release.revoked": self._release_revoked,
            "release.deployed": self._release_deployed,
            "policy.activated": self._policy_activated,
            "egress.transfer": self._egress_transfer,
            "store.erasure": self._erasure,
        }

    # -- findings -------------------------------------------------------------------

    def _find(
        self,
        invariant: str,
        index: int | None,
        message: str,
        *,
        related: Iterable[int] = (),
        severity: Severity = "violation",
        **details: Any,
    ) -> None:
        rel = tuple(sorted({r for r in related if r != index}))
        self.findings.append(Finding(invariant, severity, index, message, rel, details))

    # -- feeding ----------------------------------------------------------------------

    def feed(self, index: int, data: bytes) -> None:
        """Replay one entry (entries must come in log order, each index once)."""
        self.entries += 1
        if data.endswith(_DECISION_END):  # the common case, inlined: a canonical access.decision
            try:
                entry: DecisionEntry | None = _DECISION_DECODER.decode(data)
            except (msgspec.DecodeError, ValueError):
                entry = None
            if (
                entry is not None
                and entry.type == "access.decision"
                and entry.v == 1
                and len(data) <= MAX_ENTRY_SIZE
                and _canonical_time(entry.time)
                and (fields := _decision_fields(entry.fields_json)) is not None
                and _ENCODER.encode(entry) == data
            ):
                time = entry.time
                if self.last_time is not None and time >= self.last_time:
                    self.last_time = time
                    self._decision(index, entry, fields)
                    for observer in self._observers:
                        observer.decision(index, entry)
                    return
        try:
            kind, time, body = decode_entry(data)
        except InvalidInput as exc:
            self.checked["entry-format"] += 1
            self._find(
                "entry-format",
                index,
                f"entry {index} is not a valid log event: {exc.message}",
                leaf_sha256=hashlib.sha256(b"\x00" + data).hexdigest(),
            )
            return
        if self.first_time is None:
            self.first_time = time
        if self.last_time is None or time >= self.last_time:
            self.last_time = time
        elif (parse_time(self.last_time) - parse_time(time)).total_seconds() > _REORDER_SECONDS:
            # Concurrent writers take their time a little before the sequencer orders them; more is odd.
            self._find(
                "entry-format",
                index,
                f"entry {index} ({kind}) is dated {time}, more than {_REORDER_SECONDS} s before an earlier "
                f"entry ({self.last_time})",
                severity="notice",
            )
        if isinstance(body, DecisionEntry):
            self._decision(index, body, body.fields)
            for observer in self._observers:
                observer.decision(index, body)
            return
        handler = self._handlers.get(kind)
        if handler is not None:
            try:
                handler(index, kind, time, body)
            except (_Malformed, InvalidInput, KeyError, TypeError, ValueError) as exc:
                self.checked["entry-format"] += 1
                self._find(
                    "entry-format",
                    index,
                    f"entry {index} ({kind}) cannot be checked: its body {_reason(exc)}",
                    type=kind,
                )
        for observer in self._observers:
            observer.event(index, kind, time, body)

    # -- signatures ------------------------------------------------------------------

    def _statement_problem(self, note: str, header: str, signer: str, digest: str, index: int) -> str | None:
        """None if ``note`` is ``signer``'s valid signed statement on ``digest`` under the root in force."""
        root = self.root
        if root is None:
            return f"no trust root was in force at entry {index} to give {signer}'s key"
        key = (header.encode(), note.encode(), root.document)
        if key in self._verified:
            return self._verified[key]
        problem: str | None = None
        verifier = root.approver_roster.get(signer)
        if verifier is None:
            problem = f"{signer} is not a custodian approver in trust root version {root.version}"
        else:
            try:
                statement = verify_statement(note, verifier, expect=header)
            except (VerificationFailed, InvalidInput) as exc:
                try:
                    claimed = read_statement(note, expect=header)
                    keys = ", ".join(f"{s.name}+{s.key_id:08x}" for s in Note.parse(note).signatures)
                    problem = (
                        f"its signed note (by key {keys}, naming {claimed.signer}) does not verify with "
                        f"{signer}'s key in trust root version {root.version} "
                        f"({verifier.name}+{verifier.key_id:08x})"
                    )
                except RempartError:
                    problem = f"its signed note does not verify: {exc.message}"
            else:
                if statement.signer != signer:
                    problem = f"the signed note names {statement.signer}, not {signer}"
                elif statement.request_digest != digest:
                    problem = (
                        f"the signed note is about request digest {statement.request_digest}, not {digest}"
                    )
        self._verified[key] = problem
        return problem

    # -- principals ---------------------------------------------------------------------

    def _principal_created(self, index: int, kind: str, time: str, body: dict[str, Any]) -> None:
        p = _need(body, "principal", dict)
        self._principals[_need(p, "id", str)] = {
            "org": _need(p, "org", str),
            "roles": set(_need(p, "roles", list)),
            "purposes": set(_need(p, "purposes", list)),
        }

    def _principal_updated(self, index: int, kind: str, time: str, body: dict[str, Any]) -> None:
        known = self._principals.get(_need(body, "principal", str))
        if known is None:
            return
        changes = _need(body, "changes", dict)
        for key in ("roles", "purposes"):
            if isinstance(changes.get(key), list):
                known[key] = set(changes[key])
        if isinstance(changes.get("org"), str):
            known["org"] = changes["org"]

    # -- access requests and grants ---------------------------------------------------------

    def _request(self, body: dict[str, Any]) -> AccessRequest:
        request = AccessRequest.from_canonical(_need(body, "request", dict))
        if _need(body, "request_digest", str) != request.digest():
            raise _Malformed(
                f"has request_digest {body['request_digest']}, but the request's digest is {request.digest()}"
            )
        if body.get("request_id") != request.id:
            raise _Malformed(f"has request_id {body.get('request_id')!r} for request {request.id}")
        return request

    def _request_submitted(self, index: int, kind: str, time: str, body: dict[str, Any]) -> None:
        request = self._request(body)
        required = _need(body, "required_approvals", int)
        grant = _Grant(request, index, required)
        if request.id in self._grants:
            self._find(
                "access-grant",
                index,
                f"access request {request.id} is submitted again at entry {index}; "
                f"it was first created at entry {self._grants[request.id].opened}",
                related=[self._grants[request.id].opened],
                grant=request.id,
            )
            return
        self._grants[request.id] = grant
        if required < 1:
            self._find(
                "access-grant",
                index,
                f"access request {request.id} records {required} required approvals; at least 1 is needed",
                grant=request.id,
            )

    def _grant_of(self, body: dict[str, Any]) -> _Grant | None:
        return self._grants.get(_need(body, "request_id", str))

    def _approval_recorded(self, index: int, kind: str, time: str, body: dict[str, Any]) -> None:
        grant = self._grant_of(body)
        if grant is None:
            return  # an approval of a request the log never showed counts for nothing
        grant.approvals.append(index)
        grant.version += 1
        approver = _need(body, "approver", str)
        claimed = _need(body, "counted", bool)
        decision = _need(body, "decision", str)
        problem = self._statement_problem(
            _need(body, "note", str), APPROVAL_HEADER, approver, grant.digest, index
        )
        if problem is None and approver == grant.requester:
            problem = f"{approver} approves their own request"
        if problem is None and grant.requester_org == "custodian":
            problem = f"{approver} is of the requester's org (custodian)"
        if problem is None and approver in grant.counted:
            problem = (
                f"{approver} already has a counted decision on {grant.id} (entry {grant.counted[approver]})"
            )
        if claimed and problem is not None:
            self.checked["access-grant"] += 1
            self._find(
                "access-grant",
                index,
                f"the approval of {grant.id} by {approver} is recorded as counted, but {problem}",
                related=[grant.opened],
                grant=grant.id,
                approver=approver,
            )
        if claimed and problem is None:
            if decision == "approve":
                grant.counted[approver] = index
            elif decision == "deny":
                grant.denied = index

    def _request_approved(self, index: int, kind: str, time: str, body: dict[str, Any]) -> None:
        grant = self._grant_of(body)
        if grant is None:
            return
        grant.version += 1
        grant.approved = index
        grant.starts_at = _time_field(body, "starts_at")
        grant.expires_at = _time_field(body, "expires_at")
        self.checked["access-grant"] += 1
        if grant.break_glass:
            grant.problem = "a break-glass request is opened, never approved"
        elif grant.denied is not None:
            grant.problem = f"it was approved after a counted denial (entry {grant.denied})"
        elif len(grant.counted) < grant.required:
            verified = ", ".join(sorted(grant.counted)) or "none"
            grant.problem = (
                f"it was approved with {len(grant.counted)} verified custodian approval(s) "
                f"({verified}) where its request needs {grant.required}"
            )
        self._check_window(grant, index)
        if grant.problem is not None:
            self._find(
                "access-grant",
                index,
                f"access request {grant.id} was recorded as approved, but {grant.problem}",
                related=grant.related(),
                grant=grant.id,
                verified_approvers=sorted(grant.counted),
                required=grant.required,
            )

    def _check_window(self, grant: _Grant, index: int) -> None:
        """A grant's window may not be longer than the duration its approvers signed."""
        if grant.starts_at is None or grant.expires_at is None:
            return
        length = (parse_time(grant.expires_at) - parse_time(grant.starts_at)).total_seconds()
        if length > grant.duration:
            self._find(
                "access-grant",
                index,
                f"grant {grant.id} runs {int(length)} s ({grant.starts_at} to {grant.expires_at}), longer "
                f"than the {grant.duration} s its request asked and its approvers signed",
                related=[grant.opened],
                grant=grant.id,
            )
            grant.problem = grant.problem or f"its window is longer than the {grant.duration} s signed"

    def _grant_activated(self, index: int, kind: str, time: str, body: dict[str, Any]) -> None:
        grant = self._grant_of(body)
        if grant is None:
            return
        grant.version += 1
        grant.starts_at = _time_field(body, "starts_at")
        grant.expires_at = _time_field(body, "expires_at")
        self._check_window(grant, index)

    def _request_ended(self, index: int, kind: str, time: str, body: dict[str, Any]) -> None:
        grant = self._grant_of(body)
        if grant is None or grant.ended is not None:
            return
        grant.version += 1
        grant.ended = (index, time, kind.rsplit(".", 1)[1])

    def _break_glass_opened(self, index: int, kind: str, time: str, body: dict[str, Any]) -> None:
        request = self._request(body)
        grant = _Grant(request, index, 0)
        if not request.break_glass:
            raise _Malformed(f"opens request {request.id}, which is not marked break_glass")
        grant.starts_at = _time_field(body, "starts_at")
        grant.expires_at = _time_field(body, "expires_at")
        grant.review_due = _time_field(body, "review_due")
        if grant.review_due is None:
            raise _Malformed("lacks 'review_due'")
        self._grants.setdefault(request.id, grant)
        self._check_window(grant, index)

    def _break_glass_reviewed(self, index: int, kind: str, time: str, body: dict[str, Any]) -> None:
        grant = self._grant_of(body)
        if grant is None:
            return
        grant.reviews.append(index)
        reviewer = _need(body, "reviewer", str)
        claimed = _need(body, "counted", bool)
        problem = self._statement_problem(
            _need(body, "note", str), REVIEW_HEADER, reviewer, grant.digest, index
        )
        if problem is None and reviewer == grant.requester:
            problem = f"{reviewer} reviews their own break-glass grant"
        if claimed and problem is not None:
            self.checked["break-glass-review"] += 1
            self._find(
                "break-glass-review",
                index,
                f"the review of break-glass grant {grant.id} by {reviewer} is recorded as counted, "
                f"but {problem}",
                related=[grant.opened],
                grant=grant.id,
                reviewer=reviewer,
            )
        if claimed and problem is None and grant.reviewed is None:
            grant.reviewed = (index, time)

    # -- decisions ----------------------------------------------------------------------

    def _decision(self, index: int, d: DecisionEntry, fields: tuple[DecisionField, ...]) -> None:
        version = d.policy_version
        if version is not None and version not in self._policy_versions:
            self.checked["governance-threshold"] += 1
            self._find(
                "governance-threshold",
                index,
                f"access decision {index} names policy set {version[:16]}…, which no policy.activated "
                "entry before it put in force",
                policy_version=version,
            )
            self._policy_versions.add(version)  # report it once
        if d.action == "egress":
            key = (d.region, d.collection, d.purpose, d.destination if isinstance(d.destination, str) else "")
            self._egress_decisions[key] = {f.name: f.category for f in fields}
        shape = (d.collection, len(fields), fields[0].name if fields else "")
        if shape not in self._shapes:  # learn the catalog's categories once per shape of decision
            self._shapes.add(shape)
            for f in fields:
                self._categories[(d.collection, f.name)] = f.category
        if not d.allowed:
            return
        subject = d.subject
        if subject is not None:
            if subject in self._erased:
                allowed = [f.name for f in fields if f.allowed]
                if allowed:
                    self.checked["erasure"] += 1
                    self._find(
                        "erasure",
                        index,
                        f"{d.principal} was allowed to {d.action} {d.collection}.{', '.join(allowed)} "
                        f"of subject {_short(subject)} after that subject's erasure receipt "
                        f"(entry {self._erased[subject]})",
                        related=[self._erased[subject]],
                        subject=subject,
                        principal=d.principal,
                    )
            if d.action == "erase" and d.record is None and all(f.allowed for f in fields):
                self._erase_decided.setdefault(subject, index)
        protected = [f.name for f in fields if f.allowed and f.category == _PROTECTED]
        if not protected or d.action == "egress":
            return
        known = self._principals.get(d.principal)
        if d.org == "parent" or (known is not None and known["org"] == "parent"):
            self.checked["parent-protected"] += 1
            self._find(
                "parent-protected",
                index,
                f"parent principal {d.principal} was allowed to {d.action} protected field(s) "
                f"{', '.join(f'{d.collection}.{n}' for n in protected)} of subject {_short(subject)}",
                principal=d.principal,
                fields=protected,
            )
        self._check_grant(index, d, protected)

    def _check_grant(self, index: int, d: DecisionEntry, protected: list[str]) -> None:
        self.checked["access-grant"] += 1
        grant_id = d.grant
        if grant_id is None:
            known = self._principals.get(d.principal)
            if (
                d.action == "write"
                and known is not None
                and known["org"] == "operator"
                and "service" in known["roles"]
                and d.purpose in known["purposes"]
            ):
                return  # a service ingesting for its purpose: services-write-for-registered-purpose
            self._find(
                "access-grant",
                index,
                f"{_what(d, protected)} cites no grant"
                + (
                    ""
                    if d.action in _NEEDS_GRANT
                    else f", and {d.principal} is not a service registered for purpose {d.purpose}"
                ),
                principal=d.principal,
                fields=protected,
            )
            return
        grant = self._grants.get(grant_id)
        if grant is None:
            self._find(
                "access-grant",
                index,
                f"{_what(d, protected)} cites grant {grant_id}, which no access.request.submitted or "
                "access.break_glass.opened entry before it created",
                grant=grant_id,
                principal=d.principal,
            )
            return
        key = (grant_id, grant.version, d.principal, d.region, d.collection, d.purpose, tuple(protected))
        problems = self._grant_checks.get(key)
        if problems is None:
            problems = self._static_problems(grant, d, protected)
            self._grant_checks[key] = problems
        time = d.time
        extra: list[str] = []
        if grant.ended is not None:
            extra.append(f"it was {grant.ended[2]} at entry {grant.ended[0]} ({grant.ended[1]})")
        elif grant.starts_at is None:
            if grant.approved is not None or grant.break_glass:
                extra.append("it had not started (no start time was recorded)")
        elif time < grant.starts_at:
            extra.append(f"it starts only at {grant.starts_at}")
        elif grant.expires_at is not None and time >= grant.expires_at:
            extra.append(f"it expired at {grant.expires_at}")
        if d.subject is None or (grant.bulk_limit is None and d.subject not in grant.subjects):
            extra.append(f"subject {_short(d.subject)} is not in its scope")
        elif grant.bulk_limit is not None and d.subject not in grant.bulk_subjects:
            grant.bulk_subjects.add(d.subject)
            if len(grant.bulk_subjects) > grant.bulk_limit and not grant.over_bulk:
                grant.over_bulk = True
                extra.append(
                    f"it covers at most {grant.bulk_limit} subjects and this is subject "
                    f"{len(grant.bulk_subjects)}"
                )
        if problems or extra:
            all_problems = [*problems, *extra]
            self._find(
                "access-grant",
                index,
                f"{_what(d, protected)} under grant {grant_id}: " + "; ".join(all_problems),
                related=grant.related(),
                grant=grant_id,
                principal=d.principal,
                fields=protected,
                problems=all_problems,
            )

    def _static_problems(self, grant: _Grant, d: DecisionEntry, protected: list[str]) -> list[str]:
        problems: list[str] = []
        if grant.requester != d.principal:
            problems.append(f"it belongs to {grant.requester}")
        if not grant.break_glass:
            if grant.approved is None:
                problems.append("it was never approved")
            elif grant.problem is not None:
                problems.append(grant.problem)
        elif grant.problem is not None:
            problems.append(grant.problem)
        if grant.region != d.region:
            problems.append(f"it is for region {grant.region}, not {d.region}")
        if d.collection not in grant.collections:
            problems.append(f"collection {d.collection} is not in its scope")
        outside = [n for n in protected if f"{d.collection}.{n}" not in grant.fields]
        if outside:
            problems.append(
                f"field(s) {', '.join(f'{d.collection}.{n}' for n in outside)} are not in its scope"
            )
        if grant.purpose != d.purpose:
            problems.append(f"it is for purpose {grant.purpose}, not {d.purpose}")
        return problems

    # -- governance -----------------------------------------------------------------------

    def _trust_root_installed(self, index: int, kind: str, time: str, body: dict[str, Any]) -> None:
        self.checked["governance-threshold"] += 1
        note = _need(body, "signed_note", str)
        version = _need(body, "version", int)
        proposal_id = body.get("proposal")
        previous = self.root
        if self._file_chain is not None:
            wanted = 1 if self._root_index is None or previous is None else previous.version + 1
            if version != wanted:
                self._find(
                    "governance-threshold",
                    index,
                    f"trust root version {version} installed at entry {index} where version {wanted} was due",
                    version=version,
                )
                return
            if version > len(self._file_chain):
                self._find(
                    "governance-threshold",
                    index,
                    f"trust root version {version} installed at entry {index} is not in the auditor's chain "
                    f"(which ends at version {len(self._file_chain)})",
                    version=version,
                )
                return
            expected = self._file_chain[version - 1]
            try:
                installed, _ = parse_signed_trust_root(note)
            except InvalidInput as exc:
                raise _Malformed(f"signed_note is not a signed trust root: {exc.message}") from exc
            if installed.document != expected.document:
                self._find(
                    "governance-threshold",
                    index,
                    f"trust root version {version} installed at entry {index} differs from version {version} "
                    "of the auditor's chain",
                    version=version,
                )
                return
            root = expected
        else:
            try:
                root = verify_next(previous, note)
            except (VerificationFailed, InvalidInput) as exc:
                self._find(
                    "governance-threshold",
                    index,
                    f"trust root version {version} installed at entry {index} does not verify against "
                    f"{'no earlier version' if previous is None else f'version {previous.version}'}: "
                    f"{exc.message}",
                    version=version,
                )
                return
        if hashlib.sha256(root.document).hexdigest() != body.get("document_sha256"):
            self._find(
                "governance-threshold",
                index,
                f"trust root version {root.version} at entry {index} records document_sha256 "
                f"{body.get('document_sha256')}, not the SHA-256 of its document",
                version=root.version,
            )
        if root.version > 1 or self._root_index is not None or proposal_id is not None:
            self._check_root_proposal(index, root, note, proposal_id)
        self.root = root
        self._root_index = index

    def _check_root_proposal(self, index: int, root: TrustRoot, note: str, proposal_id: Any) -> None:
        proposal = self._proposals.get(proposal_id) if isinstance(proposal_id, str) else None
        problem = None
        if proposal is None:
            problem = f"names proposal {proposal_id!r}, which the log never drafted"
        elif proposal.applied is None:
            problem = f"comes from proposal {proposal.id}, which was never applied"
        elif not proposal.valid:
            problem = f"comes from proposal {proposal.id}, which was applied below the board threshold"
        elif proposal.kind not in ("trust_root", "approver_roster"):
            problem = f"comes from proposal {proposal.id} of kind {proposal.kind}"
        else:
            try:
                carried = Note.parse(TrustRootBundle.parse(proposal.payload["trust_root"]).signed_note).text
            except (InvalidInput, KeyError, TypeError):
                carried = None
            if carried != Note.parse(note).text:
                problem = f"differs from the trust root proposal {proposal.id} carried"
        if problem is not None:
            self._find(
                "governance-threshold",
                index,
                f"trust root version {root.version} installed at entry {index} {problem}",
                related=[] if proposal is None else [proposal.drafted, proposal.applied or proposal.drafted],
                version=root.version,
            )

    def _proposal_drafted(self, index: int, kind: str, time: str, body: dict[str, Any]) -> None:
        proposal = parse_proposal_text(_need(body, "text", str))
        if hashlib.sha256(proposal.text.encode()).hexdigest() != body.get("proposal_sha256"):
            raise _Malformed("has a proposal_sha256 that is not the SHA-256 of its text")
        self._proposals.setdefault(
            proposal.id, _Proposal(proposal.id, proposal.kind.value, proposal.text, proposal.payload, index)
        )

    def _proposal_signed(self, index: int, kind: str, time: str, body: dict[str, Any]) -> None:
        proposal = self._proposals.get(_need(body, "proposal", str))
        if proposal is not None:
            proposal.signatures.append((index, NoteSignature.parse_line(_need(body, "signature", str))))

    def _board_count(
        self, text: str, signatures: Sequence[tuple[int, NoteSignature]]
    ) -> tuple[list[str], list[str]]:
        """Board members of the root in force whose signature over ``text`` verifies; and why others not."""
        root = self.root
        signed: list[str] = []
        ignored: list[str] = []
        if root is None:
            return signed, ["no trust root in force"]
        message = text.encode()
        for sig_index, sig in signatures:
            member = root.board_member(sig.name, sig.key_id)
            key = f"{sig.name}+{sig.key_id:08x}"
            if member is None:
                ignored.append(f"{key} (entry {sig_index}) is not a board key of version {root.version}")
                continue
            cache = (message, sig.signature, root.document)
            if cache not in self._verified:
                try:
                    member.verifier.verify(message, sig.signature)
                    self._verified[cache] = None
                except VerificationFailed:
                    self._verified[cache] = "bad"
            if self._verified[cache] is not None:
                ignored.append(f"{member.id}'s signature (entry {sig_index}) does not verify")
            elif member.id not in signed:
                signed.append(member.id)
        return signed, ignored

    def _proposal_applied(self, index: int, kind: str, time: str, body: dict[str, Any]) -> None:
        self.checked["governance-threshold"] += 1
        proposal_id = _need(body, "proposal", str)
        proposal = self._proposals.get(proposal_id)
        if proposal is None:
            self._find(
                "governance-threshold",
                index,
                f"proposal {proposal_id} is applied at entry {index}, but the log never drafted it",
                proposal=proposal_id,
            )
            return
        proposal.applied = index
        root = self.root
        signed, ignored = self._board_count(proposal.text, proposal.signatures)
        related = [proposal.drafted, *(i for i, _ in proposal.signatures)]
        if root is None:
            self._find(
                "governance-threshold",
                index,
                f"proposal {proposal.id} ({proposal.kind}) is applied at entry {index} "
                "with no trust root in force",
                related=related,
                proposal=proposal.id,
            )
            return
        if len(signed) < root.board_threshold:
            self._find(
                "governance-threshold",
                index,
                f"proposal {proposal.id} ({proposal.kind}) was applied with {len(signed)} valid board "
                f"signature(s) of trust root version {root.version}, whose board threshold is "
                f"{root.board_threshold} (signed: {', '.join(signed) or 'nobody'}"
                + (f"; not counted: {'; '.join(ignored)}" if ignored else "")
                + ")",
                related=related,
                proposal=proposal.id,
                signed=signed,
                threshold=root.board_threshold,
            )
            return
        proposal.valid = True
        if proposal.kind == "egress_exception":
            self._exceptions[proposal.id] = proposal

    def _policy_activated(self, index: int, kind: str, time: str, body: dict[str, Any]) -> None:
        self.checked["governance-threshold"] += 1
        version = _need(body, "version", str)
        text = _need(body, "text", str)
        actor = _need(body, "actor", str)
        self._policy_activations += 1
        self._policy_versions.add(version)
        if hashlib.sha256(text.encode()).hexdigest() != version:
            self._find(
                "governance-threshold",
                index,
                f"policy set activated at entry {index} names version {version[:16]}…, which is not the "
                "SHA-256 of its text",
                version=version,
            )
        if self._policy_activations == 1:
            return  # the initial policy set of a new deployment
        proposal_id = actor.removeprefix("proposal:") if actor.startswith("proposal:") else None
        proposal = None if proposal_id is None else self._proposals.get(proposal_id)
        problem = None
        if proposal is None:
            problem = f"by {actor!r} ({body.get('reason')!r}), not by an applied policy_set proposal"
        elif proposal.kind != "policy_set" or proposal.applied is None:
            problem = f"by proposal {proposal.id}, which is not an applied policy_set proposal"
        elif not proposal.valid:
            problem = f"by proposal {proposal.id}, which was applied below the board threshold"
        elif proposal.payload.get("policies") != text:
            problem = f"with a text that differs from the one proposal {proposal.id} carried"
        if problem is not None:
            self._find(
                "governance-threshold",
                index,
                f"policy set {version[:16]}… was activated at entry {index} {problem}",
                related=[] if proposal is None else [proposal.drafted],
                version=version,
                actor=actor,
            )

    # -- releases --------------------------------------------------------------------------

    def _release_submitted(self, index: int, kind: str, time: str, body: dict[str, Any]) -> None:
        release = _need(body, "release", str)
        text = Note.parse(_need(body, "submission", str)).text
        self._releases.setdefault(
            release, _Release(release, _need(body, "region", str), _need(body, "digest", str), text, index)
        )

    def _release_reviewed(self, index: int, kind: str, time: str, body: dict[str, Any]) -> None:
        release = self._releases.get(_need(body, "release", str))
        if release is not None:
            release.reviews.append((index, NoteSignature.parse_line(_need(body, "signature", str))))

    def _release_event(self, kind: str, time: str, body: dict[str, Any]) -> None:
        event = Event(kind, parse_time(time), body)
        key = (str(body.get("region")), str(body.get("digest")))
        self._release_events.setdefault(key, []).append(event)

    def _release_approved(self, index: int, kind: str, time: str, body: dict[str, Any]) -> None:
        self.checked["release-approved"] += 1
        release_id = _need(body, "release", str)
        release = self._releases.get(release_id)
        root = self.root
        problem = None
        related: list[int] = []
        if release is None or release.text is None:
            problem = "the log never showed its submission"
        elif root is None:
            problem = "no trust root was in force to name its reviewers"
        else:
            related = [release.submitted, *(i for i, _ in release.reviews)]
            message = release.text.encode()
            signed: list[str] = []
            for _, sig in release.reviews:
                member = root.reviewer(sig.name, sig.key_id)
                if member is None or member.id in signed:
                    continue
                try:
                    member.verifier.verify(message, sig.signature)
                except VerificationFailed:
                    continue
                signed.append(member.id)
            if len(signed) < root.reviewer_threshold:
                problem = (
                    f"it has {len(signed)} valid reviewer signature(s) of trust root version {root.version}, "
                    f"whose reviewer threshold is {root.reviewer_threshold}"
                )
        if problem is not None:
            self._find(
                "release-approved",
                index,
                f"release {release_id} is recorded as approved at entry {index}, but {problem}",
                related=related,
                release=release_id,
            )
            return
        self._release_event(kind, time, body)

    def _release_revoked(self, index: int, kind: str, time: str, body: dict[str, Any]) -> None:
        self._release_event(kind, time, body)

    def _release_deployed(self, index: int, kind: str, time: str, body: dict[str, Any]) -> None:
        self.checked["release-approved"] += 1
        event = Event(kind, parse_time(time), body)
        key = (str(body.get("region")), str(body.get("digest")))
        for violation in deployment_violations([*self._release_events.get(key, []), event]):
            self._find(
                "release-approved",
                index,
                f"{violation.deployer} deployed {violation.digest} in {violation.region} at {time}: "
                f"{violation.reason}",
                region=violation.region,
                digest=violation.digest,
                deployer=violation.deployer,
            )

    # -- egress and erasure ------------------------------------------------------------------

    def _egress_transfer(self, index: int, kind: str, time: str, body: dict[str, Any]) -> None:
        self.checked["egress-exception"] += 1
        region = _need(body, "region", str)
        collection = _need(body, "collection", str)
        purpose = _need(body, "purpose", str)
        destination = _need(body, "destination", str)
        names = _need(body, "fields", list)
        decided = self._egress_decisions.get((region, collection, purpose, destination), {})
        protected = [n for n in names if decided.get(n, self._categories.get((collection, n))) == _PROTECTED]
        if not protected:
            return
        qualified = [f"{collection}.{n}" for n in protected]
        exception_id = body.get("exception")
        what = f"protected field(s) {', '.join(qualified)} left region {region} for {destination} ({purpose})"
        exception = self._exceptions.get(exception_id) if isinstance(exception_id, str) else None
        problem = None
        if exception_id is None:
            problem = "with no exception"
        elif exception is None:
            proposal = self._proposals.get(exception_id) if isinstance(exception_id, str) else None
            problem = (
                f"under exception {exception_id}, which is not a board-approved egress_exception proposal"
                if proposal is None or proposal.applied is None or proposal.kind != "egress_exception"
                else f"under exception {exception_id}, applied below the board threshold"
            )
        else:
            p = exception.payload
            if (
                p.get("region") != region
                or p.get("purpose") != purpose
                or p.get("destination") != destination
            ):
                problem = (
                    f"under exception {exception_id}, which is for {p.get('region')} → "
                    f"{p.get('destination')} "
                    f"({p.get('purpose')})"
                )
            elif not set(qualified) <= set(p.get("fields", [])):
                problem = (
                    f"under exception {exception_id}, which covers only {', '.join(p.get('fields', []))}"
                )
            elif not (str(p.get("not_before")) <= time < str(p.get("not_after"))):
                problem = (
                    f"under exception {exception_id}, in force only from {p.get('not_before')} "
                    f"to {p.get('not_after')}"
                )
        if problem is not None:
            self._find(
                "egress-exception",
                index,
                f"{what} {problem}",
                related=[]
                if exception is None
                else [exception.drafted, exception.applied or exception.drafted],
                fields=qualified,
                exception=exception_id,
            )

    def _erasure(self, index: int, kind: str, time: str, body: dict[str, Any]) -> None:
        self.checked["erasure"] += 1
        subject = body.get("subject")
        destroyed = _need(body, "destroyed", list)
        missing = sorted({"data_key", "commitment_key"} - set(destroyed))
        if missing:
            self._find(
                "erasure",
                index,
                f"the erasure receipt of subject {_short(subject)} at entry {index} does not say "
                f"{' and '.join(missing)} {'was' if len(missing) == 1 else 'were'} destroyed",
                subject=subject,
            )
        if isinstance(subject, str):
            self._erased.setdefault(subject, index)

    # -- the end ---------------------------------------------------------------------------

    def finish(
        self,
        *,
        checkpoint: bytes | None = None,
        mirror_threshold: int | None = None,
    ) -> ReplayResult:
        """Deadline checks at ``now``, the checkpoint's witnessing, and the result."""
        now = self._now or self.last_time
        for grant in self._grants.values():
            if not grant.break_glass or grant.review_due is None:
                continue
            self.checked["break-glass-review"] += 1
            due = grant.review_due
            if grant.reviewed is not None:
                if grant.reviewed[1] > due:
                    self._find(
                        "break-glass-review",
                        grant.reviewed[0],
                        f"break-glass grant {grant.id} of {grant.requester} was reviewed at "
                        f"{grant.reviewed[1]}, "
                        f"after its review was due ({due})",
                        related=[grant.opened],
                        grant=grant.id,
                    )
            elif now is not None and now > due:
                self._find(
                    "break-glass-review",
                    grant.opened,
                    f"break-glass grant {grant.id} of {grant.requester} has no counted custodian review; it "
                    f"was due by {due} (now {now})",
                    related=grant.reviews,
                    grant=grant.id,
                )
        for subject, index in self._erase_decided.items():
            if subject not in self._erased:
                self._find(
                    "erasure",
                    index,
                    f"the erasure of subject {_short(subject)} was allowed at entry {index}, but no erasure "
                    "receipt (store.erasure) follows in the log",
                    severity="notice",
                    subject=subject,
                )
        witness = None if checkpoint is None else self._witness(checkpoint, mirror_threshold)
        return ReplayResult(
            entries=self.entries,
            findings=tuple(sorted(self.findings, key=_order)),
            checked=dict(self.checked),
            trust_source=self.trust_source,
            trust_root_version=None if self.root is None else self.root.version,
            first_time=self.first_time,
            last_time=self.last_time,
            now=now,
            witness=witness,
        )

    def _witness(self, note: bytes, mirror_threshold: int | None) -> WitnessStatus:
        self.checked["checkpoint-witnessed"] += 1
        root = self.root
        try:
            size = int(note.split(b"\n")[1])
            root_hash = note.split(b"\n")[2].decode()
        except (IndexError, ValueError, UnicodeDecodeError):
            size, root_hash = 0, ""
        if root is None:
            self._find(
                "checkpoint-witnessed",
                None,
                "no trust root is in force, so the checkpoint's log key and witnesses cannot be checked",
                severity="notice",
            )
            return WitnessStatus(size, root_hash, (), None, mirror_threshold)
        try:
            opened = open_checkpoint(
                note, origin=root.log_origin, log=root.log_verifier, witnesses=root.witness_verifiers
            )
        except (VerificationFailed, InvalidInput) as exc:
            self._find(
                "checkpoint-witnessed",
                None,
                f"the mirrored checkpoint does not verify with trust root version {root.version}'s log key "
                f"and witnesses: {exc.message}",
            )
            return WitnessStatus(size, root_hash, (), root.witness_threshold, mirror_threshold)
        cosigned = tuple(w.name for w in root.witnesses if opened.note.signed_by(w.verifier))
        if len(cosigned) < root.witness_threshold:
            lax = mirror_threshold is not None and mirror_threshold == 0
            self._find(
                "checkpoint-witnessed",
                None,
                f"the checkpoint of size {opened.checkpoint.size} is cosigned by {len(cosigned)} of the "
                f"{root.witness_threshold} witnesses trust root version {root.version} requires"
                + (
                    " (the mirror was synced with witness threshold 0: a split view is not excluded)"
                    if lax
                    else ""
                ),
                severity="notice" if lax else "violation",
                cosigned_by=list(cosigned),
                threshold=root.witness_threshold,
            )
        return WitnessStatus(
            opened.checkpoint.size,
            opened.checkpoint.root.hex(),
            cosigned,
            root.witness_threshold,
            mirror_threshold,
        )


def _what(d: DecisionEntry, protected: list[str]) -> str:
    fields = ", ".join(f"{d.collection}.{n}" for n in protected)
    return f"allowed protected {d.action} of {fields} (subject {_short(d.subject)}) by {d.principal}"


def _order(f: Finding) -> tuple[int, int, str]:
    return (-1 if f.index is None else f.index, list(INVARIANTS).index(f.invariant), f.message)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RempartError):
        return f"is malformed: {exc.message}"
    if isinstance(exc, KeyError):
        return f"lacks {exc.args[0]!r}"
    return str(exc) if isinstance(exc, _Malformed) else f"is malformed: {exc}"


def replay(
    entries: Iterable[tuple[int, bytes]],
    *,
    trust_chain: Sequence[bytes] | None = None,
    trust_source: str | None = None,
    now: datetime | None = None,
    checkpoint: bytes | None = None,
    mirror_threshold: int | None = None,
    observers: Sequence[ReplayObserver] = (),
) -> ReplayResult:
    """Replay ``(index, entry)`` pairs in log order and check every invariant (see the module doc)."""
    engine = InvariantReplay(trust_chain=trust_chain, trust_source=trust_source, now=now, observers=observers)
    feed = engine.feed
    for index, data in entries:
        feed(index, data)
    return engine.finish(checkpoint=checkpoint, mirror_threshold=mirror_threshold)
