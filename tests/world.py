"""A whole deployment for tests: real log, real databases, real Cedar, real keys, a manual clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rempart.access import (
    AccessRequest,
    ApprovalDecision,
    Principal,
    RequestRecord,
    Scope,
    sign_approval,
)
from rempart.clock import ManualClock
from rempart.config import Config, default_config
from rempart.deployment import Deployment
from rempart.events import Event
from rempart.store.records import Actor
from rempart.tlog.note import Signer

START = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)

PEOPLE: list[tuple[str, str, str, str, set[str], set[str]]] = [
    # id, org, location, screening, roles, purposes
    ("operator:alice", "operator", "US", "cleared", {"support"}, set()),
    ("operator:olga", "operator", "US", "cleared", {"support", "approver"}, set()),
    ("operator:eve", "operator", "US", "cleared", {"engineer"}, set()),
    ("operator:svc-ingest", "operator", "US", "cleared", {"service"}, {"customer_support"}),
    ("parent:bob", "parent", "CN", "cleared", {"engineer", "support"}, {"interoperability"}),
    ("custodian:carol", "custodian", "US", "cleared", {"approver"}, set()),
    ("custodian:dan", "custodian", "US", "cleared", {"approver"}, set()),
    ("auditor:ivy", "auditor", "US", "cleared", {"auditor"}, set()),
]


@dataclass
class World:
    deployment: Deployment
    clock: ManualClock
    signers: dict[str, Signer] = field(default_factory=dict)

    @classmethod
    def open(cls, data_dir: Path, *, config: Config | None = None) -> World:
        clock = ManualClock(START)
        deployment = Deployment.open(config or default_config(data_dir), clock=clock)
        world = cls(deployment, clock)
        for pid, org, loc, screening, roles, purposes in PEOPLE:
            signer = Signer.generate(f"keys.example/{pid.replace(':', '-')}")
            world.signers[pid] = signer
            deployment.principals.create(
                Principal.build(
                    id=pid,
                    display_name=pid.split(":")[1].title(),
                    org=org,
                    location=loc,
                    screening=screening,
                    roles=roles,
                    purposes=purposes,
                    vkey=signer.vkey(),
                ),
                actor="test:setup",
            )
        return world

    def close(self) -> None:
        self.deployment.close()

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def principal(self, pid: str) -> Principal:
        return self.deployment.principals.get(pid)

    def subject(self, subject_id: str, region: str, records: dict[str, dict[str, Any]]) -> None:
        """Create a subject with records ``{collection: fields}`` (record id "main")."""
        service = Actor("operator:svc-ingest", "operator")
        self.deployment.records.create_subject(service, subject_id, region)
        for collection, values in records.items():
            self.deployment.records.write(service, subject_id, collection, "main", values)

    def commitment(self, subject_id: str) -> str:
        return self.deployment.records.subject_commitment(subject_id)

    def request(
        self,
        requester: str,
        *,
        region: str = "us",
        collections: set[str],
        fields: set[str],
        subjects: list[str] | None = None,
        bulk_limit: int | None = None,
        purpose: str = "customer_support",
        duration: timedelta = timedelta(hours=2),
        start_at: datetime | None = None,
    ) -> RequestRecord:
        scope = Scope(
            region,
            frozenset(collections),
            frozenset(fields),
            tuple(sorted(self.commitment(s) for s in subjects or [])),
            bulk_limit,
        )
        return self.deployment.access.submit(
            requester=requester,
            scope=scope,
            purpose=purpose,
            ticket="TICKET-1",
            duration=duration,
            now=self.now,
            start_at=start_at,
        )

    def approve(self, request: AccessRequest, approver: str) -> RequestRecord:
        note = sign_approval(
            self.signers[approver],
            request,
            approver=approver,
            decision=ApprovalDecision.APPROVE,
            time=self.now,
        )
        return self.deployment.access.record_approval(request.id, note, now=self.now)

    def events(self, kind: str | None = None) -> list[Event]:
        log = self.deployment.log
        decoded = [Event.decode(e) for e in log.storage.read_entries(0, log.size)]
        return [e for e in decoded if kind is None or e.type == kind]
