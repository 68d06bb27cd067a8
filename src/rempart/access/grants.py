"""Access requests and the grants they become, in the control database.

Contract (the same on SQLite and PostgreSQL, pinned by
``tests/conformance/test_access_store.py``):

* :meth:`GrantStore.commit` stores a transition atomically with its events:
  inside one database transaction it writes the record (a new one, or an
  update guarded by the version it was read at) and records every event
  through the :class:`~rempart.events.EventRecorder`; it commits only after
  the log acknowledged them. If the log cannot record, nothing is stored
  (:class:`~rempart.errors.AuditUnavailable`); if another writer got there
  first, :class:`~rempart.errors.Conflict` and nothing is stored.
* A crash after the log acknowledged but before the commit leaves an event
  for a transition that did not happen; the record is still in its old
  state and the next attempt records it again. The log never lacks a
  transition that did happen.
* :meth:`GrantStore.find_active` is one indexed query (requester, region,
  purpose, state) plus, for bulk grants, one primary-key probe.
* :meth:`GrantStore.claim` gives a bulk grant's subject a slot atomically:
  never more distinct subjects than the count limit, even under concurrency.
"""

from __future__ import annotations

import builtins
import json
import threading
from collections import OrderedDict
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

from rempart.access.lifecycle import Transition
from rempart.access.model import Grant, RequestRecord, RequestState, check_request_id
from rempart.clock import format_time
from rempart.db import Database, Transaction
from rempart.errors import Conflict, InvalidInput, NotFound
from rempart.events import EventRecorder

__all__ = ["GrantStore", "StaleRecord"]

SCHEMA_STEPS = [
    (
        "access-0003-requests",
        """
        CREATE TABLE access_requests (
            id TEXT PRIMARY KEY,
            requester TEXT NOT NULL REFERENCES access_principals (id),
            region TEXT NOT NULL,
            purpose TEXT NOT NULL,
            state TEXT NOT NULL,
            break_glass INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            next_due TEXT,
            review_due TEXT,
            claimed {bigint} NOT NULL,
            bulk_limit {bigint},
            version {bigint} NOT NULL,
            record TEXT NOT NULL
        );
        CREATE INDEX access_requests_lookup ON access_requests (requester, region, purpose, state);
        CREATE INDEX access_requests_due ON access_requests (next_due);
        CREATE INDEX access_requests_review ON access_requests (review_due);
        CREATE INDEX access_requests_state ON access_requests (state, created_at);
        CREATE TABLE access_claims (
            request_id TEXT NOT NULL REFERENCES access_requests (id),
            subject TEXT NOT NULL,
            claimed_at TEXT NOT NULL,
            PRIMARY KEY (request_id, subject)
        )
        """,
    ),
]

_LIVE: Final = (RequestState.APPROVED.value, RequestState.ACTIVE.value)
_NEVER_SET: Final = datetime.min.replace(tzinfo=UTC)  # ranks a grant with no expiry yet below any other
_CACHE_SIZE: Final = 4096


def _next_due(record: RequestRecord) -> datetime | None:
    """The earliest time a transition is due by time alone (what the sweep looks for)."""
    state = record.state
    if state is RequestState.PENDING:
        return record.decide_by
    if state is RequestState.APPROVED:
        if record.starts_at is None:
            return record.use_by
        return record.starts_at
    if state is RequestState.ACTIVE:
        return record.expires_at
    return None


def _review_due(record: RequestRecord) -> datetime | None:
    if not record.request.break_glass or record.reviewed:
        return None
    return record.review_due


