"""The installed chain of trust root versions, in the control database.

A version is installed only if it verifies against the version in force (a
threshold of the old board and of its own, for the note and for the TUF root),
and only once its ``governance.trust_root.installed`` event is durable in the
log. Installing is one transaction: the insert and the event, or neither.

A board member's signature on a version is a :class:`TrustRootBundle`: the
signed note (stock C2SP note tools verify it) plus the member's TUF signature
on the derived TUF root metadata (stock TUF clients verify that).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rempart.clock import format_time
from rempart.db import Database
from rempart.errors import Conflict, InvalidInput, NotFound, VerificationFailed
from rempart.events import Event, EventRecorder
from rempart.governance.schema import migrate
from rempart.governance.trustroot import (
    TrustRoot,
    count_signatures,
    parse_document,
    parse_signed_trust_root,
    sign_trust_root_note,
    trust_root_text,
    verify_chain,
    verify_next,
)
from rempart.governance.tuf_keys import sign_tuf_root, verify_tuf_root_signatures
from rempart.tlog.note import Signer

__all__ = ["TrustRootBundle", "TrustRootStore", "sign_trust_root"]

_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class TrustRootBundle:
    """A trust root version with its board signatures: the signed note and TUF root signatures."""

    signed_note: bytes
    tuf_signatures: Mapping[str, str] = field(default_factory=dict)

    @property
    def root(self) -> TrustRoot:
        """The validated document (signatures not yet verified)."""
        return parse_signed_trust_root(self.signed_note)[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "signed_note": self.signed_note.decode("utf-8"),
            "tuf_root_signatures": dict(sorted(self.tuf_signatures.items())),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def parse(cls, data: bytes | str | Mapping[str, Any]) -> TrustRootBundle:
        """Read a bundle (JSON); malformed parts are refused with what is wrong."""
        if isinstance(data, Mapping):
            obj: Any = data
        else:
            try:
                obj = json.loads(data)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InvalidInput(f"trust root bundle is not JSON: {exc}") from exc
        if not isinstance(obj, dict) or set(obj) != {"signed_note", "tuf_root_signatures"}:
            raise InvalidInput(
                "trust root bundle must be an object with exactly 'signed_note' and 'tuf_root_signatures'"
            )
        note, sigs = obj["signed_note"], obj["tuf_root_signatures"]
        if not isinstance(note, str):
            raise InvalidInput("trust root bundle signed_note: expected the signed note as a string")
        if not isinstance(sigs, dict):
            raise InvalidInput("trust root bundle tuf_root_signatures: expected an object")
        for keyid, sig in sigs.items():
            if not (isinstance(sig, str) and len(keyid) == 64 and set(keyid) <= _HEX):
                raise InvalidInput(
                    f"trust root bundle tuf_root_signatures: {keyid[:20]!r} is not a 64-hex "
                    "key id with a hex signature"
                )
            if not sig or not set(sig) <= _HEX:
                raise InvalidInput(f"trust root bundle: TUF signature by {keyid[:16]}… is not hex")
        bundle = cls(note.encode("utf-8"), dict(sigs))
        parse_signed_trust_root(bundle.signed_note)  # the document itself must be valid
        return bundle


def sign_trust_root(target: bytes | TrustRootBundle, signer: Signer) -> TrustRootBundle:
    """A board member signs a trust root version (a bare canonical document, or a bundle).

    Adds the member's note signature and their TUF signature on the derived root.
    """
    if isinstance(target, TrustRootBundle):
        root = target.root
        note = sign_trust_root_note(target.signed_note, [signer])
        sigs = dict(target.tuf_signatures)
    else:
        root = parse_document(target)
        note = sign_trust_root_note(trust_root_text(root.document), [signer])
        sigs = {}
    keyid, sig = sign_tuf_root(root, signer)
    sigs[keyid] = sig
    return TrustRootBundle(note, sigs)


class TrustRootStore:
    """The chain of installed trust root versions; :meth:`current` is the one in force."""

    def __init__(self, db: Database, recorder: EventRecorder) -> None:
        migrate(db)
        self._db = db
        self._recorder = recorder
        self._lock = threading.Lock()
        self._cached: TrustRoot | None = None

    def versions(self) -> list[TrustRootBundle]:
        rows = self._db.query_all(
            "SELECT signed_note, tuf_signatures FROM governance_trust_roots ORDER BY version"
        )
        return [TrustRootBundle(r[0].encode("utf-8"), json.loads(r[1])) for r in rows]

    def bundle(self, version: int) -> TrustRootBundle:
        row = self._db.query_one(
            "SELECT signed_note, tuf_signatures FROM governance_trust_roots WHERE version = ?",
            (version,),
        )
        if row is None:
            raise NotFound(f"no trust root version {version} is installed")
        return TrustRootBundle(row[0].encode("utf-8"), json.loads(row[1]))

    def chain(self) -> list[bytes]:
        """Every installed version's signed note, from version 1: what ``verify_chain`` takes."""
        return [b.signed_note for b in self.versions()]

    def current(self) -> TrustRoot:
        """The version in force, after verifying the whole stored chain (cached per version)."""
        row = self._db.query_one("SELECT MAX(version) FROM governance_trust_roots")
        latest = row[0] if row else None
        if latest is None:
            raise NotFound("no trust root is installed; install version 1 first")
        with self._lock:
            if self._cached is not None and self._cached.version == latest:
                return self._cached
        root = verify_chain(self.chain())
        with self._lock:
            self._cached = root
        return root

    def current_or_none(self) -> TrustRoot | None:
        try:
            return self.current()
        except NotFound:
            return None

    def check(self, bundle: TrustRootBundle) -> TrustRoot:
        """Verify that ``bundle`` is the next version for the chain in force, changing nothing."""
        previous = self.current_or_none()
        root = verify_next(previous, bundle.signed_note)
        verify_tuf_root_signatures(previous, root, bundle.tuf_signatures)
        return root

    def install(self, bundle: TrustRootBundle, *, now: datetime, proposal: str | None = None) -> TrustRoot:
        """Install the next version; refused (and nothing changed) unless it verifies.

        The insert and the log event commit together: if the log cannot record,
        the transaction rolls back and :class:`~rempart.errors.AuditUnavailable`
        propagates (fail closed).
        """
        previous = self.current_or_none()
        if previous is not None and proposal is None:
            raise Conflict(
                f"trust root version {previous.version} is in force: a new version is installed "
                "only by applying a board proposal of kind trust_root or approver_roster"
            )
        root = self.check(bundle)
        _, note = parse_signed_trust_root(bundle.signed_note)
        own = count_signatures(note, root.board, root.board_threshold, what="trust root")
        old = (
            count_signatures(note, previous.board, previous.board_threshold, what="trust root")
            if previous
            else None
        )
        event = Event(
            "governance.trust_root.installed",
            now,
            {
                "version": root.version,
                "deployment": root.deployment,
                "document_sha256": hashlib.sha256(root.document).hexdigest(),
                "board_signers": list(own.signed),
                "previous_board_signers": list(old.signed) if old else [],
                "proposal": proposal,
                "signed_note": bundle.signed_note.decode("utf-8"),
            },
        )
        with self._db.transaction() as tx:
            existing = tx.execute(
                "SELECT 1 FROM governance_trust_roots WHERE version = ?", (root.version,)
            ).fetchone()
            if existing is not None:
                raise Conflict(f"trust root version {root.version} is already installed")
            tx.execute(
                "INSERT INTO governance_trust_roots "
                "(version, signed_note, tuf_signatures, installed, proposal) VALUES (?, ?, ?, ?, ?)",
                (
                    root.version,
                    bundle.signed_note.decode("utf-8"),
                    json.dumps(dict(sorted(bundle.tuf_signatures.items()))),
                    format_time(now),
                    proposal,
                ),
            )
            self._recorder.record(event)
        with self._lock:
            self._cached = root
        return root

    def verify_stored(self) -> TrustRoot:
        """Re-verify the whole stored chain, notes and TUF roots, as an auditor would."""
        previous: TrustRoot | None = None
        for bundle in self.versions():
            root = verify_next(previous, bundle.signed_note)
            verify_tuf_root_signatures(previous, root, bundle.tuf_signatures)
            previous = root
        if previous is None:
            raise VerificationFailed("no trust root is installed")
        return previous
