r"""The trust root: one board-signed, versioned document naming every key and threshold.

A trust root document is canonical JSON (see :func:`rempart.events.canonical_json`);
what is signed is the C2SP signed-note text ``rempart/trust-root/v1\n<json>\n``,
so anyone can re-check a version with a stock note verifier and the board's keys.
Version 1 must be signed by a threshold of its own board; version N+1 by a
threshold of version N's board *and* a threshold of its own (TUF root rotation).

>>> from datetime import UTC, datetime
>>> from rempart.tlog.note import Signer
>>> board = [Signer.generate(f"board-{i}") for i in range(3)]
>>> doc = example_document(board=board, threshold=2)
>>> signed = sign_trust_root_note(trust_root_text(doc), board[:2])
>>> verify_chain([signed]).board_threshold
2
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from rempart.clock import format_time, parse_time
from rempart.errors import InvalidInput, VerificationFailed
from rempart.events import canonical_json
from rempart.governance._notes import key_label, sign_or_extend
from rempart.store.records import REGION_NAME
from rempart.tlog.cosignature import CosignatureVerifier, Cosigner
from rempart.tlog.note import Note, NoteSigner, Signer, Verifier

__all__ = [
    "TRUST_ROOT_HEADER",
    "ApproverRoster",
    "Member",
    "SignatureCount",
    "TrustRoot",
    "TrustRootApproverRoster",
    "TrustRootSource",
    "Witness",
    "count_signatures",
    "example_document",
    "parse_document",
    "parse_signed_trust_root",
    "sign_trust_root_note",
    "trust_root_text",
    "verify_chain",
    "verify_next",
]

TRUST_ROOT_HEADER = "rempart/trust-root/v1"

_FIELDS = frozenset(
    {
        "version",
        "deployment",
        "issued",
        "log",
        "board",
        "custodian_approvers",
        "release_reviewers",
        "witnesses",
        "regions",
        "registry",
    }
)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}\Z")
_DEPLOYMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}\Z")
_MAX_MEMBERS = 64  # a note carries at most 100 signatures: two boards must fit


@dataclass(frozen=True, slots=True)
class Member:
    """A named holder of a role key: a board member, a custodian approver or a reviewer."""

    id: str
    org: str
    vkey: str
    verifier: Verifier = field(compare=False, repr=False)

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "org": self.org, "vkey": self.vkey}


@dataclass(frozen=True, slots=True)
class Witness:
    """A witness that cosigns the log's checkpoints (C2SP tlog-cosignature key)."""

    name: str
    vkey: str
    url: str
    verifier: CosignatureVerifier = field(compare=False, repr=False)

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "vkey": self.vkey, "url": self.url}


@dataclass(frozen=True, slots=True)
class SignatureCount:
    """Who of a roster signed a text: for threshold checks and for display (``missing``)."""

    signed: tuple[str, ...]
    unsigned: tuple[str, ...]
    threshold: int

    @property
    def met(self) -> bool:
        return len(self.signed) >= self.threshold

    @property
    def missing(self) -> int:
        return max(0, self.threshold - len(self.signed))


@dataclass(frozen=True, slots=True)
class TrustRoot:
    """One validated trust root version: the keys and thresholds every room reads.

    ``document`` is the canonical JSON the board signed; every other field is
    derived from it, so two equal documents give equal values.
    """

    version: int
    deployment: str
    issued: datetime
    log_origin: str
    log_verifier: Verifier
    board: tuple[Member, ...]
    board_threshold: int
    custodian_approvers: tuple[Member, ...]
    release_reviewers: tuple[Member, ...]
    reviewer_threshold: int
    witnesses: tuple[Witness, ...]
    witness_threshold: int
    regions: tuple[str, ...]
    registry_verifier: Verifier
    root_expires: datetime
    document: bytes = field(repr=False)

    @property
    def text(self) -> str:
        """The signed-note text of this version (header line, canonical JSON, newline)."""
        return trust_root_text(self.document)

    @property
    def board_verifiers(self) -> tuple[Verifier, ...]:
        return tuple(m.verifier for m in self.board)

    @property
    def reviewer_verifiers(self) -> tuple[Verifier, ...]:
        return tuple(m.verifier for m in self.release_reviewers)

    @property
    def approver_roster(self) -> Mapping[str, Verifier]:
        """Custodian approvers now: principal id → verifier key."""
        return {m.id: m.verifier for m in self.custodian_approvers}

    @property
    def witness_verifiers(self) -> tuple[CosignatureVerifier, ...]:
        return tuple(w.verifier for w in self.witnesses)

    def board_member(self, name: str, key_id: int) -> Member | None:
        """The board member whose key has this note name and id, if any."""
        return _find(self.board, name, key_id)

    def reviewer(self, name: str, key_id: int) -> Member | None:
        return _find(self.release_reviewers, name, key_id)

    def is_approver(self, principal_id: str, vkey: str) -> bool:
        return any(m.id == principal_id and m.vkey == vkey for m in self.custodian_approvers)

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.document)
        return value