def _opt(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


class StaleRecord(Conflict):
    """Another writer changed the record since it was read: read it again and retry."""


class _BulkFull(Exception):
    """Internal: a bulk grant has no slot left (rolls the claim back)."""


class GrantStore:
    """Stores request records and answers the gateway's "which grant applies" question."""

    def __init__(self, database: Database, *, recorder: EventRecorder) -> None:
        self.db = database
        self.recorder = recorder
        database.migrate(SCHEMA_STEPS)
        self._parsed: OrderedDict[tuple[str, int], RequestRecord] = OrderedDict()
        self._lock = threading.Lock()

    # -- writing ------------------------------------------------------------------

    def commit(self, transition: Transition, *, expected_version: int | None) -> RequestRecord:
        """Store ``transition.record`` and record its events, atomically; return the stored record.

        ``expected_version`` is None for a new record, else the version the
        record was read at. A transition without events changes nothing.
        """
        if not transition.events:
            return transition.record
        version = 1 if expected_version is None else expected_version + 1
        stored = replace(transition.record, version=version)
        text = json.dumps(stored.to_json(), sort_keys=True, separators=(",", ":"))
        with self.db.transaction() as tx:
            if expected_version is None:
                self._insert(tx, stored, text)
            else:
                cursor = tx.execute(
                    "UPDATE access_requests SET state = ?, next_due = ?, review_due = ?, "
                    "version = ?, record = ? WHERE id = ? AND version = ?",
                    (
                        stored.state.value,
                        _opt(_next_due(stored)),
                        _opt(_review_due(stored)),
                        stored.version,
                        text,
                        stored.id,
                        expected_version,
                    ),
                )
                if cursor.rowcount != 1:
                    raise StaleRecord(
                        f"access request {stored.id} changed meanwhile (expected version "
                        f"{expected_version}); read it again and retry",
                        request=stored.id,
                    )
            for event in transition.events:
                self.recorder.record(event)  # AuditUnavailable rolls the transaction back
        return stored

    def _insert(self, tx: Transaction, record: RequestRecord, text: str) -> None:
        request = record.request
        cursor = tx.execute(
            "INSERT INTO access_requests (id, requester, region, purpose, state, break_glass, "
            "created_at, next_due, review_due, claimed, bulk_limit, version, record) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (
                record.id,
                request.requester,
                request.scope.region,
                request.purpose,
                record.state.value,
                int(request.break_glass),
                format_time(request.created_at),
                _opt(_next_due(record)),
                _opt(_review_due(record)),
                request.scope.bulk_limit,
                record.version,
                text,
            ),
        )
        if cursor.rowcount != 1:
            raise Conflict(f"access request {record.id} already exists", request=record.id)

    def claim(self, request_id: str, subject: str, now: datetime) -> bool:
        """Give ``subject`` a slot of bulk grant ``request_id``; False when every slot is taken.

        A subject that already holds a slot keeps it (True).
        """
        check_request_id(request_id)
        try:
            with self.db.transaction() as tx:
                cursor = tx.execute(
                    "INSERT INTO access_claims (request_id, subject, claimed_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (request_id, subject) DO NOTHING",
                    (request_id, subject, format_time(now)),
                )
                if cursor.rowcount == 0:
                    return True
                cursor = tx.execute(
                    "UPDATE access_requests SET claimed = claimed + 1 "
                    "WHERE id = ? AND bulk_limit IS NOT NULL AND claimed < bulk_limit",
                    (request_id,),
                )
                if cursor.rowcount != 1:
                    raise _BulkFull
        except _BulkFull:
            return False
        return True

    def claimed(self, request_id: str) -> int:
        """How many subjects hold a slot of this bulk grant."""
        row = self.db.query_one("SELECT claimed FROM access_requests WHERE id = ?", (request_id,))
        if row is None:
            raise NotFound(f"no access request {request_id}", request=request_id)
        return int(row[0])

    # -- reading --------------------------------------------------------------------

    def _parse(self, ident: str, version: int, text: str) -> RequestRecord:
        key = (ident, version)
        with self._lock:
            found = self._parsed.get(key)
            if found is not None:
                self._parsed.move_to_end(key)
                return found
        record = RequestRecord.from_json(json.loads(text))
        with self._lock:
            self._parsed[key] = record
            while len(self._parsed) > _CACHE_SIZE:
                self._parsed.popitem(last=False)
        return record

    def _records(self, rows: builtins.list[tuple[Any, ...]]) -> builtins.list[RequestRecord]:
        """Records from ``SELECT id, version, record`` rows."""
        return [self._parse(str(r[0]), int(r[1]), str(r[2])) for r in rows]

    def find(self, request_id: str) -> RequestRecord | None:
        row = self.db.query_one(
            "SELECT id, version, record FROM access_requests WHERE id = ?", (request_id,)
        )
        return None if row is None else self._parse(str(row[0]), int(row[1]), str(row[2]))

    def get(self, request_id: str) -> RequestRecord:
        check_request_id(request_id)
        found = self.find(request_id)
        if found is None:
            raise NotFound(f"no access request {request_id}", request=request_id)
        return found

    def list(
        self,
        *,
        state: RequestState | None = None,
        requester: str | None = None,
        limit: int = 100,
    ) -> builtins.list[RequestRecord]:
        """Records, newest first, optionally in one recorded state or by one requester."""
        if type(limit) is not int or not 1 <= limit <= 10_000:
            raise InvalidInput("limit is between 1 and 10000")
        clauses: builtins.list[str] = []
        params: builtins.list[Any] = []
        if state is not None:
            clauses.append("state = ?")
            params.append(RequestState(state).value)
        if requester is not None:
            clauses.append("requester = ?")
            params.append(requester)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.db.query_all(
            f"SELECT id, version, record FROM access_requests{where} "
            f"ORDER BY created_at DESC, id LIMIT {limit}",
            params,
        )
        return self._records(rows)

    def due(self, now: datetime) -> builtins.list[RequestRecord]:
        """Records with a time-driven transition due at ``now`` (for the sweep)."""
        rows = self.db.query_all(
            "SELECT id, version, record FROM access_requests WHERE next_due IS NOT NULL "
            "AND next_due <= ? ORDER BY next_due, id",
            (format_time(now),),
        )
        return self._records(rows)

    def overdue_reviews(self, now: datetime) -> builtins.list[RequestRecord]:
        """Break-glass grants with no counted review whose review was due by ``now``."""
        rows = self.db.query_all(
            "SELECT id, version, record FROM access_requests WHERE review_due IS NOT NULL "
            "AND review_due <= ? ORDER BY review_due, id",
            (format_time(now),),
        )
        return self._records(rows)

    def find_active(
        self,
        principal_id: str,
        region: str,
        collection: str,
        subject: str,
        purpose: str,
        now: datetime,
    ) -> Grant | None:
        """The best grant of ``principal_id`` for this access, seen for ``subject`` at ``now``.

        Candidates are the principal's approved or active grants for the region
        and purpose whose scope names the collection. The one returned is, in
        order of preference: active and covering the subject; active; any
        other (not yet started, awaiting first use, expired by time). It may
        therefore not be usable: the decision built from it says why. For a
        bulk grant ``subject`` is covered if it holds one of the slots
        (:meth:`claim`). ``subject`` is the subject's keyed commitment.
        """
        # One query: each live grant, and whether this subject holds a slot of it (bulk).
        rows = self.db.query_all(
            "SELECT r.id, r.version, r.record, r.bulk_limit, c.subject FROM access_requests r "
            "LEFT JOIN access_claims c ON c.request_id = r.id AND c.subject = ? "
            "WHERE r.requester = ? AND r.region = ? AND r.purpose = ? AND r.state IN (?, ?)",
            (subject, principal_id, region, purpose, *_LIVE),
        )
        best: tuple[tuple[int, int, datetime], Grant] | None = None
        for ident, version, text, bulk_limit, held in rows:
            record = self._parse(str(ident), int(version), str(text))
            if collection not in record.request.scope.collections:
                continue
            if bulk_limit is not None:
                grant = record.grant(subjects=frozenset({subject}) if held is not None else frozenset())
            else:
                grant = record.grant()
            active = grant.status_at(now) == "active"
            rank = (
                int(active and grant.covers(subject)),
                int(active),
                grant.expires_at or _NEVER_SET,
            )
            if best is None or rank > best[0]:
                best = (rank, grant)
        return None if best is None else best[1]
