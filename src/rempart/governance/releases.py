r"""The release registry: engineering submits, custodian reviewers sign, deployers verify.

A release is the signed-note text ``rempart/release/v1\n<canonical JSON>\n``
naming one artifact for one region (kind, SHA-256 digest, length, name,
metadata) and its submitter. Two independent approvals are needed, and both
are in the log: the submitter's own signature (an ``operator`` principal;
a ``parent`` principal can never submit) and the signatures of a threshold of
the trust root's release reviewers over the same text. A reviewer may revoke
a release with a signed revocation; a revoked digest stays revoked.

The auditor's check (:func:`deployment_violations`) replays the log alone:
every ``release.deployed`` event must name a digest that was approved, and
not revoked, in that region at that time.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from rempart.clock import format_time, parse_time
from rempart.db import Database
from rempart.errors import Conflict, InvalidInput, NotFound, PermissionDenied, VerificationFailed
from rempart.events import Event, EventRecorder, canonical_json
from rempart.governance._notes import key_label, sign_or_extend
from rempart.governance.schema import migrate
from rempart.governance.trustroot import Member, TrustRoot, TrustRootSource
from rempart.log.sequencer import LogPosition
from rempart.store.records import REGION_NAME
from rempart.tlog.note import Note, NoteSignature, NoteSigner, Verifier

__all__ = [
    "RELEASE_HEADER",
    "REVOCATION_HEADER",
    "ArtifactKind",
    "DeploymentViolation",
    "DirectorySubmitterKeys",
    "PrincipalDirectory",
    "Release",
    "ReleaseRegistry",
    "ReleaseState",
    "ReleaseStatus",
    "StaticSubmitterKeys",
    "Submitter",
    "SubmitterKeys",
    "deployment_violations",
    "normalize_digest",
    "record_deployment",
    "release_text",
    "revocation_text",
    "sign_release",
]

RELEASE_HEADER = "rempart/release/v1"
REVOCATION_HEADER = "rempart/release-revocation/v1"
_DIGEST = re.compile(r"^(?:sha256:)?([0-9a-f]{64})\Z")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}\Z")
_PRINCIPAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}\Z")
_MAX_LENGTH = 2**53


class ArtifactKind(StrEnum):
    RECOMMENDATION_MODEL_CONFIG = "recommendation_model_config"
    MODERATION_RULE_SET = "moderation_rule_set"
    SOURCE_BUNDLE = "source_bundle"


class ReleaseState(StrEnum):
    APPROVED = "approved"
    PENDING = "pending"  # submitted, below the reviewer threshold
    REVOKED = "revoked"
    UNKNOWN = "unknown"


def normalize_digest(digest: str) -> str:
    """``sha256:<hex>`` or bare 64-hex → ``sha256:<hex>``; anything else is refused."""
    m = _DIGEST.fullmatch(digest.strip().lower()) if isinstance(digest, str) else None
    if m is None:
        raise InvalidInput(f"digest {str(digest)[:80]!r} is not sha256:<64 hex digits>")
    return f"sha256:{m.group(1)}"


@dataclass(frozen=True, slots=True)
class Submitter:
    """An engineer who may submit releases: their principal id, org and note key."""

    id: str
    org: str
    verifier: Verifier


class SubmitterKeys(Protocol):
    """Who a submitting principal is (issue 4's principals provide this)."""

    def submitter(self, principal_id: str) -> Submitter | None: ...


class _KnownPrincipal(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def org(self) -> str: ...

    @property
    def vkey(self) -> str | None: ...

    @property
    def disabled(self) -> bool: ...


class PrincipalDirectory(Protocol):
    """Issue 4's principal store, as far as releases need it: ``find(id)``."""

    def find(self, principal_id: str) -> _KnownPrincipal | None: ...


class DirectorySubmitterKeys:
    """Submitters read from the principal directory: enabled principals with a note key."""

    def __init__(self, directory: PrincipalDirectory) -> None:
        self._directory = directory

    def submitter(self, principal_id: str) -> Submitter | None:
        principal = self._directory.find(principal_id)
        if principal is None or principal.disabled or not principal.vkey:
            return None
        return Submitter(principal.id, principal.org, Verifier.parse(principal.vkey))


class StaticSubmitterKeys:
    """A fixed roster of submitters, e.g. read from the deployment's configuration."""

    def __init__(self, submitters: Iterable[Submitter]) -> None:
        self._by_id: dict[str, Submitter] = {}
        for s in submitters:
            if s.id in self._by_id:
                raise InvalidInput(f"submitter {s.id!r} is listed twice")
            self._by_id[s.id] = s

    def submitter(self, principal_id: str) -> Submitter | None:
        return self._by_id.get(principal_id)


@dataclass(frozen=True, slots=True)
class Release:
    """A submitted release: its document, its signed texts and where it stands."""

    id: str
    region: str
    kind: ArtifactKind
    digest: str
    length: int
    name: str
    metadata: Mapping[str, Any]
    submitter: str
    submitted: datetime
    text: str = field(repr=False)
    submission: bytes = field(repr=False)  # the text signed by the submitter
    reviews: tuple[tuple[str, str], ...] = ()  # (reviewer id, signature line)
    approved: datetime | None = None
    revoked: datetime | None = None
    revocation: bytes | None = field(default=None, repr=False)

    def signed_note(self) -> bytes:
        """The release text with the submitter's and every reviewer's signature: one stock note."""
        note = Note.parse(self.submission)
        reviews = tuple(NoteSignature.parse_line(line) for _, line in self.reviews)
        return Note(self.text, note.signatures + reviews).to_bytes()


@dataclass(frozen=True, slots=True)
class ReleaseStatus:
    """What ``rempart release verify`` answers: approved (with signers), pending, revoked or unknown."""

    state: ReleaseState
    digest: str
    region: str
    release: str | None = None
    name: str | None = None
    kind: str | None = None
    submitter: str | None = None
    reviewers: tuple[str, ...] = ()
    threshold: int | None = None
    revoked_by: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "digest": self.digest,
            "region": self.region,
            "release": self.release,
            "name": self.name,
            "kind": self.kind,
            "submitter": self.submitter,
            "reviewers": list(self.reviewers),
            "threshold": self.threshold,
            "revoked_by": self.revoked_by,
            "reason": self.reason,
        }


def release_text(
    *,
    deployment: str,
    region: str,
    kind: ArtifactKind | str,
    digest: str,
    length: int,
    name: str,
    metadata: Mapping[str, Any],
    submitter: str,
    submitted: datetime,
) -> str:
    """The text a submitter signs (and reviewers sign after them)."""
    try:
        kind = ArtifactKind(kind)
    except ValueError as exc:
        kinds = ", ".join(k.value for k in ArtifactKind)
        raise InvalidInput(f"artifact kind {kind!r} is unknown (kinds: {kinds})") from exc
    if not isinstance(length, int) or isinstance(length, bool) or not 0 <= length <= _MAX_LENGTH:
        raise InvalidInput(f"artifact length {length!r} is not a byte count")
    if not _NAME.fullmatch(name):
        raise InvalidInput(f"artifact name {name[:80]!r} does not match {_NAME.pattern}")
    if not _PRINCIPAL.fullmatch(submitter):
        raise InvalidInput(f"submitter id {submitter[:80]!r} does not match {_PRINCIPAL.pattern}")
    if not isinstance(metadata, Mapping):
        raise InvalidInput("release metadata must be an object")
    document = {
        "deployment": deployment,
        "region": region,
        "kind": kind.value,
        "digest": normalize_digest(digest),
        "length": length,
        "name": name,
        "metadata": dict(metadata),
        "submitter": submitter,
        "submitted": format_time(submitted),
    }
    return f"{RELEASE_HEADER}\n{canonical_json(document).decode('utf-8')}\n"


def _parse_release_text(text: str) -> dict[str, Any]:
    header, _, rest = text.partition("\n")
    if header != RELEASE_HEADER:
        raise InvalidInput(f"release text starts with {header[:60]!r}, expected {RELEASE_HEADER!r}")
    try:
        doc = json.loads(rest)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"release text is not one line of JSON: {exc}") from exc
    keys = {"deployment", "region", "kind", "digest", "length", "name", "metadata", "submitter", "submitted"}
    if not isinstance(doc, dict) or set(doc) != keys:
        found = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise InvalidInput(f"release document must have exactly the fields {sorted(keys)}; found {found}")
    for key in ("deployment", "region", "submitted", "submitter", "name", "digest", "kind"):
        if not isinstance(doc[key], str):
            raise InvalidInput(f"release {key}: expected a string")
    try:
        submitted = parse_time(doc["submitted"])
    except ValueError as exc:
        raise InvalidInput(f"release submitted: {doc['submitted']!r} is not an RFC 3339 time") from exc
    again = release_text(
        deployment=doc["deployment"],
        region=doc["region"],
        kind=doc["kind"],
        digest=doc["digest"],
        length=doc["length"],
        name=doc["name"],
        metadata=doc["metadata"],
        submitter=doc["submitter"],
        submitted=submitted,
    )
    if again != text:
        raise InvalidInput(
            "release text is not canonical (header, canonical JSON with sha256:<hex>, newline)"
        )
    doc["submitted"] = submitted
    return doc