def _find(members: Iterable[Member], name: str, key_id: int) -> Member | None:
    for m in members:
        if m.verifier.name == name and m.verifier.key_id == key_id:
            return m
    return None


# -- parsing and validation ---------------------------------------------------


def _object(value: Any, path: str, keys: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"trust root {path}: expected an object, got {type(value).__name__}")
    unknown = sorted(set(value) - keys)
    if unknown:
        raise InvalidInput(f"trust root {path}: unknown field(s) {', '.join(unknown)}")
    absent = sorted(keys - set(value))
    if absent:
        raise InvalidInput(f"trust root {path}: missing field(s) {', '.join(absent)}")
    return value


def _string(value: Any, path: str, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"trust root {path}: expected a non-empty string")
    if pattern is not None and not pattern.fullmatch(value):
        raise InvalidInput(f"trust root {path}: {value[:80]!r} does not match {pattern.pattern}")
    return value


def _int(value: Any, path: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"trust root {path}: expected an integer, got {json.dumps(value)[:40]}")
    return value


def _time(value: Any, path: str) -> datetime:
    text = _string(value, path)
    try:
        when = parse_time(text)
    except ValueError as exc:
        raise InvalidInput(f"trust root {path}: {text!r} is not an RFC 3339 time ({exc})") from exc
    if format_time(when) != text:
        raise InvalidInput(f"trust root {path}: write times as {format_time(when)!r} (UTC, microseconds, Z)")
    return when


def _verifier(value: Any, path: str) -> Verifier:
    text = _string(value, path)
    try:
        return Verifier.parse(text)
    except InvalidInput as exc:
        raise InvalidInput(f"trust root {path}: malformed verifier key: {exc}") from exc


def _threshold(value: Any, path: str, count: int) -> int:
    threshold = _int(value, path)
    if not 1 <= threshold <= count:
        raise InvalidInput(
            f"trust root {path}: threshold {threshold} is not in 1..{count} (the number of members)"
        )
    return threshold


def _members(value: Any, path: str, org: str) -> tuple[Member, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"trust root {path}: expected a non-empty list of members")
    if len(value) > _MAX_MEMBERS:
        raise InvalidInput(f"trust root {path}: {len(value)} members, at most {_MAX_MEMBERS}")
    members: list[Member] = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        obj = _object(item, where, {"id", "org", "vkey"})
        member_id = _string(obj["id"], f"{where}.id", _ID)
        member_org = _string(obj["org"], f"{where}.org")
        if member_org == "parent":
            raise InvalidInput(
                f"trust root {where}: member {member_id!r} is of org 'parent'; the foreign "
                f"parent may hold no board or custodian role"
            )
        if member_org != org:
            raise InvalidInput(
                f"trust root {where}: member {member_id!r} is of org {member_org!r}; "
                f"{path} members must be of org {org!r}"
            )
        if any(m.id == member_id for m in members):
            raise InvalidInput(f"trust root {where}: member id {member_id!r} is listed twice")
        verifier = _verifier(obj["vkey"], f"{where}.vkey")
        members.append(Member(member_id, member_org, verifier.vkey(), verifier))
    return tuple(members)


