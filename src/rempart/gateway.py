"""The one door: every read and write of records passes here.

For each access the gateway, in this order and never another:

1. builds the facts: the principal (already authenticated by the edge), the
   subject's home region and keyed commitment, the catalog's fields and their
   categories, the grant the principal holds for this access (put to use:
   a first-use clock starts, a bulk slot is claimed), the purpose, the time;
2. asks the policy engine, one decision per field, in one batch (memoized
   exactly, see :mod:`rempart.policy.engine`);
3. records the decision in the transparency log and waits until it is durable
   (:class:`~rempart.errors.AuditUnavailable` otherwise: the access is denied);
4. touches the store, in the subject's home region only, and takes from the
   record (opened whole: one envelope) only the fields the decision allowed;
5. returns what was allowed, naming the fields it masked.

A decision that allows nothing is recorded, then refused with the deciding
policies' reasons. Nothing returns data before its decision is durable.

What a crash at each step does: before 3, nothing happened and nothing was
recorded; between 3 and 4, the log holds a decision whose access never ran
(the record errs on the side of telling); after 4, a read returned nothing to
a caller that is gone, a write is in the store with its decision in the log.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rempart.access.facts import field_requests
from rempart.access.model import ClockMode, Grant, RequestRecord, Scope
from rempart.access.principals import Principal
from rempart.access.service import AccessService
from rempart.clock import Clock
from rempart.errors import InvalidInput, PermissionDenied
from rempart.events import Event, EventRecorder
from rempart.log.sequencer import LogPosition
from rempart.policy.batcher import DecisionBatcher
from rempart.policy.model import Decision
from rempart.policy.policy_set import CompiledPolicies
from rempart.store.catalog import Catalog, Category, FieldSpec, check_purpose
from rempart.store.egress import EgressRequest, EgressTransfer
from rempart.store.records import Actor, Page, Record
from rempart.store.region import RegionStore
from rempart.store.service import ErasureReceipt, RecordService

__all__ = ["ACCESS_DECISION", "AccessOutcome", "Gateway", "GatewayPage", "GatewayRead"]

ACCESS_DECISION = "access.decision"
_MEMO_SIZE = 65_536


@dataclass(frozen=True, slots=True)
class AccessOutcome:
    """What the gateway decided for one access, and where that decision is in the log."""

    allowed_fields: tuple[str, ...]
    masked_fields: tuple[str, ...]
    position: LogPosition
    decisions: Mapping[str, Decision]

    @property
    def allowed(self) -> bool:
        return bool(self.allowed_fields)

    def reasons(self) -> list[str]:
        """Why fields were masked or the access refused, each reason once, in field order."""
        seen: list[str] = []
        for name in self.masked_fields:
            for reason in self.decisions[name].reasons or (f"no policy allows this on {name}",):
                if reason not in seen:
                    seen.append(reason)
        return seen


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A decided access whose entry is not yet recorded."""

    event: Event
    decisions: Mapping[str, Decision]
    region: str
    store: RegionStore
    """The subject's home store, resolved once for the decision and the read."""

    def outcome(self, position: LogPosition) -> AccessOutcome:
        return _outcome(self.decisions, position)


@dataclass(frozen=True, slots=True)
class GatewayRead:
    record: Record
    outcome: AccessOutcome


@dataclass(frozen=True, slots=True)
class GatewayPage:
    page: Page[Record]
    outcome: AccessOutcome