def revocation_text(*, release: str, region: str, digest: str, reason: str) -> str:
    """The text a reviewer signs to revoke a release."""
    if not reason.strip():
        raise InvalidInput("a revocation needs a reason")
    document = {"release": release, "region": region, "digest": normalize_digest(digest), "reason": reason}
    return f"{REVOCATION_HEADER}\n{canonical_json(document).decode('utf-8')}\n"


def sign_release(text_or_note: str | bytes, signers: Sequence[NoteSigner]) -> bytes:
    """Sign a release (or revocation) text, or add signatures to a signed one."""
    return sign_or_extend(text_or_note, signers)


def _key(sig: NoteSignature) -> str:
    return key_label(sig.name, sig.key_id)


def _release_id(text: str) -> str:
    return "r-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class ReleaseRegistry:
    """Submissions, reviews and revocations of releases, in the control database."""

    def __init__(
        self,
        *,
        db: Database,
        recorder: EventRecorder,
        trust_roots: TrustRootSource,
        submitters: SubmitterKeys,
    ) -> None:
        migrate(db)
        self._db = db
        self._recorder = recorder
        self._trust_roots = trust_roots
        self._submitters = submitters

    # -- reading ---------------------------------------------------------------------

    def _load(self, where: str, params: Sequence[Any]) -> Release | None:
        row = self._db.query_one(
            "SELECT id, submission, approved, revoked, revocation FROM governance_releases WHERE " + where,
            params,
        )
        if row is None:
            return None
        release_id, submission, approved, revoked, revocation = row
        note = Note.parse(submission)
        doc = _parse_release_text(note.text)
        reviews = self._db.query_all(
            "SELECT reviewer, signature_line FROM governance_release_reviews WHERE release = ? "
            "ORDER BY signed, reviewer",
            (release_id,),
        )
        return Release(
            id=release_id,
            region=doc["region"],
            kind=ArtifactKind(doc["kind"]),
            digest=doc["digest"],
            length=doc["length"],
            name=doc["name"],
            metadata=doc["metadata"],
            submitter=doc["submitter"],
            submitted=doc["submitted"],
            text=note.text,
            submission=submission.encode("utf-8"),
            reviews=tuple((r[0], r[1]) for r in reviews),
            approved=parse_time(approved) if approved else None,
            revoked=parse_time(revoked) if revoked else None,
            revocation=revocation.encode("utf-8") if revocation else None,
        )

    def get(self, release_id: str) -> Release:
        release = self._load("id = ?", (release_id,))
        if release is None:
            raise NotFound(f"no release {release_id!r}")
        return release

    def find(self, digest: str, region: str) -> Release | None:
        return self._load("region = ? AND digest = ?", (region, normalize_digest(digest)))

    def releases(self, region: str | None = None) -> list[Release]:
        if region is None:
            rows = self._db.query_all("SELECT id FROM governance_releases ORDER BY submitted, id")
        else:
            rows = self._db.query_all(
                "SELECT id FROM governance_releases WHERE region = ? ORDER BY submitted, id", (region,)
            )
        return [self.get(r[0]) for r in rows]

    def approved(self, region: str) -> list[Release]:
        """Releases deployable in ``region`` now (threshold met under the trust root in force)."""
        root = self._trust_roots.current()
        return [r for r in self.releases(region) if self._status(r, root).state is ReleaseState.APPROVED]

    # -- submitting ----------------------------------------------------------------------

    def submit(self, signed_submission: bytes | str, *, now: datetime) -> Release:
        """Register a release signed by its submitter (an operator principal)."""
        note = Note.parse(signed_submission)
        doc = _parse_release_text(note.text)
        root = self._trust_roots.current()
        if doc["deployment"] != root.deployment:
            raise InvalidInput(
                f"release names deployment {doc['deployment']!r}; this deployment is {root.deployment!r}"
            )
        if doc["region"] not in root.regions:
            raise InvalidInput(
                f"release region {doc['region']!r} is not in trust root version {root.version} "
                f"(regions: {', '.join(root.regions)})"
            )
        submitter = self._submitters.submitter(doc["submitter"])
        if submitter is None:
            raise PermissionDenied(f"{doc['submitter']!r} is not a known submitter")
        if submitter.org == "parent":
            raise PermissionDenied(
                f"{submitter.id} is a parent principal: a release needs the signature of an operator "
                "submitter; a parent signature alone never makes a release"
            )
        if submitter.org != "operator":
            raise PermissionDenied(
                f"{submitter.id} is of org {submitter.org!r}; submitters are operator staff"
            )
        own = [
            s
            for s in note.signatures
            if s.name == submitter.verifier.name and s.key_id == submitter.verifier.key_id
        ]
        if not own:
            keys = ", ".join(_key(s) for s in note.signatures)
            raise VerificationFailed(
                f"the submission is not signed by its submitter {submitter.id}'s key "
                f"{submitter.verifier.vkey()} (signed by: {keys})"
            )
        try:
            submitter.verifier.verify(note.text.encode("utf-8"), own[0].signature)
        except VerificationFailed as exc:
            raise VerificationFailed(f"the submitter {submitter.id}'s signature does not verify") from exc
        submission = Note(note.text, (own[0],)).to_bytes()
        release_id = _release_id(note.text)
        event = Event(
            "governance.release.submitted",
            now,
            {
                "release": release_id,
                "region": doc["region"],
                "kind": doc["kind"],
                "name": doc["name"],
                "digest": doc["digest"],
                "length": doc["length"],
                "submitter": submitter.id,
                "submitter_org": submitter.org,
                "submitter_key": _key(own[0]),
                "trust_root_version": root.version,
                "submission": submission.decode("utf-8"),
            },
        )
        with self._db.transaction() as tx:
            clash = tx.execute(
                "SELECT id, revoked FROM governance_releases WHERE region = ? AND digest = ?",
                (doc["region"], doc["digest"]),
            ).fetchone()
            if clash is not None:
                state = "revoked" if clash[1] else "submitted"
                raise Conflict(
                    f"digest {doc['digest']} is already {state} for region {doc['region']} "
                    f"as release {clash[0]}"
                )
            tx.execute(
                "INSERT INTO governance_releases (id, region, digest, kind, name, length, submission, "
                "submitter, submitted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    release_id,
                    doc["region"],
                    doc["digest"],
                    doc["kind"],
                    doc["name"],
                    doc["length"],
                    submission.decode("utf-8"),
                    submitter.id,
                    format_time(now),
                ),
            )
            self._recorder.record(event)
        return self.get(release_id)

    # -- reviewing -------------------------------------------------------------------------

    def review(self, release_id: str, signed_note: bytes | str, *, now: datetime) -> Release:
        """Add custodian reviewer signatures over the release's exact text.

        The whole note is refused, nothing stored, if a line is by a key that
        is not a release reviewer of the trust root in force, is a duplicate
        or does not verify, or if the text is not the release's.
        """
        release = self.get(release_id)
        if release.revoked is not None:
            raise Conflict(f"release {release_id} was revoked; it cannot be reviewed")
        note = Note.parse(signed_note)
        if note.text != release.text:
            raise VerificationFailed(
                f"the signed note is over different bytes than release {release_id}; sign its exact text"
            )
        root = self._trust_roots.current()
        message = note.text.encode("utf-8")
        done = {r for r, _ in release.reviews}
        accepted: list[tuple[Member, NoteSignature]] = []
        for sig in note.signatures:
            if (sig.name, sig.key_id) == _submitter_ident(release):
                continue  # the submitter's own line travels with the text; it is not a review
            member = root.reviewer(sig.name, sig.key_id)
            if member is None:
                raise PermissionDenied(
                    f"key {_key(sig)} is not a release reviewer key of trust root version {root.version}; "
                    f"its signature on release {release_id} does not count",
                    key=_key(sig),
                )
            if member.id in done or any(m.id == member.id for m, _ in accepted):
                raise Conflict(f"reviewer {member.id} has already signed release {release_id}")
            if member.id == release.submitter:
                raise PermissionDenied(
                    f"{member.id} submitted release {release_id} and cannot also review it"
                )
            try:
                member.verifier.verify(message, sig.signature)
            except VerificationFailed as exc:
                raise VerificationFailed(
                    f"the signature by reviewer {member.id} ({_key(sig)}) does not verify over "
                    f"release {release_id}'s bytes"
                ) from exc
            accepted.append((member, sig))
        if not accepted:
            raise InvalidInput(f"the note carries no reviewer signature for release {release_id}")
        valid = self._valid_reviewers(release, root) + [m.id for m, _ in accepted]
        newly_approved = release.approved is None and len(valid) >= root.reviewer_threshold
        with self._db.transaction() as tx:
            for member, sig in accepted:
                tx.execute(
                    "INSERT INTO governance_release_reviews (release, reviewer, signature_line, signed) "
                    "VALUES (?, ?, ?, ?)",
                    (release_id, member.id, sig.line().rstrip("\n"), format_time(now)),
                )
                self._recorder.record(
                    Event(
                        "governance.release.reviewed",
                        now,
                        {
                            "release": release_id,
                            "region": release.region,
                            "digest": release.digest,
                            "reviewer": member.id,
                            "key": _key(sig),
                            "trust_root_version": root.version,
                            "signature": sig.line().rstrip("\n"),
                        },
                    )
                )
            if newly_approved:
                tx.execute(
                    "UPDATE governance_releases SET approved = ? WHERE id = ?", (format_time(now), release_id)
                )
                self._recorder.record(
                    Event(
                        "governance.release.approved",
                        now,
                        {
                            "release": release_id,
                            "region": release.region,
                            "kind": release.kind.value,
                            "name": release.name,
                            "digest": release.digest,
                            "submitter": release.submitter,
                            "reviewers": valid,
                            "threshold": root.reviewer_threshold,
                            "trust_root_version": root.version,
                        },
                    )
                )
        return self.get(release_id)

    def revoke(self, release_id: str, signed_revocation: bytes | str, *, now: datetime) -> Release:
        """Revoke a release with a reviewer-signed revocation text; recorded, permanent."""
        release = self.get(release_id)
        if release.revoked is not None:
            raise Conflict(f"release {release_id} is already revoked")
        note = Note.parse(signed_revocation)
        header, _, rest = note.text.partition("\n")
        if header != REVOCATION_HEADER:
            raise InvalidInput(f"a revocation starts with {REVOCATION_HEADER!r}, not {header[:60]!r}")
        try:
            doc = json.loads(rest)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"revocation is not one line of JSON: {exc}") from exc
        if not isinstance(doc, dict) or set(doc) != {"release", "region", "digest", "reason"}:
            raise InvalidInput("a revocation has exactly the fields release, region, digest, reason")
        expected = revocation_text(
            release=release.id, region=release.region, digest=release.digest, reason=str(doc["reason"])
        )
        if note.text != expected:
            raise VerificationFailed(
                f"the revocation does not name release {release_id} (region {release.region}, "
                f"digest {release.digest}) in canonical form"
            )
        root = self._trust_roots.current()
        signer: Member | None = None
        for sig in note.signatures:
            member = root.reviewer(sig.name, sig.key_id)
            if member is None:
                continue
            try:
                member.verifier.verify(note.text.encode("utf-8"), sig.signature)
            except VerificationFailed as exc:
                raise VerificationFailed(f"the revocation signature by {member.id} does not verify") from exc
            signer = member
            break
        if signer is None:
            keys = ", ".join(_key(s) for s in note.signatures)
            raise PermissionDenied(
                f"a revocation must be signed by a release reviewer of trust root version {root.version}; "
                f"it is signed by {keys}"
            )
        with self._db.transaction() as tx:
            updated = tx.execute(
                "UPDATE governance_releases SET revoked = ?, revocation = ? WHERE id = ? AND revoked IS NULL",
                (format_time(now), note.to_bytes().decode("utf-8"), release_id),
            ).rowcount
            if updated != 1:
                raise Conflict(f"release {release_id} is already revoked")
            self._recorder.record(
                Event(
                    "governance.release.revoked",
                    now,
                    {
                        "release": release_id,
                        "region": release.region,
                        "digest": release.digest,
                        "revoked_by": signer.id,
                        "reason": doc["reason"],
                        "revocation": note.to_bytes().decode("utf-8"),
                    },
                )
            )
        return self.get(release_id)

    # -- verifying -----------------------------------------------------------------------

    def _valid_reviewers(self, release: Release, root: TrustRoot) -> list[str]:
        message = release.text.encode("utf-8")
        valid: list[str] = []
        for _, line in release.reviews:
            sig = NoteSignature.parse_line(line)
            member = root.reviewer(sig.name, sig.key_id)
            if member is None or member.id in valid:
                continue  # a reviewer rotated out no longer counts
            member.verifier.verify(message, sig.signature)
            valid.append(member.id)
        return valid

    def _status(self, release: Release, root: TrustRoot) -> ReleaseStatus:
        base: dict[str, Any] = {
            "digest": release.digest,
            "region": release.region,
            "release": release.id,
            "name": release.name,
            "kind": release.kind.value,
            "submitter": release.submitter,
            "threshold": root.reviewer_threshold,
        }
        if release.revoked is not None and release.revocation is not None:
            revocation = Note.parse(release.revocation)
            doc = json.loads(revocation.text.partition("\n")[2])
            signer = revocation.signatures[0]
            member = root.reviewer(signer.name, signer.key_id)
            return ReleaseStatus(
                ReleaseState.REVOKED,
                **base,
                revoked_by=member.id if member else signer.name,
                reason=str(doc["reason"]),
            )
        valid = tuple(self._valid_reviewers(release, root))
        state = ReleaseState.APPROVED if len(valid) >= root.reviewer_threshold else ReleaseState.PENDING
        return ReleaseStatus(state, **base, reviewers=valid)

    def verify_release(self, digest: str, region: str) -> ReleaseStatus:
        """Approved (with its reviewers), pending, revoked, or unknown: for deployers and the CLI."""
        digest = normalize_digest(digest)
        root = self._trust_roots.current()
        if region not in root.regions:
            raise InvalidInput(f"region {region!r} is not in trust root version {root.version}")
        release = self.find(digest, region)
        if release is None:
            return ReleaseStatus(ReleaseState.UNKNOWN, digest, region)
        return self._status(release, root)