def _witnesses(value: Any) -> tuple[tuple[Witness, ...], int]:
    obj = _object(value, "witnesses", {"members", "threshold"})
    items = obj["members"]
    if not isinstance(items, list) or not items:
        raise InvalidInput("trust root witnesses.members: expected a non-empty list of witnesses")
    witnesses: list[Witness] = []
    for i, item in enumerate(items):
        where = f"witnesses.members[{i}]"
        w = _object(item, where, {"name", "vkey", "url"})
        name = _string(w["name"], f"{where}.name", _ID)
        vkey = _string(w["vkey"], f"{where}.vkey")
        try:
            verifier = CosignatureVerifier.parse(vkey)
        except InvalidInput as exc:
            raise InvalidInput(f"trust root {where}.vkey: malformed cosignature key: {exc}") from exc
        url = _string(w["url"], f"{where}.url")
        if not url.startswith(("https://", "http://")):
            raise InvalidInput(f"trust root {where}.url: {url[:80]!r} is not an http(s) URL")
        if any(x.name == name for x in witnesses):
            raise InvalidInput(f"trust root {where}: witness name {name!r} is listed twice")
        witnesses.append(Witness(name, verifier.vkey(), url, verifier))
    return tuple(witnesses), _threshold(obj["threshold"], "witnesses.threshold", len(witnesses))


def _check_unique_keys(root: TrustRoot) -> None:
    """A key counts once: no public key may appear twice anywhere in the document."""
    seen: dict[bytes, str] = {root.log_verifier.public_key: "log.vkey"}

    def see(key: bytes, where: str) -> None:
        other = seen.setdefault(key, where)
        if other != where:
            raise InvalidInput(f"trust root {where}: duplicate key, already used by {other}")

    see(root.registry_verifier.public_key, "registry.vkey")
    for role, members in (
        ("board", root.board),
        ("custodian_approvers", root.custodian_approvers),
        ("release_reviewers", root.release_reviewers),
    ):
        names: set[str] = set()
        for m in members:
            if m.verifier.name in names:
                raise InvalidInput(
                    f"trust root {role}: two members use the key name {m.verifier.name!r}; "
                    "note signatures are matched by key name, so names must differ"
                )
            names.add(m.verifier.name)
            where = f"{role} member {m.id!r}"
            # An approver may also be a reviewer with the same key: both are custodian roles.
            if role == "release_reviewers":
                approver = next(
                    (a for a in root.custodian_approvers if a.verifier.public_key == m.verifier.public_key),
                    None,
                )
                if approver is not None and approver.id == m.id:
                    continue
            see(m.verifier.public_key, where)
    for w in root.witnesses:
        see(w.verifier.public_key, f"witness {w.name!r}")


def parse_document(data: bytes | str | Mapping[str, Any]) -> TrustRoot:
    """Validate a trust root document; any mistake raises InvalidInput naming its field.

    Bytes or text must already be canonical JSON (what is signed is exactly
    what is stored); a mapping is canonicalised.
    """
    if isinstance(data, Mapping):
        obj: Any = data
        document = canonical_json(data)
    else:
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        try:
            obj = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"trust root is not UTF-8 JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise InvalidInput("trust root is not a JSON object")
        document = canonical_json(obj)
        if document != raw:
            raise InvalidInput("trust root document is not canonical JSON (sorted keys, no spaces)")
    top = _object(obj, "document", set(_FIELDS))
    version = _int(top["version"], "version")
    if version < 1:
        raise InvalidInput(f"trust root version: {version} is not a positive integer")
    log = _object(top["log"], "log", {"origin", "vkey"})
    log_verifier = _verifier(log["vkey"], "log.vkey")
    origin = _string(log["origin"], "log.origin")
    if origin != log_verifier.name:
        raise InvalidInput(
            f"trust root log.origin: {origin!r} differs from the log key's name {log_verifier.name!r}"
        )
    board_obj = _object(top["board"], "board", {"members", "threshold"})
    board = _members(board_obj["members"], "board.members", "board")
    reviewers_obj = _object(top["release_reviewers"], "release_reviewers", {"members", "threshold"})
    reviewers = _members(reviewers_obj["members"], "release_reviewers.members", "custodian")
    approvers = _members(top["custodian_approvers"], "custodian_approvers", "custodian")
    witnesses, witness_threshold = _witnesses(top["witnesses"])
    regions_value = top["regions"]
    if not isinstance(regions_value, list) or not regions_value:
        raise InvalidInput("trust root regions: expected a non-empty list of region names")
    regions = tuple(_string(r, f"regions[{i}]", REGION_NAME) for i, r in enumerate(regions_value))
    if len(set(regions)) != len(regions):
        raise InvalidInput("trust root regions: a region is listed twice")
    issued = _time(top["issued"], "issued")
    registry = _object(top["registry"], "registry", {"vkey", "root_expires"})
    root_expires = _time(registry["root_expires"], "registry.root_expires")
    if root_expires <= issued:
        raise InvalidInput("trust root registry.root_expires: must be after issued")
    root = TrustRoot(
        version=version,
        deployment=_string(top["deployment"], "deployment", _DEPLOYMENT),
        issued=issued,
        log_origin=origin,
        log_verifier=log_verifier,
        board=board,
        board_threshold=_threshold(board_obj["threshold"], "board.threshold", len(board)),
        custodian_approvers=approvers,
        release_reviewers=reviewers,
        reviewer_threshold=_threshold(
            reviewers_obj["threshold"], "release_reviewers.threshold", len(reviewers)
        ),
        witnesses=witnesses,
        witness_threshold=witness_threshold,
        regions=regions,
        registry_verifier=_verifier(registry["vkey"], "registry.vkey"),
        root_expires=root_expires,
        document=document,
    )
    _check_unique_keys(root)
    return root