class Gateway:
    """Authenticated principal in, decided + logged + residency-pinned data out."""

    def __init__(
        self,
        *,
        records: RecordService,
        access: AccessService,
        decisions: DecisionBatcher,
        recorder: EventRecorder,
        clock: Clock,
    ) -> None:
        self.records = records
        self.access = access
        self.decisions = decisions
        self.recorder = recorder
        self.clock = clock
        self._memo: dict[tuple[Any, ...], tuple[CompiledPolicies, tuple[Decision, ...]]] = {}

    @property
    def catalog(self) -> Catalog:
        return self.records.catalog

    # -- the steps ---------------------------------------------------------------

    def _fields(self, collection: str, names: Collection[str] | None) -> list[FieldSpec]:
        spec = self.catalog.collection(collection)
        if names is None:
            return list(spec.fields.values())
        if isinstance(names, str) or not names:
            raise InvalidInput("fields is a non-empty list of field names")
        unknown = sorted(set(names) - set(spec.fields))
        if unknown:
            raise InvalidInput(
                f"collection {collection!r} has no field {', '.join(map(repr, unknown))} "
                f"(it has: {', '.join(sorted(spec.fields))})"
            )
        return [spec.fields[n] for n in dict.fromkeys(names)]

    def _prepare(
        self,
        principal: Principal,
        *,
        action: str,
        subject_id: str,
        collection: str,
        fields: list[FieldSpec],
        purpose: str,
        record_id: str | None,
        extra: Mapping[str, Any] | None = None,
    ) -> _Prepared:
        """Steps 1 and 2: the facts and the decision, and the entry that records them."""
        check_purpose(purpose)
        now = self.clock.now()
        store = self.records.home_store(subject_id)
        region = store.region
        commitment = store.commitment(subject_id)
        grant = self.access.grant_for_use(principal.id, region, collection, commitment, purpose, now)
        decided = self._decide_fields(
            principal, action, region, collection, fields, grant, commitment, purpose, now
        )
        decisions = {spec.name: d for spec, d in zip(fields, decided, strict=True)}
        event = _decision_event(
            principal,
            action=action,
            region=region,
            collection=collection,
            record_id=record_id,
            commitment=commitment,
            purpose=purpose,
            grant=grant,
            fields=fields,
            decisions=decisions,
            now=now,
            extra=extra,
        )
        return _Prepared(event, decisions, region, store)

    def _decide(
        self,
        principal: Principal,
        *,
        action: str,
        subject_id: str,
        collection: str,
        fields: list[FieldSpec],
        purpose: str,
        record_id: str | None,
        extra: Mapping[str, Any] | None = None,
    ) -> tuple[AccessOutcome, _Prepared]:
        """Steps 1 to 3: facts, decision, durable record. Returns the outcome and what was prepared."""
        prepared = self._prepare(
            principal,
            action=action,
            subject_id=subject_id,
            collection=collection,
            fields=fields,
            purpose=purpose,
            record_id=record_id,
            extra=extra,
        )
        position = self.recorder.record(prepared.event)  # durable, or AuditUnavailable: fail closed
        return prepared.outcome(position), prepared

    def _decide_fields(
        self,
        principal: Principal,
        action: str,
        region: str,
        collection: str,
        fields: Sequence[FieldSpec],
        grant: Grant | None,
        commitment: str,
        purpose: str,
        now: datetime,
    ) -> Sequence[Decision]:
        """One decision per field, memoized on every input Cedar sees.

        The key holds the policy set in force; the principal's facts (org,
        location, screening, roles, purposes); the action; the fields as the
        catalog in use describes them; the purpose; and the grant as Cedar
        sees it at ``now``: its id and version (a grant record never changes
        within a version: scope, grantee, purpose, break-glass), its status at
        ``now`` and whether it covers this subject. Cedar's answer is a pure
        function of exactly these, so a hit is what Cedar would say; any change
        of policy, principal, grant state or time-derived fact is another key.
        The key is made of strings and small tuples so that it hashes and
        compares fast; the engine below keeps the same memo per request.
        """
        policies = self.decisions.engine.policies
        grant_key = (
            None
            if grant is None
            else (grant.id, grant.version, grant.status_at(now), grant.covers(commitment))
        )
        key = (
            policies.version,
            principal.id,
            principal.org,
            principal.location,
            principal.screening,
            principal.roles,
            principal.purposes,
            action,
            region,
            id(self.records.catalog),
            collection,
            tuple([f.name for f in fields]),
            purpose,
            grant_key,
        )
        hit = self._memo.get(key)
        if hit is not None and hit[0] is policies:
            return hit[1]
        entity = principal.entity()
        requests = field_requests(
            principal=entity,
            action=action,
            region=region,
            collection=collection,
            fields=fields,
            grant=grant,
            subject=commitment,
            purpose=purpose,
            now=now,
        )
        decided = tuple(self.decisions.decide(requests))
        if len(self._memo) >= _MEMO_SIZE:
            self._memo.clear()  # cheap bound: a full memo refills from the engine's own memo
        self._memo[key] = (policies, decided)
        return decided

    @staticmethod
    def _refuse(outcome: AccessOutcome, what: str) -> PermissionDenied:
        reasons = outcome.reasons()
        return PermissionDenied(
            f"{what} denied: " + "; ".join(reasons),
            reasons=reasons,
            policies=sorted({p for d in outcome.decisions.values() for p in d.policies}),
            log_index=outcome.position.index,
        )

    # -- reads ---------------------------------------------------------------------

    def read(
        self,
        principal: Principal,
        *,
        subject_id: str,
        collection: str,
        record_id: str,
        purpose: str,
        fields: Collection[str] | None = None,
    ) -> GatewayRead:
        """One record, with only the fields the decision allows (the rest masked)."""
        prepared = self._prepare_read(principal, subject_id, collection, record_id, purpose, fields)
        position = self.recorder.record(prepared.event)  # durable, or AuditUnavailable: fail closed
        return self._finish_read(prepared, position, subject_id, collection, record_id)

    async def read_async(
        self,
        principal: Principal,
        *,
        subject_id: str,
        collection: str,
        record_id: str,
        purpose: str,
        fields: Collection[str] | None = None,
    ) -> GatewayRead:
        """:meth:`read` for an event loop: the same steps, awaiting the durable record.

        The facts, the decision and the store read run inline (each is a few
        short queries on the local databases); only the wait for the log's
        group commit yields the loop, so many concurrent reads share one
        commit without a thread each.
        """
        prepared = self._prepare_read(principal, subject_id, collection, record_id, purpose, fields)
        position = await self.recorder.record_async(prepared.event)
        return self._finish_read(prepared, position, subject_id, collection, record_id)

    def _prepare_read(
        self,
        principal: Principal,
        subject_id: str,
        collection: str,
        record_id: str,
        purpose: str,
        fields: Collection[str] | None,
    ) -> _Prepared:
        return self._prepare(
            principal,
            action="read",
            subject_id=subject_id,
            collection=collection,
            fields=self._fields(collection, fields),
            purpose=purpose,
            record_id=record_id,
        )

    def _finish_read(
        self,
        prepared: _Prepared,
        position: LogPosition,
        subject_id: str,
        collection: str,
        record_id: str,
    ) -> GatewayRead:
        """Steps 4 and 5, once the decision is durable: refuse, or read only the allowed fields."""
        outcome = prepared.outcome(position)
        if not outcome.allowed:
            raise self._refuse(outcome, f"read of {collection}/{record_id}")
        record = prepared.store.get(subject_id, collection, record_id, fields=outcome.allowed_fields)
        return GatewayRead(record, outcome)

    def list_records(
        self,
        principal: Principal,
        *,
        subject_id: str,
        collection: str,
        purpose: str,
        fields: Collection[str] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> GatewayPage:
        """A subject's records of one collection, a page at a time, masked alike."""
        specs = self._fields(collection, fields)
        outcome, _ = self._decide(
            principal,
            action="read",
            subject_id=subject_id,
            collection=collection,
            fields=specs,
            purpose=purpose,
            record_id=None,
            extra={"limit": limit},
        )
        if not outcome.allowed:
            raise self._refuse(outcome, f"listing of {collection}")
        page = self.records.list_records(
            subject_id, collection=collection, limit=limit, cursor=cursor, fields=outcome.allowed_fields
        )
        return GatewayPage(page, outcome)

    # -- writes ----------------------------------------------------------------

    def write(
        self,
        principal: Principal,
        *,
        subject_id: str,
        collection: str,
        record_id: str,
        values: Mapping[str, Any],
        purpose: str,
        region: str | None = None,
        expected_version: int | None = None,
    ) -> tuple[Record, AccessOutcome]:
        """Create or replace a record; every field written must be allowed, or nothing is."""
        if not isinstance(values, Mapping) or not values:
            raise InvalidInput("a write sets at least one field")
        specs = self._fields(collection, list(values))
        outcome, _ = self._decide(
            principal,
            action="write",
            subject_id=subject_id,
            collection=collection,
            fields=specs,
            purpose=purpose,
            record_id=record_id,
        )
        if outcome.masked_fields:
            raise self._refuse(outcome, f"write of {collection}/{record_id}")
        record = self.records.write(
            Actor(principal.id, principal.org),
            subject_id,
            collection,
            record_id,
            values,
            region=region,
            expected_version=expected_version,
        )
        return record, outcome

    def delete(
        self,
        principal: Principal,
        *,
        subject_id: str,
        collection: str,
        record_id: str,
        purpose: str,
        expected_version: int,
    ) -> AccessOutcome:
        """Delete one record: needs ``erase`` on its collection's personal fields.

        A collection of public fields only needs ``write`` on them instead.
        """
        specs = self._fields(collection, None)
        personal = _personal(specs)
        outcome, _ = self._decide(
            principal,
            action="erase" if personal else "write",
            subject_id=subject_id,
            collection=collection,
            fields=personal or specs,
            purpose=purpose,
            record_id=record_id,
        )
        if outcome.masked_fields:
            raise self._refuse(outcome, f"deletion of {collection}/{record_id}")
        self.records.delete(
            Actor(principal.id, principal.org),
            subject_id,
            collection,
            record_id,
            expected_version=expected_version,
        )
        return outcome

    def erase_subject(
        self, principal: Principal, *, subject_id: str, purpose: str, reason: str
    ) -> ErasureReceipt:
        """Crypto-shred a subject (right to erasure).

        Needs ``erase`` allowed on every protected and excepted field of every
        collection (the personal data); public fields go with the subject.
        Each collection's decision is recorded before anything is destroyed.
        """
        for collection, spec in self.catalog.collections.items():
            personal = _personal(spec.fields.values())
            if not personal:
                continue
            outcome, _ = self._decide(
                principal,
                action="erase",
                subject_id=subject_id,
                collection=collection,
                fields=personal,
                purpose=purpose,
                record_id=None,
            )
            if outcome.masked_fields:
                raise self._refuse(outcome, f"erasure of the subject's {collection}")
        return self.records.erase(Actor(principal.id, principal.org), subject_id, reason=reason)

    # -- access requests ---------------------------------------------------------

    def scope(
        self,
        *,
        region: str,
        fields: Collection[str],
        subject_ids: Sequence[str] = (),
        bulk_limit: int | None = None,
    ) -> Scope:
        """A request's scope from what people write: subject ids and ``collection.field`` names.

        Subjects are turned into their keyed commitments (scopes and the log
        never hold subject ids); each must live in ``region``, and each field
        must be in the catalog.
        """
        if isinstance(fields, str) or not fields:
            raise InvalidInput("a request names at least one field, as collection.field")
        collections: set[str] = set()
        for path in fields:
            collection, dot, name = path.partition(".")
            if not dot:
                raise InvalidInput(f"field {path!r} is not written collection.field")
            self._fields(collection, [name])
            collections.add(collection)
        commitments = []
        for subject_id in dict.fromkeys(subject_ids):
            home = self.records.home_region(subject_id)
            if home != region:
                raise InvalidInput(
                    f"subject {subject_id!r} lives in region {home!r}, not {region!r}: "
                    "a request covers one region"
                )
            commitments.append(self.records.subject_commitment(subject_id))
        subjects = tuple(sorted(commitments))
        return Scope(region, frozenset(collections), frozenset(fields), subjects, bulk_limit)

    def request_access(
        self,
        principal: Principal,
        *,
        scope: Scope,
        purpose: str,
        ticket: str,
        duration: timedelta,
        start_at: datetime | None = None,
        clock_mode: ClockMode = ClockMode.AT_APPROVAL,
    ) -> RequestRecord:
        """Submit a just-in-time access request for custodian approval (recorded)."""
        return self.access.submit(
            requester=principal.id,
            scope=scope,
            purpose=purpose,
            ticket=ticket,
            duration=duration,
            now=self.clock.now(),
            start_at=start_at,
            clock_mode=clock_mode,
        )

    def break_glass(
        self, principal: Principal, *, scope: Scope, purpose: str, ticket: str, duration: timedelta
    ) -> RequestRecord:
        """Open an emergency grant at once (capped, flagged, to be reviewed by a custodian)."""
        return self.access.open_break_glass(
            requester=principal.id,
            scope=scope,
            purpose=purpose,
            ticket=ticket,
            duration=duration,
            now=self.clock.now(),
        )

    # -- egress ----------------------------------------------------------------

    def egress(self, principal: Principal, request: EgressRequest) -> EgressTransfer:
        """A transfer out of a region: policy (``egress`` per field), then the region's rules.

        The store checks the region's egress rules, budgets and governance
        exceptions, and records the transfer (or the refusal) with a digest of
        exactly what left.
        """
        specs = self._fields(request.collection, request.fields)
        now = self.clock.now()
        requests = field_requests(
            principal=principal,
            action="egress",
            region=request.region,
            collection=request.collection,
            fields=specs,
            grant=None,
            subject="",
            purpose=request.purpose,
            now=now,
        )
        decided = self.decisions.decide(requests)
        decisions = {spec.name: d for spec, d in zip(specs, decided, strict=True)}
        event = Event(
            ACCESS_DECISION,
            now,
            {
                "principal": principal.id,
                "org": principal.org,
                "action": "egress",
                "region": request.region,
                "collection": request.collection,
                "record": None,
                "subject": None,
                "purpose": request.purpose,
                "destination": request.destination,
                "grant": None,
                "break_glass": False,
                "allowed": all(d.allowed for d in decided),
                "fields": [_field_entry(spec, decisions[spec.name]) for spec in specs],
                "policy_version": decided[0].policy_version if decided else None,
            },
        )
        position = self.recorder.record(event)
        outcome = _outcome(decisions, position)
        if outcome.masked_fields:
            raise self._refuse(outcome, f"egress of {request.collection} to {request.destination}")
        return self.records.egress(Actor(principal.id, principal.org), request)


def _outcome(decisions: Mapping[str, Decision], position: LogPosition) -> AccessOutcome:
    allowed = tuple(n for n, d in decisions.items() if d.allowed)
    masked = tuple(n for n, d in decisions.items() if not d.allowed)
    return AccessOutcome(allowed, masked, position, decisions)


def _personal(fields: Iterable[FieldSpec]) -> list[FieldSpec]:
    """The protected and excepted fields: what erasing a record or a subject destroys."""
    return [f for f in fields if f.category is not Category.PUBLIC]


def _field_entry(spec: FieldSpec, decision: Decision) -> dict[str, Any]:
    return {
        "name": spec.name,
        "category": spec.category.value,
        "allowed": decision.allowed,
        "policies": list(decision.policies),
        "reasons": list(decision.reasons),
    }


def _decision_event(
    principal: Principal,
    *,
    action: str,
    region: str,
    collection: str,
    record_id: str | None,
    commitment: str,
    purpose: str,
    grant: Grant | None,
    fields: Sequence[FieldSpec],
    decisions: Mapping[str, Decision],
    now: datetime,
    extra: Mapping[str, Any] | None,
) -> Event:
    """The ``access.decision`` entry: who, what, whose (committed), why, the verdict per field."""
    body: dict[str, Any] = {
        "principal": principal.id,
        "org": principal.org,
        "action": action,
        "region": region,
        "collection": collection,
        "record": record_id,
        "subject": commitment,
        "purpose": purpose,
        "grant": None if grant is None else grant.id,
        "break_glass": bool(grant is not None and grant.break_glass),
        "allowed": any(d.allowed for d in decisions.values()),
        "fields": [_field_entry(spec, decisions[spec.name]) for spec in fields],
        "policy_version": next(iter(decisions.values())).policy_version if decisions else None,
    }
    if extra:
        body.update(extra)
    return Event(ACCESS_DECISION, now, body)

