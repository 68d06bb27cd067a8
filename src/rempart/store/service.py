"""The record service: the one entry point to the regional stores.

It routes every subject to its home region, refuses and records anything that
would put a subject's data elsewhere, and carries out the operations that must
be on the record: subject creation, relocation, erasure (crypto-shredding),
key rotation and retirement, and egress.

Fail closed: every operation that the log must hold records its event first
(or, for egress budgets, inside a transaction that commits only after the
event is durable). If the log cannot record, the operation is refused with
:class:`~rempart.errors.AuditUnavailable` and nothing is written.

Authentication and policy are not done here: the gateway (issue 4) decides,
logs its decision, then calls this service with the acting :class:`Actor`.

>>> import tempfile, pathlib
>>> from rempart.clock import ManualClock
>>> from rempart.config import default_config
>>> from rempart.events import LogRecorder
>>> from rempart.log.memory import MemoryLogStorage
>>> from rempart.log.sequencer import TransparencyLog
>>> log = TransparencyLog(storage=MemoryLogStorage(), origin="example/log", sign=lambda cp: b"")
>>> service = RecordService.open(default_config(pathlib.Path(tempfile.mkdtemp())),
...                              recorder=LogRecorder(log), clock=ManualClock())
>>> support = Actor("svc-signup", "operator")
>>> _ = service.create_subject(support, "u1", "us")
>>> _ = service.write(support, "u1", "contact", "main", {"email": "a@example.com"})
>>> service.read("u1", "contact", "main").fields["email"]
'a@example.com'
>>> service.close(); log.close()
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from rempart.clock import Clock, format_time
from rempart.db import Database
from rempart.errors import (
    AuditUnavailable,
    ConfigurationError,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RempartError,
    ResidencyViolation,
)
from rempart.events import Event, EventRecorder
from rempart.log.sequencer import LogPosition
from rempart.store.catalog import Catalog
from rempart.store.directory import SubjectDirectory
from rempart.store.egress import (
    EgressBudgets,
    EgressExceptions,
    EgressRequest,
    EgressTransfer,
    NoEgressExceptions,
    classify_fields,
    encode_payload,
)
from rempart.store.keys import KeyCustody, LocalKeyring, next_key_id, wrapped_key_digest
from rempart.store.records import DESTINATION_NAME, Actor, Page, Record, check_id
from rempart.store.region import PreparedKeys, RegionStore

if TYPE_CHECKING:
    from rempart.config import Config, RegionConfig

__all__ = [
    "SUBJECTS_PER_EVENT",
    "Actor",
    "ErasureReceipt",
    "ReconcileReport",
    "RecordService",
    "RelocationReceipt",
    "RotationReport",
    "SubjectInfo",
]

SUBJECTS_PER_EVENT = 800
"""At most this many commitments in one ``store.subjects.created`` entry (entries are at most 64 KiB)."""

_REASON = re.compile(r"^[^\x00-\x1f\x7f]{1,500}\Z")


def _check_reason(reason: object) -> str:
    if not isinstance(reason, str) or not _REASON.match(reason):
        raise InvalidInput("reason must be 1 to 500 printable characters (a ticket or a short explanation)")
    return reason


@dataclass(frozen=True, slots=True)
class SubjectInfo:
    subject_id: str
    region: str
    commitment: str
    created_at: str
    position: LogPosition


@dataclass(frozen=True, slots=True)
class RelocationReceipt:
    subject_id: str
    from_region: str
    to_region: str
    records: int
    position: LogPosition


@dataclass(frozen=True, slots=True)
class ErasureReceipt:
    """What was destroyed, when, by whose request; ``position`` is its entry in the log."""

    commitment: str
    region: str
    destroyed: tuple[str, ...]
    wrapped_keys: tuple[str, ...]
    records: int
    collections: Mapping[str, int]
    requested_by: Actor
    reason: str
    erased_at: str
    position: LogPosition


@dataclass(frozen=True, slots=True)
class RotationReport:
    region: str
    previous_key_id: str
    key_id: str
    rewrapped: int
    position: LogPosition


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """Leftovers of interrupted operations that a sweep removed."""

    purged: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Region → subject ids whose copies there were deleted (they live elsewhere, or nowhere)."""
    unclaimed: tuple[str, ...] = ()
    """Directory entries removed because their home region never received the subject's keys."""