def trust_root_text(document: bytes) -> str:
    """The signed-note text for a canonical trust root document."""
    return f"{TRUST_ROOT_HEADER}\n{document.decode('utf-8')}\n"


def parse_signed_trust_root(data: bytes | str) -> tuple[TrustRoot, Note]:
    """Split a signed trust root note into its validated document and its (unverified) signatures."""
    note = Note.parse(data)
    header, _, rest = note.text.partition("\n")
    if header != TRUST_ROOT_HEADER:
        raise InvalidInput(f"signed trust root starts with {header[:60]!r}, expected {TRUST_ROOT_HEADER!r}")
    if not rest.endswith("\n") or "\n" in rest[:-1]:
        raise InvalidInput("signed trust root text must be the header line and one line of JSON")
    return parse_document(rest[:-1].encode("utf-8")), note


def count_signatures(note: Note, members: Sequence[Member], threshold: int, *, what: str) -> SignatureCount:
    """Count the distinct members of a roster whose signature on the note verifies.

    Signatures from keys outside the roster are ignored (they may belong to
    the other board of a rotation); a roster key whose signature does not
    verify raises :class:`VerificationFailed` naming the member, because a
    forged signature is never a formatting slip.
    """
    message = note.text.encode("utf-8")
    signed: list[str] = []
    for sig in note.signatures:
        member = _find(members, sig.name, sig.key_id)
        if member is None:
            continue
        try:
            member.verifier.verify(message, sig.signature)
        except VerificationFailed as exc:
            raise VerificationFailed(
                f"{what}: the signature by {member.id} ({key_label(sig.name, sig.key_id)}) does not verify",
                member=member.id,
            ) from exc
        if member.id not in signed:
            signed.append(member.id)
    unsigned = tuple(m.id for m in members if m.id not in signed)
    return SignatureCount(tuple(signed), unsigned, threshold)


def _require(count: SignatureCount, what: str, version: int, note: Note) -> None:
    if count.met:
        return
    keys = ", ".join(key_label(s.name, s.key_id) for s in note.signatures) or "none"
    raise VerificationFailed(
        f"trust root version {version}: {len(count.signed)} of {count.threshold} required "
        f"signatures from {what}; {count.missing} missing (signed by keys: {keys})",
        version=version,
        signed=list(count.signed),
        missing=count.missing,
    )


