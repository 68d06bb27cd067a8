"""Every operation the edges offer, once: who may call it, what it does, and its JSON answer.

The HTTP routes and the embedded SDK (:func:`rempart.open`) both call
:class:`Operations` with an authenticated :class:`~rempart.access.Principal`,
so a rule of the edge (who may manage principals, who sees which access
requests, that an approver posts only their own signed notes) is written
here and nowhere else. Record access always goes through the gateway.

Answers are JSON-ready dicts, the exact bodies the HTTP API sends; the SDK
turns them into frozen dataclasses (:mod:`rempart.client`), the same way
for the remote and the embedded case.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from rempart.access import (
    ClockMode,
    Principal,
    RequestRecord,
    RequestState,
    read_statement,
)
from rempart.access.approvals import APPROVAL_HEADER, REVIEW_HEADER
from rempart.access.model import check_request_id
from rempart.access.principals import check_principal_id
from rempart.access.tokens import TokenInfo
from rempart.audit.subject_report import build_subject_report
from rempart.clock import format_time, parse_time
from rempart.deployment import Deployment
from rempart.errors import InvalidInput, NotFound, PermissionDenied, RempartError
from rempart.gateway import AccessOutcome
from rempart.store.egress import EgressRequest
from rempart.store.records import Actor, Record, check_id
from rempart.tlog.merkle import leaf_hash

__all__ = [
    "ADMIN_ROLE",
    "MAX_TOKEN_LIFETIME",
    "OVERSIGHT_ORGS",
    "DecisionCounts",
    "Operations",
    "principal_json",
    "request_json",
]

ADMIN_ROLE: Final = "admin"
"""An ``operator`` principal with this role manages principals and other principals' tokens."""

OVERSIGHT_ORGS: Final = frozenset({"custodian", "auditor", "board"})
"""Orgs that see every access request and every principal (they supervise; they read no records)."""

MAX_TOKEN_LIFETIME: Final = timedelta(days=90)


def principal_json(p: Principal) -> dict[str, Any]:
    return {
        "id": p.id,
        "display_name": p.display_name,
        "org": p.org,
        "location": p.location,
        "screening": p.screening,
        "roles": sorted(p.roles),
        "purposes": sorted(p.purposes),
        "vkey": p.vkey,
        "disabled": p.disabled,
    }


def request_json(record: RequestRecord, now: datetime) -> dict[str, Any]:
    """An access request record as the API shows it: the stored record plus its state now."""
    body = record.to_json()
    body["id"] = record.id
    body["current_state"] = record.state_at(now).value
    return body


def _token_json(info: TokenInfo, now: datetime) -> dict[str, Any]:
    if info.revoked_at is not None:
        status = "revoked"
    elif now >= info.expires_at:
        status = "expired"
    else:
        status = "active"
    return {
        "id": info.id,
        "principal": info.principal_id,
        "label": info.label,
        "created_at": format_time(info.created_at),
        "expires_at": format_time(info.expires_at),
        "revoked_at": None if info.revoked_at is None else format_time(info.revoked_at),
        "status": status,
    }


def _record_json(record: Record, outcome: AccessOutcome) -> dict[str, Any]:
    return {
        "subject_id": record.subject_id,
        "collection": record.collection,
        "record_id": record.record_id,
        "version": record.version,
        "updated_at": record.updated_at,
        "fields": dict(record.fields),
        "masked": list(outcome.masked_fields),
        "log_index": outcome.position.index,
    }


@dataclass
class DecisionCounts:
    """Gateway outcomes seen by this edge, for ``/metrics`` (thread-safe counters)."""

    allowed: int = 0
    denied: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, allowed: bool) -> None:
        with self._lock:
            if allowed:
                self.allowed += 1
            else:
                self.denied += 1


def _fields_param(fields: Sequence[str] | None) -> list[str] | None:
    """``fields`` as given in a query (repeated, or comma-separated), or None for every field."""
    if fields is None:
        return None
    names = [name.strip() for value in fields for name in value.split(",") if name.strip()]
    if not names:
        raise InvalidInput("fields names at least one field (or leave it out for every field)")
    return names


