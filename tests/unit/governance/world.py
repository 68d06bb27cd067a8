"""A small deployment for governance tests: real keys, a real log, a real database.

The event recorder is a real TransparencyLog over MemoryLogStorage wrapped by
LogRecorder; tests read the log back and assert on decoded events.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rempart.clock import ManualClock
from rempart.db import Database
from rempart.events import Event, LogRecorder
from rempart.governance import (
    ArtifactKind,
    Governance,
    StaticSubmitterKeys,
    Submitter,
    TrustRootBundle,
    release_text,
    sign_release,
    sign_trust_root,
)
from rempart.governance.trustroot import example_document
from rempart.log.memory import MemoryLogStorage
from rempart.log.sequencer import TransparencyLog
from rempart.tlog.cosignature import Cosigner
from rempart.tlog.note import Signer

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Principal:
    id: str
    org: str


@dataclass
class Keys:
    """Every key of the deployment; generated once per world."""

    board: list[Signer] = field(default_factory=lambda: [Signer.generate(f"board-{i}") for i in range(1, 6)])
    approvers: list[Signer] = field(
        default_factory=lambda: [Signer.generate(f"approver-{i}") for i in (1, 2)]
    )
    reviewers: list[Signer] = field(
        default_factory=lambda: [Signer.generate(f"reviewer-{i}") for i in range(1, 4)]
    )
    witness: Cosigner = field(default_factory=lambda: Cosigner.generate("witness-1"))
    log: Signer = field(default_factory=lambda: Signer.generate("log.rempart.example"))
    registry: Signer = field(default_factory=lambda: Signer.generate("registry.rempart.example"))
    engineer: Signer = field(default_factory=lambda: Signer.generate("engineer-1"))
    parent_engineer: Signer = field(default_factory=lambda: Signer.generate("parent-engineer-1"))


def document(
    keys: Keys,
    *,
    version: int = 1,
    board: list[Signer] | None = None,
    threshold: int = 3,
    approvers: list[Signer] | None = None,
    issued: datetime = START,
    regions: tuple[str, ...] = ("us", "row"),
    root_lifetime: timedelta = timedelta(days=365),
) -> bytes:
    return example_document(
        board=board if board is not None else keys.board,
        threshold=threshold,
        version=version,
        deployment="rempart.example",
        issued=issued,
        approvers=approvers if approvers is not None else keys.approvers,
        reviewers=keys.reviewers,
        reviewer_threshold=2,
        witnesses=[keys.witness],
        regions=regions,
        log=keys.log,
        registry=keys.registry,
        root_lifetime=root_lifetime,
    )


def signed_by(doc: bytes | TrustRootBundle, signers: list[Signer]) -> TrustRootBundle:
    bundle: bytes | TrustRootBundle = doc
    for s in signers:
        bundle = sign_trust_root(bundle, s)
    assert isinstance(bundle, TrustRootBundle)
    return bundle


class World:
    """Governance over ``db`` with a real log; ``events()`` decodes what was recorded."""

    def __init__(self, db: Database, *, keys: Keys | None = None, start: datetime = START) -> None:
        self.keys = keys or Keys()
        self.db = db
        self.clock = ManualClock(start)
        self.log = TransparencyLog(
            storage=MemoryLogStorage(), origin=self.keys.log.name, sign=lambda cp: cp.body().encode()
        )
        self.recorder = LogRecorder(self.log)
        self.submitters = StaticSubmitterKeys(
            [
                Submitter("engineer-1", "operator", self.keys.engineer.verifier()),
                Submitter("parent-engineer-1", "parent", self.keys.parent_engineer.verifier()),
            ]
        )
        self.gov = Governance(
            db=db, recorder=self.recorder, submitters=self.submitters, proposal_lifetime=timedelta(days=7)
        )

    def now(self) -> datetime:
        return self.clock.now()

    def bootstrap(self) -> None:
        bundle = signed_by(document(self.keys), self.keys.board[:3])
        self.gov.trust_roots.install(bundle, now=self.now())

    def events(self, prefix: str = "") -> list[Event]:
        storage = self.log.storage
        entries = storage.read_entries(0, storage.size())
        return [e for e in map(Event.decode, entries) if e.type.startswith(prefix)]

    def types(self) -> list[str]:
        return [e.type for e in self.events()]

    def submit(
        self,
        data: bytes,
        *,
        region: str = "us",
        kind: ArtifactKind = ArtifactKind.MODERATION_RULE_SET,
        name: str = "rules.json",
        signer: Signer | None = None,
        submitter: str = "engineer-1",
    ) -> Any:
        text = release_text(
            deployment="rempart.example",
            region=region,
            kind=kind,
            digest=hashlib.sha256(data).hexdigest(),
            length=len(data),
            name=name,
            metadata={"version": "1"},
            submitter=submitter,
            submitted=self.now(),
        )
        return self.gov.releases.submit(sign_release(text, [signer or self.keys.engineer]), now=self.now())

    def close(self) -> None:
        self.log.close()
        self.db.close()