def verify_next(previous: TrustRoot | None, signed: bytes | str) -> TrustRoot:
    """Verify one version against the version before it (``None`` for version 1)."""
    root, note = parse_signed_trust_root(signed)
    expected = 1 if previous is None else previous.version + 1
    if root.version != expected:
        raise VerificationFailed(
            f"trust root version {root.version} found where version {expected} was expected",
            version=root.version,
        )
    if previous is not None:
        if root.deployment != previous.deployment:
            raise VerificationFailed(
                f"trust root version {root.version} names deployment {root.deployment!r}, "
                f"version {previous.version} names {previous.deployment!r}"
            )
        if root.issued < previous.issued:
            raise VerificationFailed(
                f"trust root version {root.version} was issued before version {previous.version}"
            )
        old = count_signatures(
            note,
            previous.board,
            previous.board_threshold,
            what=f"trust root version {root.version}",
        )
        _require(old, f"the board of version {previous.version}", root.version, note)
    own = count_signatures(note, root.board, root.board_threshold, what=f"trust root version {root.version}")
    _require(own, f"its own board (version {root.version})", root.version, note)
    return root


def verify_chain(documents: Sequence[bytes | str]) -> TrustRoot:
    """Verify every version from 1 in order and return the one in force (the last)."""
    if not documents:
        raise VerificationFailed("no trust root: the chain is empty")
    current: TrustRoot | None = None
    for signed in documents:
        current = verify_next(current, signed)
    if current is None:  # pragma: no cover - the loop ran at least once
        raise VerificationFailed("no trust root")
    return current


def sign_trust_root_note(signed_or_text: bytes | str, signers: Sequence[NoteSigner]) -> bytes:
    """Add board signatures to a trust root: a bare text is signed, a signed note is extended."""
    return sign_or_extend(signed_or_text, signers)


class TrustRootSource(Protocol):
    """Where a room reads the trust root in force (never from its own configuration)."""

    def current(self) -> TrustRoot: ...


class ApproverRoster(Protocol):
    """Issue 4's approver roster port: is this principal, with this key, a custodian approver now?"""

    def is_approver(self, principal_id: str, vkey: str) -> bool: ...


class TrustRootApproverRoster:
    """The approver roster read from the trust root in force, on every call."""

    def __init__(self, source: TrustRootSource) -> None:
        self._source = source

    def is_approver(self, principal_id: str, vkey: str) -> bool:
        return self._source.current().is_approver(principal_id, vkey)


def example_document(
    *,
    board: Sequence[Signer],
    threshold: int,
    version: int = 1,
    deployment: str = "rempart.example",
    issued: datetime | None = None,
    approvers: Sequence[Signer] = (),
    reviewers: Sequence[Signer] = (),
    reviewer_threshold: int = 1,
    witnesses: Sequence[Cosigner] = (),
    regions: Sequence[str] = ("us",),
    log: Signer | None = None,
    registry: Signer | None = None,
    root_lifetime: timedelta = timedelta(days=365),
) -> bytes:
    """Build a valid canonical document from keys: for bootstrapping and tests.

    Missing roles get freshly generated keys (whose private halves are dropped),
    so the result always validates.
    """
    issued = issued or datetime(2026, 1, 1, tzinfo=UTC)
    approvers = list(approvers) or [Signer.generate("approver-1")]
    reviewers = list(reviewers) or [Signer.generate("reviewer-1")]
    witnesses = list(witnesses) or [Cosigner.generate("witness-1")]
    log = log or Signer.generate("log.example")
    registry = registry or Signer.generate("registry.example")
    doc = {
        "version": version,
        "deployment": deployment,
        "issued": format_time(issued),
        "log": {"origin": log.name, "vkey": log.vkey()},
        "board": {
            "members": [{"id": s.name, "org": "board", "vkey": s.vkey()} for s in board],
            "threshold": threshold,
        },
        "custodian_approvers": [{"id": s.name, "org": "custodian", "vkey": s.vkey()} for s in approvers],
        "release_reviewers": {
            "members": [{"id": s.name, "org": "custodian", "vkey": s.vkey()} for s in reviewers],
            "threshold": reviewer_threshold,
        },
        "witnesses": {
            "members": [
                {"name": w.name, "vkey": w.vkey(), "url": f"https://{w.name}.example/"} for w in witnesses
            ],
            "threshold": 1,
        },
        "regions": list(regions),
        "registry": {"vkey": registry.vkey(), "root_expires": format_time(issued + root_lifetime)},
    }
    return parse_document(doc).document