class Operations:
    """The operations of one deployment's edges, each taking the acting principal first."""

    def __init__(self, deployment: Deployment) -> None:
        self.d = deployment
        self.decisions = DecisionCounts()
        config = deployment.config
        urls = [config.control_database, config.log.database, *(r.store for r in config.regions.values())]
        self.inline = all(url.startswith("sqlite:") for url in urls)
        """Every database is a local SQLite file: hot reads may run on the event loop itself."""

    # -- who may --------------------------------------------------------------------------

    @staticmethod
    def is_admin(principal: Principal) -> bool:
        return principal.org == "operator" and ADMIN_ROLE in principal.roles and not principal.disabled

    def _require_admin(self, principal: Principal, what: str) -> None:
        if not self.is_admin(principal):
            raise PermissionDenied(
                f"{principal.id} may not {what}: only operator principals with role {ADMIN_ROLE!r} may"
            )

    @staticmethod
    def _sees_everything(principal: Principal) -> bool:
        return principal.org in OVERSIGHT_ORGS or Operations.is_admin(principal)

    @contextmanager
    def _counted(self) -> Iterator[None]:
        """Count whether the gateway's decision inside allowed or refused the access."""
        try:
            yield
        except PermissionDenied as exc:
            if "log_index" in exc.details:  # refused by a recorded decision
                self.decisions.count(False)
            raise
        self.decisions.count(True)

    def _gated(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a gateway call, counting whether its decision allowed or refused the access."""
        with self._counted():
            return call(*args, **kwargs)

    # -- principals ------------------------------------------------------------------------

    def whoami(self, principal: Principal) -> dict[str, Any]:
        return principal_json(principal)

    def list_principals(self, principal: Principal, *, org: str | None = None) -> dict[str, Any]:
        if not self._sees_everything(principal):
            raise PermissionDenied(
                f"{principal.id} may not list principals: admins and the custodian, auditor and board "
                "orgs may (everyone may read their own with GET /me)"
            )
        return {"items": [principal_json(p) for p in self.d.principals.list(org=org)]}

    def get_principal(self, principal: Principal, principal_id: str) -> dict[str, Any]:
        check_principal_id(principal_id)
        if principal_id != principal.id and not self._sees_everything(principal):
            raise PermissionDenied(f"{principal.id} may read only their own principal, not {principal_id}")
        return principal_json(self.d.principals.get(principal_id))

    def create_principal(self, principal: Principal, values: Mapping[str, Any]) -> dict[str, Any]:
        self._require_admin(principal, "create principals")
        created = self.d.principals.create(Principal.build(**dict(values)), actor=principal.id)
        return principal_json(created)

    def update_principal(
        self, principal: Principal, principal_id: str, changes: Mapping[str, Any]
    ) -> dict[str, Any]:
        self._require_admin(principal, "change principals")
        check_principal_id(principal_id)
        if not changes:
            raise InvalidInput("an update changes at least one attribute")
        if principal_id == principal.id and (changes.get("disabled") or "roles" in changes):
            raise InvalidInput("an admin cannot disable themselves or change their own roles")
        return principal_json(self.d.principals.update(principal_id, actor=principal.id, **dict(changes)))

    def delete_principal(self, principal: Principal, principal_id: str) -> dict[str, Any]:
        self._require_admin(principal, "delete principals")
        check_principal_id(principal_id)
        if principal_id == principal.id:
            raise InvalidInput("an admin cannot delete themselves")
        self.d.principals.delete(principal_id, actor=principal.id)
        return {"deleted": principal_id}

    # -- tokens ----------------------------------------------------------------------------

    def issue_token(
        self,
        principal: Principal,
        *,
        label: str,
        for_principal: str | None = None,
        lifetime_seconds: int | None = None,
    ) -> dict[str, Any]:
        target = for_principal or principal.id
        if target != principal.id:
            self._require_admin(principal, "issue tokens for other principals")
        if lifetime_seconds is None:
            lifetime = self.d.config.server.token_lifetime
        elif (
            type(lifetime_seconds) is not int
            or not 60 <= lifetime_seconds <= MAX_TOKEN_LIFETIME.total_seconds()
        ):
            raise InvalidInput(
                f"lifetime_seconds must be from 60 to {int(MAX_TOKEN_LIFETIME.total_seconds())}, "
                f"got {lifetime_seconds!r}"
            )
        else:
            lifetime = timedelta(seconds=lifetime_seconds)
        issued = self.d.tokens.issue(target, expires_at=self.d.clock.now() + lifetime, label=label)
        return {
            "id": issued.id,
            "principal": issued.principal_id,
            "label": issued.label,
            "expires_at": format_time(issued.expires_at),
            "token": issued.token,
        }

    def list_tokens(self, principal: Principal, *, of: str | None = None) -> dict[str, Any]:
        target = of or principal.id
        if target != principal.id:
            self._require_admin(principal, "list other principals' tokens")
        check_principal_id(target)
        now = self.d.clock.now()
        return {"items": [_token_json(t, now) for t in self.d.tokens.list(target)]}

    def revoke_token(self, principal: Principal, token_id: str) -> dict[str, Any]:
        if not self.is_admin(principal) and token_id not in {t.id for t in self.d.tokens.list(principal.id)}:
            raise NotFound(f"no token {token_id} among yours", token=token_id)
        info = self.d.tokens.revoke(token_id, actor=principal.id)
        return _token_json(info, self.d.clock.now())

    # -- subjects --------------------------------------------------------------------------

    def create_subject(self, principal: Principal, subject_id: str, region: str) -> dict[str, Any]:
        if not (self.is_admin(principal) or (principal.org == "operator" and "service" in principal.roles)):
            raise PermissionDenied(
                f"{principal.id} may not create subjects: operator services and admins may"
            )
        info = self.d.records.create_subject(Actor(principal.id, principal.org), subject_id, region)
        return {
            "subject_id": info.subject_id,
            "region": info.region,
            "commitment": info.commitment,
            "created_at": info.created_at,
            "log_index": info.position.index,
        }

    def get_subject(self, principal: Principal, subject_id: str) -> dict[str, Any]:
        if principal.org not in ("operator", "custodian"):
            raise PermissionDenied(
                f"{principal.id} may not look up subjects: operators and the custodian may"
            )
        check_id(subject_id, "subject id")
        return {
            "subject_id": subject_id,
            "region": self.d.records.home_region(subject_id),
            "commitment": self.d.records.subject_commitment(subject_id),
        }

    # -- "who accessed my data" -------------------------------------------------------------

    @staticmethod
    def _serves_subjects(principal: Principal) -> bool:
        """Support staff (screened operators with the support role) and the custodian."""
        if principal.disabled:
            return False
        if principal.org == "custodian":
            return True
        return (
            principal.org == "operator" and "support" in principal.roles and principal.screening == "cleared"
        )

    def issue_subject_token(
        self, principal: Principal, subject_id: str, *, lifetime: timedelta
    ) -> dict[str, Any]:
        """A data-subject request: a token that lets the subject fetch their own access report."""
        if not self._serves_subjects(principal):
            raise PermissionDenied(
                f"{principal.id} may not issue subject tokens: support staff and the custodian may"
            )
        check_id(subject_id, "subject id")
        now = self.d.clock.now()
        issued = self.d.subject_tokens.issue(
            subject_id,
            commitment=self.d.records.subject_commitment(subject_id),
            issued_by=principal.id,
            now=now,
            expires_at=now + lifetime,
        )
        return {
            "token": issued.token,
            "token_id": issued.id,
            "subject_id": subject_id,
            "expires_at": format_time(issued.expires_at),
        }

    def subject_report(self, subject_id: str) -> dict[str, Any]:
        """Every log entry about the subject, each with a C2SP tlog-proof against the latest checkpoint."""
        key = self.d.records.commitment_key(subject_id)
        self.d.log.publish_checkpoint()  # so the report covers every access up to now
        report: dict[str, Any] = build_subject_report(self.d.read_path, key, subject_id).to_json()
        return report

    def subject_report_for(self, principal: Principal, subject_id: str) -> dict[str, Any]:
        if not self._serves_subjects(principal):
            raise PermissionDenied(
                f"{principal.id} may not fetch a subject's access report: support staff and the custodian may"
            )
        check_id(subject_id, "subject id")
        return self.subject_report(subject_id)

    def erase_subject(
        self, principal: Principal, subject_id: str, *, reason: str, purpose: str = "data_subject_request"
    ) -> dict[str, Any]:
        check_id(subject_id, "subject id")
        receipt = self._gated(
            self.d.gateway.erase_subject, principal, subject_id=subject_id, purpose=purpose, reason=reason
        )
        return {
            "subject": receipt.commitment,
            "region": receipt.region,
            "destroyed": list(receipt.destroyed),
            "wrapped_keys": list(receipt.wrapped_keys),
            "records": receipt.records,
            "collections": dict(receipt.collections),
            "reason": receipt.reason,
            "erased_at": receipt.erased_at,
            "log_index": receipt.position.index,
        }

    # -- records ---------------------------------------------------------------------------

    def get_record(
        self,
        principal: Principal,
        subject_id: str,
        collection: str,
        record_id: str,
        *,
        purpose: str,
        fields: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        read = self._gated(
            self.d.gateway.read,
            principal,
            subject_id=subject_id,
            collection=collection,
            record_id=record_id,
            purpose=purpose,
            fields=_fields_param(fields),
        )
        return _record_json(read.record, read.outcome)

    async def get_record_async(
        self,
        principal: Principal,
        subject_id: str,
        collection: str,
        record_id: str,
        *,
        purpose: str,
        fields: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """:meth:`get_record` on the event loop: only the durable log append yields."""
        with self._counted():
            read = await self.d.gateway.read_async(
                principal,
                subject_id=subject_id,
                collection=collection,
                record_id=record_id,
                purpose=purpose,
                fields=_fields_param(fields),
            )
        return _record_json(read.record, read.outcome)

    def list_records(
        self,
        principal: Principal,
        subject_id: str,
        collection: str,
        *,
        purpose: str,
        fields: Sequence[str] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        page = self._gated(
            self.d.gateway.list_records,
            principal,
            subject_id=subject_id,
            collection=collection,
            purpose=purpose,
            fields=_fields_param(fields),
            limit=limit,
            cursor=cursor,
        )
        return {
            "items": [_record_json(r, page.outcome) for r in page.page.items],
            "next_cursor": page.page.next_cursor,
            "masked": list(page.outcome.masked_fields),
            "log_index": page.outcome.position.index,
        }

    def put_record(
        self,
        principal: Principal,
        subject_id: str,
        collection: str,
        record_id: str,
        *,
        values: Mapping[str, Any],
        purpose: str,
        expected_version: int | None = None,
        region: str | None = None,
    ) -> dict[str, Any]:
        record, outcome = self._gated(
            self.d.gateway.write,
            principal,
            subject_id=subject_id,
            collection=collection,
            record_id=record_id,
            values=values,
            purpose=purpose,
            region=region,
            expected_version=expected_version,
        )
        body = _record_json(record, outcome)
        body["fields"] = {}  # a write answers with where it landed, not with the data back
        return body

    def delete_record(
        self,
        principal: Principal,
        subject_id: str,
        collection: str,
        record_id: str,
        *,
        purpose: str,
        expected_version: int,
    ) -> dict[str, Any]:
        outcome = self._gated(
            self.d.gateway.delete,
            principal,
            subject_id=subject_id,
            collection=collection,
            record_id=record_id,
            purpose=purpose,
            expected_version=expected_version,
        )
        return {
            "subject_id": subject_id,
            "collection": collection,
            "record_id": record_id,
            "deleted": True,
            "log_index": outcome.position.index,
        }

    # -- access requests -----------------------------------------------------------------

    def request_access(
        self,
        principal: Principal,
        *,
        region: str,
        fields: Sequence[str],
        purpose: str,
        ticket: str,
        duration_seconds: int,
        subjects: Sequence[str] = (),
        bulk_limit: int | None = None,
        start_at: str | None = None,
        clock_mode: str = ClockMode.AT_APPROVAL.value,
        break_glass: bool = False,
    ) -> dict[str, Any]:
        scope = self.d.gateway.scope(
            region=region, fields=list(fields), subject_ids=list(subjects), bulk_limit=bulk_limit
        )
        duration = timedelta(seconds=duration_seconds)
        if break_glass:
            record = self.d.gateway.break_glass(
                principal, scope=scope, purpose=purpose, ticket=ticket, duration=duration
            )
        else:
            if clock_mode not in {m.value for m in ClockMode}:
                raise InvalidInput(f"clock_mode {clock_mode!r} is not one of at_approval, at_first_use")
            record = self.d.gateway.request_access(
                principal,
                scope=scope,
                purpose=purpose,
                ticket=ticket,
                duration=duration,
                start_at=None if start_at is None else _time(start_at, "start_at"),
                clock_mode=ClockMode(clock_mode),
            )
        return request_json(record, self.d.clock.now())

    def _visible(self, principal: Principal, record: RequestRecord) -> RequestRecord:
        if record.request.requester != principal.id and not self._sees_everything(principal):
            raise NotFound(f"no access request {record.id} among yours", request=record.id)
        return record

    def list_access_requests(
        self,
        principal: Principal,
        *,
        state: str | None = None,
        requester: str | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        if state is not None and state not in {s.value for s in RequestState}:
            raise InvalidInput(f"state {state!r} is not one of: {', '.join(s.value for s in RequestState)}")
        if not self._sees_everything(principal):
            if requester not in (None, principal.id):
                raise PermissionDenied(f"{principal.id} may list only their own access requests")
            requester = principal.id
        now = self.d.clock.now()
        records = self.d.access.grants.list(
            state=None if state is None else RequestState(state), requester=requester, limit=limit
        )
        return {"items": [request_json(r, now) for r in records]}

    def get_access_request(self, principal: Principal, request_id: str) -> dict[str, Any]:
        check_request_id(request_id)
        now = self.d.clock.now()
        return request_json(self._visible(principal, self.d.access.get(request_id, now=now)), now)

    def _own_note(self, principal: Principal, note: str, header: str) -> None:
        claimed = read_statement(note, expect=header)
        if claimed.signer != principal.id:
            raise PermissionDenied(
                f"the note is signed as {claimed.signer}, but you are {principal.id}: "
                "post only notes you signed with your own key"
            )

    def add_approval(self, principal: Principal, request_id: str, note: str) -> dict[str, Any]:
        """Record a signed approval or denial (``decision`` inside the note) from its signer."""
        check_request_id(request_id)
        self._own_note(principal, note, APPROVAL_HEADER)
        now = self.d.clock.now()
        return request_json(self.d.access.record_approval(request_id, note, now=now), now)

    def add_review(self, principal: Principal, request_id: str, note: str) -> dict[str, Any]:
        check_request_id(request_id)
        self._own_note(principal, note, REVIEW_HEADER)
        now = self.d.clock.now()
        return request_json(self.d.access.record_review(request_id, note, now=now), now)

    def withdraw(self, principal: Principal, request_id: str) -> dict[str, Any]:
        check_request_id(request_id)
        now = self.d.clock.now()
        self._visible(principal, self.d.access.get(request_id, now=now))
        return request_json(self.d.access.withdraw(request_id, by=principal.id, now=now), now)

    def revoke(self, principal: Principal, request_id: str, *, reason: str) -> dict[str, Any]:
        check_request_id(request_id)
        now = self.d.clock.now()
        self._visible(principal, self.d.access.get(request_id, now=now))
        return request_json(self.d.access.revoke(request_id, by=principal.id, reason=reason, now=now), now)

    # -- egress and releases -----------------------------------------------------------------

    def egress(
        self,
        principal: Principal,
        *,
        region: str,
        collection: str,
        fields: Sequence[str],
        purpose: str,
        destination: str,
        subject_ids: Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
        limit: int = 10_000,
    ) -> dict[str, Any]:
        request = EgressRequest(
            region=region,
            collection=collection,
            fields=tuple(fields),
            purpose=purpose,
            destination=destination,
            subject_ids=None if subject_ids is None else tuple(subject_ids),
            where=dict(where or {}),
            limit=limit,
        )
        transfer = self._gated(self.d.gateway.egress, principal, request)
        return {
            "count": transfer.count,
            "digest": transfer.digest,
            "log_index": transfer.position.index,
            "exception": transfer.exception,
            "payload": transfer.payload.decode("utf-8"),
        }

    def verify_release(self, principal: Principal, digest: str, region: str) -> dict[str, Any]:
        return self.d.governance.releases.verify_release(digest, region).to_json()

    # -- the log (public) ------------------------------------------------------------------

    def inclusion_proof(self, index: int, size: int) -> dict[str, Any]:
        if index < 0 or index >= size:
            raise InvalidInput(f"index {index} is not in 0..{size - 1} (the tree of size {size})")
        hashes = self.d.read_path.inclusion_proof(index, size)
        return {
            "index": index,
            "size": size,
            "leaf_hash": base64.b64encode(leaf_hash(self.d.read_path.entry(index))).decode(),
            "hashes": [base64.b64encode(h).decode() for h in hashes],
        }

    def consistency_proof(self, old: int, new: int) -> dict[str, Any]:
        if not 0 < old <= new:
            raise InvalidInput(f"old size {old} must be from 1 to the new size {new}")
        hashes = self.d.read_path.consistency_proof(old, new)
        return {"old": old, "new": new, "hashes": [base64.b64encode(h).decode() for h in hashes]}

    def witnessing(self) -> dict[str, Any]:
        w = self.d.witnessing
        if w is None:
            return {
                "configured": False,
                "size": None,
                "cosigned_by": [],
                "threshold": 0,
                "below_threshold": False,
                "witnesses": [],
            }
        status = w.status()
        return {
            "configured": True,
            "size": status.size,
            "cosigned_by": list(status.cosigned_by),
            "threshold": status.threshold,
            "below_threshold": status.below_threshold,
            "witnesses": [
                {
                    "name": h.name,
                    "url": h.url,
                    "known_size": h.known_size,
                    "last_success_size": h.last_success_size,
                    "last_success_at": h.last_success_at,
                    "last_error": h.last_error,
                    "last_error_at": h.last_error_at,
                }
                for h in status.witnesses
            ],
        }

    def readiness(self) -> dict[str, Any]:
        """Check that the control database, every region's database and the log answer."""
        checks: dict[str, str] = {}

        def probe(name: str, call: Any) -> None:
            try:
                call()
            except (RempartError, OSError, RuntimeError) as exc:
                checks[name] = f"unavailable: {exc}"
            else:
                checks[name] = "ok"

        probe("control", lambda: self.d.control.query_one("SELECT 1"))
        for name, store in sorted(self.d.records.regions.items()):
            probe(f"region:{name}", lambda db=store.db: db.query_one("SELECT 1"))
        probe("log", self.d.read_path.checkpoint)
        return {"ready": all(v == "ok" for v in checks.values()), "checks": checks}


def _time(value: str, what: str) -> datetime:
    try:
        return parse_time(value)
    except ValueError as exc:
        raise InvalidInput(f"{what} {value!r} is not an RFC 3339 time: {exc}") from exc