class RecordService:
    """Routing, residency, relocation, erasure, rotation and egress over the regional stores."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        directory: SubjectDirectory,
        regions: Mapping[str, RegionStore],
        rules: Mapping[str, RegionConfig],
        budgets: EgressBudgets,
        recorder: EventRecorder,
        clock: Clock,
        exceptions: EgressExceptions | None = None,
    ) -> None:
        if not regions:
            raise ConfigurationError("regions: a deployment needs at least one region", path="regions")
        if set(regions) != set(rules):
            raise ConfigurationError("regions: every region needs both a store and its rules", path="regions")
        rings: dict[str, str] = {}
        for name, store in regions.items():
            if store.region != name:
                raise ConfigurationError(f"regions.{name}: its store is region {store.region!r}'s")
            if store.ring in rings:
                raise ConfigurationError(
                    f"regions.{name}.kek: key ring {store.ring!r} is already region {rings[store.ring]!r}'s",
                    path=f"regions.{name}.kek",
                )
            rings[store.ring] = name
        self.catalog = catalog
        self.directory = directory
        self.regions = dict(regions)
        self.rules = dict(rules)
        self.budgets = budgets
        self.recorder = recorder
        self.clock = clock
        self.exceptions: EgressExceptions = exceptions or NoEgressExceptions()
        self._owned: list[Database] = []
        self._recording: ThreadPoolExecutor | None = None

    @classmethod
    def open(
        cls,
        config: Config,
        *,
        recorder: EventRecorder,
        clock: Clock,
        custody: KeyCustody | None = None,
        exceptions: EgressExceptions | None = None,
        cache_size: int = 10_000,
    ) -> RecordService:
        """Open the control and region databases of a deployment (creating tables as needed).

        Without ``custody``, the deployment's local keyring is opened, and
        created (0600) with a first KEK for each region if it does not exist.
        """
        if custody is None:
            custody = LocalKeyring.open_or_create(config.keyring, [r.kek for r in config.regions.values()])
        with ExitStack() as opened:
            control = Database.open(config.control_database)
            opened.callback(control.close)
            owned = [control]
            stores: dict[str, RegionStore] = {}
            for name, region in config.regions.items():
                db = Database.open(region.store)
                opened.callback(db.close)
                owned.append(db)
                stores[name] = RegionStore(
                    region=name,
                    database=db,
                    catalog=config.catalog,
                    custody=custody,
                    ring=region.kek,
                    cache_size=cache_size,
                )
            service = cls(
                catalog=config.catalog,
                directory=SubjectDirectory(control),
                regions=stores,
                rules=config.regions,
                budgets=EgressBudgets(control),
                recorder=recorder,
                clock=clock,
                exceptions=exceptions,
            )
            opened.pop_all()
        service._owned = owned
        return service

    def close(self) -> None:
        """Close the databases this service opened itself (see :meth:`open`)."""
        for db in self._owned:
            db.close()
        self._owned = []
        if self._recording is not None:
            self._recording.shutdown(wait=True)
            self._recording = None

    def __repr__(self) -> str:
        return f"RecordService(regions={sorted(self.regions)!r})"

    # -- recording ----------------------------------------------------------

    def _record(self, kind: str, body: Mapping[str, Any]) -> LogPosition:
        """Record an event durably or raise AuditUnavailable: the caller then refuses (fail closed)."""
        event = Event(kind, self.clock.now(), body)
        try:
            return self.recorder.record(event)
        except AuditUnavailable:
            raise
        except Exception as exc:
            raise AuditUnavailable(f"the log could not record {kind}: {exc}") from exc

    def _store(self, region: str) -> RegionStore:
        store = self.regions.get(region)
        if store is None:
            raise InvalidInput(
                f"unknown region {region!r} (known: {', '.join(sorted(self.regions))})", region=str(region)
            )
        return store

    # -- subjects -----------------------------------------------------------

    def create_subject(self, actor: Actor, subject_id: str, region: str) -> SubjectInfo:
        """Give a new subject its home region and its keys there; recorded as ``store.subject.created``."""
        check_id(subject_id, "subject id")
        store = self._store(region)
        if self.directory.find(subject_id) is not None:
            raise Conflict("a subject with this id already exists")
        now = self.clock.now()
        prepared = store.prepare_keys(subject_id, now)
        commitment = prepared.commitment()
        # 1. The event first: if the log cannot record, nothing has been written.
        position = self._record(
            "store.subject.created",
            {
                "subject": commitment,
                "region": region,
                "kek": prepared.row.data_key.key_id,
                "requested_by": actor.as_entry(),
            },
        )
        # 2. Claim the id in the directory (its primary key settles races). A crash
        #    here leaves an entry without keys: reconcile() removes it.
        entry = self.directory.add(subject_id, region, now)
        # 3. Store the wrapped keys in the home region. If that fails, give the id back.
        try:
            store.install_keys(prepared)
        except BaseException:
            self.directory.remove(subject_id)
            raise
        return SubjectInfo(subject_id, region, commitment, entry.created_at, position)

    # -- subjects in bulk ---------------------------------------------------------

    def record_all(self, events: Sequence[tuple[str, Mapping[str, Any]]]) -> list[LogPosition]:
        """Record several events at once and wait until every one is durable (or raise AuditUnavailable).

        They are handed to the log together, so its group commit makes them
        durable in one write instead of one each; a bulk operation records its
        whole batch this way before it changes anything.
        """
        if len(events) <= 1:
            return [self._record(kind, body) for kind, body in events]
        if self._recording is None:
            self._recording = ThreadPoolExecutor(max_workers=8, thread_name_prefix="rempart-record")
        futures = [self._recording.submit(self._record, kind, body) for kind, body in events]
        positions: list[LogPosition] = []
        failure: BaseException | None = None
        for future in futures:
            try:
                positions.append(future.result())
            except BaseException as exc:  # wait for all, then refuse
                failure = failure or exc
        if failure is not None:
            raise failure
        return positions

    @staticmethod
    def subjects_created_events(
        actor: Actor, region: str, kek: str, commitments: Sequence[str]
    ) -> list[tuple[str, dict[str, Any]]]:
        """The ``store.subjects.created`` entries for subjects given keys in ``region`` in one batch.

        One entry per :data:`SUBJECTS_PER_EVENT` commitments (an entry holds at
        most 64 KiB); ``part`` and ``parts`` say which piece of the batch it is.
        """
        chunks = [
            list(commitments[i : i + SUBJECTS_PER_EVENT])
            for i in range(0, len(commitments), SUBJECTS_PER_EVENT)
        ]
        return [
            (
                "store.subjects.created",
                {
                    "region": region,
                    "kek": kek,
                    "subjects": chunk,
                    "count": len(chunk),
                    "part": n,
                    "parts": len(chunks),
                    "requested_by": actor.as_entry(),
                },
            )
            for n, chunk in enumerate(chunks, start=1)
        ]

    def home_regions(self, subject_ids: Collection[str]) -> dict[str, str]:
        """subject id → home region for those of the ids the directory knows (one query per 500)."""
        return self.directory.homes(subject_ids)

    def claim_subjects(self, entries: Mapping[str, str], now: datetime) -> int:
        """Claim subject ids for their home regions in one transaction; returns how many were new.

        Idempotent: an id already claimed for the same region is left as it is
        (a batch redone after a crash claims again); an id whose home is another
        region raises Conflict and nothing is claimed.
        """
        for subject_id, region in entries.items():
            check_id(subject_id, "subject id")
            self._store(region)
        return self.directory.claim(entries, now)

    def create_subjects(self, actor: Actor, region: str, subject_ids: Sequence[str]) -> list[SubjectInfo]:
        """Create many subjects in one region: one entry per :data:`SUBJECTS_PER_EVENT`, two transactions.

        Same order as :meth:`create_subject`: the entries first (nothing written
        if the log cannot record them), then the directory claims, then the
        wrapped keys in one region transaction (claims are given back if it fails).
        """
        store = self._store(region)
        ids = [check_id(s, "subject id") for s in subject_ids]
        if len(set(ids)) != len(ids):
            raise InvalidInput("the same subject id is listed twice")
        taken = self.home_regions(ids)
        if taken:
            raise Conflict(f"{len(taken)} of these subjects already exist", subjects=len(taken))
        now = self.clock.now()
        prepared: list[PreparedKeys] = [store.prepare_keys(s, now) for s in ids]
        if not prepared:
            return []
        commitments = [p.commitment() for p in prepared]
        kek = prepared[0].row.data_key.key_id
        positions = self.record_all(self.subjects_created_events(actor, region, kek, commitments))
        self.claim_subjects(dict.fromkeys(ids, region), now)
        try:
            store.put_many([p.row for p in prepared], [])
        except BaseException:
            self.directory.remove_many(ids)
            raise
        created = format_time(now)
        return [
            SubjectInfo(s, region, c, created, positions[i // SUBJECTS_PER_EVENT])
            for i, (s, c) in enumerate(zip(ids, commitments, strict=True))
        ]

    def use_rules(self, catalog: Catalog, rules: Mapping[str, RegionConfig]) -> None:
        """Put a catalog classification and the regions' rules in force (:mod:`rempart.store.governed`)."""
        if set(rules) != set(self.regions):
            raise ConfigurationError("regions: every region needs both a store and its rules", path="regions")
        for store in self.regions.values():
            store.catalog = catalog
        self.catalog = catalog
        self.rules = dict(rules)

    def reseal(self, collection: str, *, now: datetime) -> int:
        """Write every record of ``collection`` again under the catalog in force; returns how many.

        After a field moves between public and sealed, this puts every value
        where the new classification says (encrypted at rest, or in clear).
        Idempotent, so an interrupted run can simply be run again.
        """
        self.catalog.collection(collection)
        count = 0
        for store in self.regions.values():
            cursor: str | None = None
            while True:
                page = store.query(collection, limit=500, cursor=cursor)
                for rec in page.items:
                    store.put(
                        rec.subject_id,
                        collection,
                        rec.record_id,
                        rec.fields,
                        expected_version=rec.version,
                        now=now,
                    )
                    count += 1
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
        return count

    def home_region(self, subject_id: str) -> str:
        return self.directory.get(subject_id).home_region

    def home_store(self, subject_id: str) -> RegionStore:
        """The subject's home region's store, from one directory lookup (NotFound if unknown).

        For reads that resolve a subject once and then use its store (the
        gateway's hot path); writes go through :meth:`write`, which also
        checks relocation and residency.
        """
        return self._store(self.directory.get(subject_id).home_region)

    def subject_commitment(self, subject_id: str) -> str:
        """How the subject appears in log entries (keyed commitment; its key lives in the home region)."""
        return self._store(self.home_region(subject_id)).commitment(subject_id)

    def commitment_key(self, subject_id: str) -> bytes:
        """The subject's commitment key, to hand to the subject (data subject request) to find its entries."""
        return self._store(self.home_region(subject_id)).commitment_key(subject_id)

    # -- records ------------------------------------------------------------

    def _refuse_residency(
        self, actor: Actor, subject_id: str, home: str, attempted: str, operation: str, collection: str
    ) -> ResidencyViolation:
        body = {
            "subject": self._store(home).commitment(subject_id),
            "home_region": home,
            "attempted_region": attempted,
            "operation": operation,
            "collection": collection,
            "requested_by": actor.as_entry(),
        }
        self._record("store.residency_violation", body)
        return ResidencyViolation(
            f"refused: this subject's home region is {home!r}; its records are stored only there, "
            f"not in {attempted!r}",
            home_region=home,
            attempted_region=attempted,
        )

    def write(
        self,
        actor: Actor,
        subject_id: str,
        collection: str,
        record_id: str,
        fields: Mapping[str, Any],
        *,
        region: str | None = None,
        expected_version: int | None = None,
    ) -> Record:
        """Create (no ``expected_version``) or replace a record, in the subject's home region only.

        ``region``, when the record arrives tagged with one (a migration batch, a
        regional ingest), must be the subject's home: otherwise the write is
        refused with ResidencyViolation and the attempt is recorded.
        """
        check_id(subject_id, "subject id")
        self.catalog.collection(collection)
        if region is not None:
            self._store(region)
        entry = self.directory.get(subject_id)
        if region is not None and region != entry.home_region:
            raise self._refuse_residency(actor, subject_id, entry.home_region, region, "write", collection)
        if entry.relocating_to is not None:
            raise Conflict(
                f"the subject is being relocated to {entry.relocating_to!r}; retry when it is done"
            )
        return self._store(entry.home_region).put(
            subject_id, collection, record_id, fields, expected_version=expected_version, now=self.clock.now()
        )

    def delete(
        self, actor: Actor, subject_id: str, collection: str, record_id: str, *, expected_version: int
    ) -> None:
        """Delete one record (at the version last read) from the subject's home region."""
        entry = self.directory.get(subject_id)
        if entry.relocating_to is not None:
            raise Conflict(
                f"the subject is being relocated to {entry.relocating_to!r}; retry when it is done"
            )
        self._store(entry.home_region).delete(
            subject_id, collection, record_id, expected_version=expected_version
        )

    def read(
        self, subject_id: str, collection: str, record_id: str, *, fields: Collection[str] | None = None
    ) -> Record:
        """One record from the subject's home region, decrypted (only ``fields`` if given)."""
        entry = self.directory.get(subject_id)
        return self._store(entry.home_region).get(subject_id, collection, record_id, fields=fields)

    def list_records(
        self,
        subject_id: str,
        *,
        collection: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        fields: Collection[str] | None = None,
    ) -> Page[Record]:
        """A subject's records (one collection, or all), a page at a time."""
        entry = self.directory.get(subject_id)
        return self._store(entry.home_region).list_records(
            subject_id, collection=collection, limit=limit, cursor=cursor, fields=fields
        )

    def query(
        self,
        region: str,
        collection: str,
        *,
        where: Mapping[str, Any] | None = None,
        limit: int = 100,
        cursor: str | None = None,
        fields: Collection[str] | None = None,
    ) -> Page[Record]:
        """Records of a collection in one region whose public fields equal ``where``, a page at a time."""
        return self._store(region).query(collection, where=where, limit=limit, cursor=cursor, fields=fields)

    # -- relocation -----------------------------------------------------------

    def relocate(self, actor: Actor, subject_id: str, to_region: str, *, reason: str) -> RelocationReceipt:
        """Move a subject, keys and records, to another region, if the home region's rules allow it.

        Steps, and why a crash at each is safe (``reconcile()`` finishes the cleanup):

        1. event ``store.subject.relocated`` recorded; nothing changed yet;
        2. directory marks the move (writes are refused meanwhile);
        3. the target gets new keys and the re-sealed records, in one transaction
           (leftovers of an earlier attempt are purged first);
        4. the versions read are checked unchanged, then the directory switches
           the home: reads go to the target from here on;
        5. the source copy is deleted and its wrapped keys shredded, so source
           backups no longer open. A crash before this leaves a stale copy that
           ``reconcile()`` deletes.
        """
        check_id(subject_id, "subject id")
        reason = _check_reason(reason)
        target = self._store(to_region)
        entry = self.directory.get(subject_id)
        home = entry.home_region
        source = self._store(home)
        if to_region == home:
            raise InvalidInput(f"the subject already lives in {to_region!r}")
        commitment = source.commitment(subject_id)
        allowed = self.rules[home].relocation_to
        if to_region not in allowed:
            self._record(
                "store.subject.relocation_refused",
                {
                    "subject": commitment,
                    "from_region": home,
                    "to_region": to_region,
                    "allowed": list(allowed),
                    "requested_by": actor.as_entry(),
                    "reason": reason,
                },
            )
            raise ResidencyViolation(
                f"relocation from {home!r} to {to_region!r} is not allowed by the rules of region {home!r} "
                f"(allowed: {', '.join(allowed) or 'none'})",
                from_region=home,
                to_region=to_region,
            )
        versions = source.versions(subject_id)
        position = self._record(
            "store.subject.relocated",
            {
                "subject": commitment,
                "from_region": home,
                "to_region": to_region,
                "records": len(versions),
                "requested_by": actor.as_entry(),
                "reason": reason,
            },
        )
        self.directory.begin_move(subject_id, home, to_region)
        try:
            records = source.export_subject(subject_id)
            target.purge_subject(subject_id)  # leftovers of an interrupted attempt
            prepared = target.prepare_keys(
                subject_id, self.clock.now(), commitment_key=source.commitment_key(subject_id)
            )
            target.import_subject(prepared, records)
            if source.versions(subject_id) != {(r.collection, r.record_id): r.version for r in records}:
                raise Conflict("the subject's records changed during the relocation; try again")
            self.directory.finish_move(subject_id, home, to_region)
        except BaseException:
            target.purge_subject(subject_id)
            self.directory.cancel_move(subject_id)
            raise
        self._purge_copy(source, subject_id)
        return RelocationReceipt(subject_id, home, to_region, len(records), position)

    def _purge_copy(self, store: RegionStore, subject_id: str) -> int:
        """Delete a region's copy of a subject and shred its wrapped keys there (backups included)."""
        row = store.key_row(subject_id)
        if row is not None:
            store.custody.shred(store.ring, [row.data_key, row.commitment_key])
        return store.purge_subject(subject_id)

    # -- erasure --------------------------------------------------------------

    def erase(self, actor: Actor, subject_id: str, *, reason: str) -> ErasureReceipt:
        """Crypto-shred a subject: destroy its keys, then delete its rows; the receipt goes in the log.

        1. the receipt (``store.erasure``) is recorded; nothing changed yet;
        2. the custodian shreds the wrapped data and commitment keys: from here
           on no copy of them, in the database or in any backup, opens;
        3. records and wrapped keys are deleted in one transaction;
        4. the directory forgets the subject.
        A crash after 1 leaves the subject intact (erase again: a second receipt);
        after 2 its data is unreadable and erasing again finishes 3 and 4.
        """
        check_id(subject_id, "subject id")
        reason = _check_reason(reason)
        entry = self.directory.get(subject_id)
        store = self._store(entry.home_region)
        row = store.key_row(subject_id)
        if row is None:
            # Keys already gone (a crash between steps 3 and 4): only the directory is left.
            self.directory.remove(subject_id)
            raise NotFound("the subject's keys were already destroyed; its directory entry is now removed")
        census = store.census(subject_id)
        try:
            commitment = store.commitment(subject_id)
        except RempartError:
            commitment = None  # shredded already by an interrupted erasure: finish it
        digests = (wrapped_key_digest(row.data_key), wrapped_key_digest(row.commitment_key))
        destroyed = ("data_key", "commitment_key")
        now = self.clock.now()
        position = self._record(
            "store.erasure",
            {
                "subject": commitment,
                "region": entry.home_region,
                "destroyed": list(destroyed),
                "kek": row.data_key.key_id,
                "wrapped_keys": list(digests),
                "records": sum(census.values()),
                "collections": dict(sorted(census.items())),
                "requested_by": actor.as_entry(),
                "reason": reason,
            },
        )
        store.custody.shred(store.ring, [row.data_key, row.commitment_key])
        store.evict(subject_id)
        store.purge_subject(subject_id)
        self.directory.remove(subject_id)
        return ErasureReceipt(
            commitment=commitment or "",
            region=entry.home_region,
            destroyed=destroyed,
            wrapped_keys=digests,
            records=sum(census.values()),
            collections=dict(census),
            requested_by=actor,
            reason=reason,
            erased_at=format_time(now),
            position=position,
        )

    # -- keys -----------------------------------------------------------------

    def rotate_kek(self, actor: Actor, region: str, *, reason: str) -> RotationReport:
        """New KEK version for a region, then rewrap every subject key under it (record ciphertext untouched).

        The event comes first, naming the new key id; a crash after it leaves
        either the old KEK current (rotate again: same id) or keys partly
        rewrapped (every version still opens; :meth:`rewrap` finishes).
        """
        reason = _check_reason(reason)
        store = self._store(region)
        custody = store.custody
        previous = custody.current_key_id(store.ring)
        new = next_key_id(store.ring, custody.key_ids(store.ring))
        position = self._record(
            "store.key.rotated",
            {
                "region": region,
                "ring": store.ring,
                "previous_key": previous,
                "new_key": new,
                "requested_by": actor.as_entry(),
                "reason": reason,
            },
        )
        custody.rotate(store.ring, new)
        store.evict()
        rewrapped = store.rewrap()
        return RotationReport(region, previous, new, rewrapped, position)

    def rewrap(self, region: str) -> int:
        """Finish an interrupted rotation: rewrap keys still under an older KEK version."""
        return self._store(region).rewrap()

    def retire_kek(self, actor: Actor, region: str, key_id: str, *, reason: str) -> LogPosition:
        """Destroy an old KEK version once nothing is wrapped under it (recorded as ``store.key.retired``).

        Whatever a backup holds wrapped under it can then never be opened: this
        completes, cryptographically, the erasures made since the rotation.
        """
        reason = _check_reason(reason)
        store = self._store(region)
        if key_id not in store.custody.key_ids(store.ring):
            raise NotFound(f"ring {store.ring!r} holds no key {key_id!r}")
        if key_id == store.custody.current_key_id(store.ring):
            raise Conflict(f"{key_id!r} is region {region!r}'s current key; rotate before retiring it")
        still = store.count_wrapped_under(key_id)
        if still:
            raise Conflict(f"{still} subject keys are still wrapped under {key_id!r}; rewrap them first")
        position = self._record(
            "store.key.retired",
            {
                "region": region,
                "ring": store.ring,
                "key": key_id,
                "requested_by": actor.as_entry(),
                "reason": reason,
            },
        )
        store.custody.retire(store.ring, key_id)
        return position

    # -- egress -----------------------------------------------------------------

    def _refuse_egress(
        self, actor: Actor, request: EgressRequest, why: str, error: RempartError, **extra: Any
    ) -> RempartError:
        self._record(
            "egress.refused",
            {
                "region": request.region,
                "destination": request.destination,
                "purpose": request.purpose,
                "collection": request.collection,
                "fields": list(request.fields),
                "why": why,
                "requested_by": actor.as_entry(),
                **extra,
            },
        )
        return error

    def egress(self, actor: Actor, request: EgressRequest) -> EgressTransfer:
        """Send fields of a region's records out, if the region's rules allow it; recorded either way."""
        store = self._store(request.region)
        if not isinstance(request.destination, str) or not DESTINATION_NAME.match(request.destination):
            raise InvalidInput(f"destination {request.destination!r} is not a destination name")
        classes = classify_fields(self.catalog, request.collection, request.fields, request.purpose)
        rules = self.rules[request.region].egress
        if request.destination not in rules.destinations:
            raise self._refuse_egress(
                actor,
                request,
                "destination_not_allowed",
                ResidencyViolation(
                    f"egress from {request.region!r} to {request.destination!r} is refused: not an allowed "
                    f"destination (allowed: {', '.join(rules.destinations) or 'none'})",
                    destination=request.destination,
                ),
            )
        if classes.excepted_refused:
            raise self._refuse_egress(
                actor,
                request,
                "excepted_field_not_for_purpose",
                ResidencyViolation(
                    f"egress refused: excepted field(s) {', '.join(classes.excepted_refused)} of "
                    f"{request.collection!r} may not leave for purpose {request.purpose!r}",
                    fields=list(classes.excepted_refused),
                ),
                refused_fields=list(classes.excepted_refused),
            )
        now = self.clock.now()
        exception_id: str | None = None
        if classes.protected:
            qualified = [f"{request.collection}.{f}" for f in classes.protected]
            exception_id = self.exceptions.find(
                request.region, qualified, request.purpose, request.destination, now
            )
            if exception_id is None:
                raise self._refuse_egress(
                    actor,
                    request,
                    "protected_field",
                    ResidencyViolation(
                        f"egress refused: protected field(s) {', '.join(classes.protected)} of "
                        f"{request.collection!r} never leave region {request.region!r} without a "
                        "governance-approved exception",
                        fields=list(classes.protected),
                    ),
                    refused_fields=list(classes.protected),
                )
        records = self._select(store, request)
        payload_records = [
            {"record_id": r.record_id, "subject": store.commitment(r.subject_id), "fields": dict(r.fields)}
            for r in records
        ]
        header = {
            "format": "rempart/egress/v1",
            "region": request.region,
            "collection": request.collection,
            "fields": sorted(request.fields),
            "purpose": request.purpose,
            "destination": request.destination,
            "time": format_time(now),
        }
        payload, digest = encode_payload(header, payload_records)
        count = len(payload_records)
        body: dict[str, Any] = {
            "region": request.region,
            "destination": request.destination,
            "purpose": request.purpose,
            "collection": request.collection,
            "fields": sorted(request.fields),
            "count": count,
            "digest": digest,
            "bytes": len(payload),
            "exception": exception_id,
            "requested_by": actor.as_entry(),
        }
        limit = rules.budgets.get(request.purpose)
        budgeted = bool(classes.excepted_allowed) and limit is not None
        day = now.date().isoformat()
        reservation: AbstractContextManager[int | None] = (
            self.budgets.reserve(request.region, request.purpose, day, count, limit)
            if budgeted and limit is not None
            else nullcontext(0)
        )
        position: LogPosition | None = None
        refusal: PermissionDenied | None = None
        with reservation as total:
            if total is None:
                refusal = PermissionDenied(
                    f"egress refused: the {request.purpose!r} budget of region {request.region!r} is spent "
                    f"for {day} ({limit} records a day; "
                    f"{self.budgets.used(request.region, request.purpose, day)} used, {count} asked)",
                    purpose=request.purpose,
                    limit=limit,
                )
            else:
                if budgeted:
                    body["budget"] = {"day": day, "limit": limit, "used": total}
                # Recorded inside the budget transaction: it commits only once the entry is durable.
                position = self._record("egress.transfer", body)
        if refusal is not None or position is None:
            raise self._refuse_egress(
                actor,
                request,
                "budget_spent",
                refusal or PermissionDenied("egress refused"),
                budget={"day": day, "limit": limit, "asked": count},
            )
        return EgressTransfer(payload, digest, count, position, exception_id)

    def _select(self, store: RegionStore, request: EgressRequest) -> list[Record]:
        if request.subject_ids is not None:
            for sid in request.subject_ids:
                check_id(sid, "subject id")
        out: list[Record] = []
        cursor: str | None = None
        while len(out) < request.limit:
            page = store.query(
                request.collection,
                where=request.where,
                limit=min(1000, request.limit - len(out)),
                cursor=cursor,
                fields=request.fields,
                subject_ids=request.subject_ids,
            )
            out.extend(page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        return out

    # -- reconciliation ----------------------------------------------------------

    def reconcile(self, *, grace: timedelta = timedelta(hours=1)) -> ReconcileReport:
        """Remove what interrupted operations left behind; recovery runs this same code.

        * a region copy of a subject whose home is elsewhere (an interrupted
          relocation) or who is not in the directory: deleted and its keys shredded;
        * a directory entry older than ``grace`` whose home never got the keys
          (an interrupted creation): removed.
        """
        purged: dict[str, tuple[str, ...]] = {}
        for name, store in self.regions.items():
            gone: list[str] = []
            for subject_id in self._iter_region_subjects(store):
                entry = self.directory.find(subject_id)
                if entry is not None and (entry.home_region == name or entry.relocating_to == name):
                    continue
                self._record(
                    "store.leftover_purged",
                    {
                        "subject": store.commitment(subject_id),
                        "region": name,
                        "home_region": None if entry is None else entry.home_region,
                        "records": sum(store.census(subject_id).values()),
                    },
                )
                self._purge_copy(store, subject_id)
                gone.append(subject_id)
            if gone:
                purged[name] = tuple(gone)
        unclaimed: list[str] = []
        cutoff = format_time(self.clock.now() - grace)
        for name, store in self.regions.items():
            after = ""
            while True:
                entries = self.directory.in_region(name, after=after)
                if not entries:
                    break
                for e in entries:
                    if e.created_at < cutoff and e.relocating_to is None and not store.holds(e.subject_id):
                        self.directory.remove(e.subject_id)
                        unclaimed.append(e.subject_id)
                after = entries[-1].subject_id
        return ReconcileReport(purged, tuple(unclaimed))

    @staticmethod
    def _iter_region_subjects(store: RegionStore) -> Iterator[str]:
        after = ""
        while True:
            batch = store.subjects(after=after)
            if not batch:
                return
            yield from batch
            after = batch[-1]