def _submitter_ident(release: Release) -> tuple[str, int]:
    sig = Note.parse(release.submission).signatures[0]
    return sig.name, sig.key_id


# -- deployments and the auditor's check ---------------------------------------------------


def record_deployment(
    recorder: EventRecorder, *, region: str, digest: str, deployer: str, now: datetime
) -> LogPosition:
    """A deploying system reports which digest it loaded, where: a ``release.deployed`` event."""
    if not _PRINCIPAL.fullmatch(deployer):
        raise InvalidInput(f"deployer {deployer[:80]!r} does not match {_PRINCIPAL.pattern}")
    if not REGION_NAME.fullmatch(region):
        raise InvalidInput(f"region {region[:40]!r} is not a region name")
    return recorder.record(
        Event(
            "release.deployed",
            now,
            {"region": region, "digest": normalize_digest(digest), "deployer": deployer},
        )
    )


@dataclass(frozen=True, slots=True)
class DeploymentViolation:
    """A deployed digest that was not an approved, unrevoked release there at that time."""

    time: datetime
    region: str
    digest: str
    deployer: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {
            "time": format_time(self.time),
            "region": self.region,
            "digest": self.digest,
            "deployer": self.deployer,
            "reason": self.reason,
        }


def deployment_violations(events: Iterable[Event]) -> list[DeploymentViolation]:
    """Replay the log (in log order) and report every deployment of an unapproved digest.

    Uses only ``governance.release.approved``, ``governance.release.revoked``
    and ``release.deployed`` events, so an auditor needs nothing but the log.
    """
    approved: dict[tuple[str, str], datetime] = {}
    revoked: dict[tuple[str, str], tuple[datetime, str]] = {}
    violations: list[DeploymentViolation] = []
    for event in events:
        body = event.body
        if event.type == "governance.release.approved":
            approved.setdefault((str(body["region"]), str(body["digest"])), event.time)
        elif event.type == "governance.release.revoked":
            revoked.setdefault((str(body["region"]), str(body["digest"])), (event.time, str(body["reason"])))
        elif event.type == "release.deployed":
            region, deployer = str(body.get("region")), str(body.get("deployer"))
            try:
                digest = normalize_digest(str(body.get("digest")))
            except InvalidInput:
                violations.append(
                    DeploymentViolation(
                        event.time, region, str(body.get("digest")), deployer, "malformed digest"
                    )
                )
                continue
            key = (region, digest)
            when = approved.get(key)
            if key in revoked and revoked[key][0] <= event.time:
                at, reason = revoked[key]
                violations.append(
                    DeploymentViolation(
                        event.time,
                        region,
                        digest,
                        deployer,
                        f"release revoked at {format_time(at)}: {reason}",
                    )
                )
            elif when is None or when > event.time:
                violations.append(
                    DeploymentViolation(
                        event.time,
                        region,
                        digest,
                        deployer,
                        f"no approved release of this digest in {region}",
                    )
                )
    return violations
