"""The cast of the access tests: a real log, a real database, real policies and keys.

Everything here is the real component: a :class:`TransparencyLog` on
in-memory storage behind :class:`LogRecorder`, a SQLite or PostgreSQL
control database, the shipped Cedar policies, Ed25519 note keys.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from rempart.access import (
    AccessRules,
    AccessService,
    ApprovalDecision,
    GrantStore,
    Principal,
    PrincipalRoster,
    PrincipalStore,
    RequestRecord,
    ReviewVerdict,
    Scope,
    TokenStore,
    sign_approval,
    sign_review,
)
from rempart.clock import ManualClock
from rempart.db import Database
from rempart.events import Event, LogRecorder
from rempart.log.memory import MemoryLogStorage
from rempart.log.sequencer import TransparencyLog
from rempart.policy import DEFAULT_POLICIES, CompiledPolicies, PolicyEngine, PolicySchema
from rempart.tlog.checkpoint import sign_checkpoint
from rempart.tlog.note import Signer

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LOG_SIGNER = Signer.generate("test.example/log")

SIGNERS: dict[str, Signer] = {
    name: Signer.generate(f"keys.example/{name.replace(':', '-')}")
    for name in (
        "operator:alice",
        "operator:olga",
        "custodian:carol",
        "custodian:dan",
        "custodian:erin",
        "custodian:fay",
        "parent:bob",
    )
}


def subject(name: str) -> str:
    """A stand-in subject commitment: 64 hex digits, as events.subject_commitment makes."""
    return hashlib.sha256(f"subject:{name}".encode()).hexdigest()


def cast() -> list[Principal]:
    def vkey(pid: str) -> str | None:
        return SIGNERS[pid].vkey() if pid in SIGNERS else None

    people = [
        ("operator:alice", "operator", "US", "cleared", {"support"}, set()),
        ("operator:olga", "operator", "US", "cleared", {"support", "approver"}, set()),
        ("operator:oscar", "operator", "US", "pending", {"support"}, set()),
        ("operator:svc-ingest", "operator", "US", "cleared", {"service"}, {"customer_support"}),
        ("parent:bob", "parent", "CN", "cleared", {"engineer", "approver"}, {"interoperability"}),
        ("custodian:carol", "custodian", "US", "cleared", {"approver"}, set()),
        ("custodian:dan", "custodian", "US", "cleared", {"approver"}, set()),
        ("custodian:erin", "custodian", "US", "cleared", {"reviewer"}, set()),
        ("custodian:fay", "custodian", "US", "cleared", {"approver"}, set()),
        ("auditor:ivy", "auditor", "US", "cleared", {"auditor"}, set()),
        ("board:ben", "board", "US", "cleared", {"board_member"}, set()),
    ]
    return [
        Principal.build(
            id=pid,
            display_name=pid.split(":")[1].title(),
            org=org,
            location=loc,
            screening=screening,
            roles=roles,
            purposes=purposes,
            vkey=vkey(pid),
        )
        for pid, org, loc, screening, roles, purposes in people
    ]


def new_log() -> TransparencyLog:
    return TransparencyLog(
        storage=MemoryLogStorage(),
        origin="test.example/log",
        sign=lambda cp: sign_checkpoint(cp, [LOG_SIGNER]),
    )


def default_engine(**kwargs: object) -> PolicyEngine:
    return PolicyEngine(CompiledPolicies.compile(DEFAULT_POLICIES, PolicySchema.default()), **kwargs)  # type: ignore[arg-type]


@dataclass
class World:
    """A control database with the cast, the access service on top, and the log under it."""

    db: Database
    log: TransparencyLog
    clock: ManualClock
    engine: PolicyEngine
    principals: PrincipalStore
    tokens: TokenStore
    grants: GrantStore
    service: AccessService
    rules: AccessRules = field(default_factory=AccessRules)

    @classmethod
    def open(cls, url: str, *, rules: AccessRules | None = None) -> World:
        db = Database.open(url)
        log = new_log()
        recorder = LogRecorder(log)
        clock = ManualClock(START)
        engine = default_engine()
        principals = PrincipalStore(db, recorder=recorder, clock=clock)
        for p in cast():
            principals.create(p, actor="setup")
        tokens = TokenStore(db, recorder=recorder, clock=clock)
        grants = GrantStore(db, recorder=recorder)
        rules = rules or AccessRules()
        service = AccessService(
            principals=principals,
            grants=grants,
            engine=engine,
            roster=PrincipalRoster(principals),
            rules=rules,
        )
        return cls(db, log, clock, engine, principals, tokens, grants, service, rules)

    def close(self) -> None:
        self.log.close()
        self.db.close()

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def events(self) -> list[Event]:
        return [Event.decode(e) for e in self.log.storage.read_entries(0, self.log.size)]

    def event_types(self, since: int = 0) -> list[str]:
        return [e.type for e in self.events()[since:]]

    def submit(
        self,
        requester: str = "operator:alice",
        *,
        subjects: tuple[str, ...] = (subject("s1"),),
        bulk_limit: int | None = None,
        collections: frozenset[str] = frozenset({"contact"}),
        fields: frozenset[str] = frozenset({"contact.email", "contact.phone"}),
        purpose: str = "customer_support",
        duration: timedelta = timedelta(hours=2),
        **kwargs: object,
    ) -> RequestRecord:
        scope = Scope("us", collections, fields, subjects if bulk_limit is None else (), bulk_limit)
        return self.service.submit(
            requester=requester,
            scope=scope,
            purpose=purpose,
            ticket="SUP-1234",
            duration=duration,
            now=self.now,
            **kwargs,  # type: ignore[arg-type]
        )

    def approve(
        self, record: RequestRecord, approver: str, decision: ApprovalDecision = ApprovalDecision.APPROVE
    ) -> RequestRecord:
        note = sign_approval(
            SIGNERS[approver], record.request, approver=approver, decision=decision, time=self.now
        )
        return self.service.record_approval(record.id, note, now=self.now)

    def review(self, record: RequestRecord, reviewer: str, verdict: ReviewVerdict) -> RequestRecord:
        note = sign_review(
            SIGNERS[reviewer], record.request, reviewer=reviewer, verdict=verdict, time=self.now
        )
        return self.service.record_review(record.id, note, now=self.now)
