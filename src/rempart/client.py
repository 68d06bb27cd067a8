"""The Python SDK: :class:`Client` over HTTP, and :func:`open` for the same operations in-process.

Both offer the same methods with the same typed answers (frozen dataclasses)
and raise the same :class:`~rempart.errors.RempartError` subclasses: a
problem document's ``code`` picks the class on the remote side.

Remote (a server started with ``rempart serve``)::

    import rempart

    with rempart.Client("http://127.0.0.1:8080", token="rpt_…") as api:
        rec = api.get_record("us-0001", "contact", "main", purpose="customer_support")
        print(rec.fields, "masked:", rec.masked, "decision at log index", rec.log_index)

Embedded (no server; the process opens the deployment's databases itself):

>>> import tempfile
>>> import rempart
>>> data = tempfile.mkdtemp()
>>> with rempart.open(data) as r:            # the embedded default: SQLite in `data`
...     r.health()
...     r.checkpoint().startswith(b"rempart.local/log\\n")
{'status': 'ok'}
True

Acting as someone needs a principal (``rempart.open(data, principal="operator:alice")``,
or ``r.acting_as("custodian:carol")``): every record access still goes
through the gateway, its policies and the log.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from rempart import errors as _errors
from rempart.access.model import ApprovalDecision, RequestRecord, ReviewVerdict
from rempart.clock import SystemClock, parse_time
from rempart.errors import (
    InvalidInput,
    PayloadTooLarge,
    RateLimited,
    RempartError,
    StorageUnavailable,
    Unauthenticated,
)
from rempart.governance.releases import ReleaseState, ReleaseStatus
from rempart.tlog.note import Signer

__all__ = [
    "AccessRequestInfo",
    "Client",
    "ConsistencyProof",
    "Deletion",
    "EgressResult",
    "Embedded",
    "Erasure",
    "InclusionProof",
    "NewToken",
    "PayloadTooLarge",
    "PrincipalInfo",
    "RateLimited",
    "Readiness",
    "RecordData",
    "RecordPage",
    "Subject",
    "TokenRecord",
    "WitnessingInfo",
    "error_from_problem",
    "my_access_report",
    "open",
    "resolve_config",
]


# -- typed answers ---------------------------------------------------------------------------


def _tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value or ())


@dataclass(frozen=True, slots=True)
class PrincipalInfo:
    id: str
    display_name: str
    org: str
    location: str
    screening: str
    roles: tuple[str, ...]
    purposes: tuple[str, ...]
    vkey: str | None
    disabled: bool

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> PrincipalInfo:
        return cls(
            d["id"],
            d["display_name"],
            d["org"],
            d["location"],
            d["screening"],
            _tuple(d["roles"]),
            _tuple(d["purposes"]),
            d["vkey"],
            bool(d["disabled"]),
        )


@dataclass(frozen=True, slots=True)
class NewToken:
    """A freshly issued token; ``token`` is the secret, shown once (never in ``repr``)."""

    id: str
    principal: str
    label: str
    expires_at: datetime
    token: str = field(repr=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> NewToken:
        return cls(d["id"], d["principal"], d["label"], parse_time(d["expires_at"]), d["token"])


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    principal: str
    label: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    status: str

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TokenRecord:
        revoked = d["revoked_at"]
        return cls(
            d["id"],
            d["principal"],
            d["label"],
            parse_time(d["created_at"]),
            parse_time(d["expires_at"]),
            None if revoked is None else parse_time(revoked),
            d["status"],
        )


@dataclass(frozen=True, slots=True)
class Subject:
    """A subject's home region and keyed commitment (``log_index``: where its creation is recorded)."""

    subject_id: str
    region: str
    commitment: str
    created_at: str | None = None
    log_index: int | None = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Subject:
        return cls(d["subject_id"], d["region"], d["commitment"], d.get("created_at"), d.get("log_index"))


@dataclass(frozen=True, slots=True)
class RecordData:
    """A record as the gateway returned it: the allowed fields, the names of those masked."""

    subject_id: str
    collection: str
    record_id: str
    version: int
    updated_at: str
    fields: Mapping[str, Any]
    masked: tuple[str, ...]
    log_index: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RecordData:
        return cls(
            d["subject_id"],
            d["collection"],
            d["record_id"],
            int(d["version"]),
            d["updated_at"],
            dict(d["fields"]),
            _tuple(d["masked"]),
            int(d["log_index"]),
        )


@dataclass(frozen=True, slots=True)
class RecordPage:
    items: tuple[RecordData, ...]
    next_cursor: str | None
    masked: tuple[str, ...]
    log_index: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RecordPage:
        return cls(
            tuple(RecordData.from_json(r) for r in d["items"]),
            d["next_cursor"],
            _tuple(d["masked"]),
            int(d["log_index"]),
        )


@dataclass(frozen=True, slots=True)
class Deletion:
    subject_id: str
    collection: str
    record_id: str
    log_index: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Deletion:
        return cls(d["subject_id"], d["collection"], d["record_id"], int(d["log_index"]))


@dataclass(frozen=True, slots=True)
class Erasure:
    """The erasure receipt: what was destroyed, recorded at ``log_index``."""

    subject: str | None
    region: str
    destroyed: tuple[str, ...]
    wrapped_keys: tuple[str, ...]
    records: int
    collections: Mapping[str, int]
    reason: str
    erased_at: str
    log_index: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Erasure:
        return cls(
            d["subject"],
            d["region"],
            _tuple(d["destroyed"]),
            _tuple(d["wrapped_keys"]),
            int(d["records"]),
            dict(d["collections"]),
            d["reason"],
            d["erased_at"],
            int(d["log_index"]),
        )


@dataclass(frozen=True, slots=True)
class AccessRequestInfo:
    """An access request's record (the access room's own value) and the state its times imply now."""

    record: RequestRecord
    current_state: str

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def state(self) -> str:
        return self.record.state.value

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> AccessRequestInfo:
        body = {k: v for k, v in d.items() if k not in ("id", "current_state")}
        return cls(RequestRecord.from_json(body), d["current_state"])


@dataclass(frozen=True, slots=True)
class EgressResult:
    """What left the region: exactly ``payload``, whose SHA-256 is ``digest``."""

    count: int
    digest: str
    log_index: int
    exception: str | None
    payload: bytes

    def records(self) -> list[dict[str, Any]]:
        data: dict[str, Any] = json.loads(self.payload)
        return list(data["records"])

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> EgressResult:
        return cls(
            int(d["count"]),
            d["digest"],
            int(d["log_index"]),
            d["exception"],
            str(d["payload"]).encode("utf-8"),
        )


@dataclass(frozen=True, slots=True)
class InclusionProof:
    index: int
    size: int
    leaf_hash: bytes
    hashes: tuple[bytes, ...]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> InclusionProof:
        return cls(
            int(d["index"]),
            int(d["size"]),
            base64.b64decode(d["leaf_hash"]),
            tuple(base64.b64decode(h) for h in d["hashes"]),
        )


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    old: int
    new: int
    hashes: tuple[bytes, ...]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ConsistencyProof:
        return cls(int(d["old"]), int(d["new"]), tuple(base64.b64decode(h) for h in d["hashes"]))


@dataclass(frozen=True, slots=True)
class WitnessingInfo:
    configured: bool
    size: int | None
    cosigned_by: tuple[str, ...]
    threshold: int
    below_threshold: bool
    witnesses: tuple[Mapping[str, Any], ...]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> WitnessingInfo:
        return cls(
            bool(d["configured"]),
            d["size"],
            _tuple(d["cosigned_by"]),
            int(d["threshold"]),
            bool(d["below_threshold"]),
            tuple(dict(w) for w in d["witnesses"]),
        )


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    checks: Mapping[str, str]


def _release_status(d: Mapping[str, Any]) -> ReleaseStatus:
    return ReleaseStatus(
        state=ReleaseState(d["state"]),
        digest=d["digest"],
        region=d["region"],
        release=d["release"],
        name=d["name"],
        kind=d["kind"],
        submitter=d["submitter"],
        reviewers=_tuple(d["reviewers"]),
        threshold=d["threshold"],
        revoked_by=d["revoked_by"],
        reason=d["reason"],
    )


# -- errors from problem documents -------------------------------------------------------------


def _error_classes() -> dict[str, type[RempartError]]:
    found: dict[str, type[RempartError]] = {}
    pending: list[type[RempartError]] = [RempartError]
    while pending:
        cls = pending.pop()
        if cls.__module__ in (_errors.__name__, __name__):
            found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


_STANDARD_MEMBERS = frozenset({"type", "title", "status", "detail", "instance", "code"})


def error_from_problem(status: int, body: bytes) -> RempartError:
    """The RempartError a problem document stands for (its ``code``), with its extension members."""
    try:
        doc: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("code"), str):
        text = body[:200].decode("utf-8", "replace")
        if status >= 500:
            return StorageUnavailable(f"the server answered HTTP {status}: {text}")
        return RempartError(f"the server answered HTTP {status}: {text}")
    cls = _error_classes().get(doc["code"])
    details = {k: v for k, v in doc.items() if k not in _STANDARD_MEMBERS}
    message = str(doc.get("detail") or doc.get("title") or doc["code"])
    if cls is None:
        error = RempartError(message, **details)
        error.code = doc["code"]  # type: ignore[misc]
        return error
    return cls(message, **details)


# -- the operations, once --------------------------------------------------------------------


class _Operations:
    """The SDK's methods; subclasses say how one operation is carried out (HTTP or in-process)."""

    def _op(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    # principals and tokens
    def whoami(self) -> PrincipalInfo:
        return PrincipalInfo.from_json(self._op("whoami"))

    def list_principals(self, *, org: str | None = None) -> list[PrincipalInfo]:
        return [PrincipalInfo.from_json(p) for p in self._op("list_principals", org=org)["items"]]

    def get_principal(self, principal_id: str) -> PrincipalInfo:
        return PrincipalInfo.from_json(self._op("get_principal", principal_id))

    def create_principal(
        self,
        *,
        id: str,
        display_name: str,
        org: str,
        location: str,
        screening: str,
        roles: Sequence[str] = (),
        purposes: Sequence[str] = (),
        vkey: str | None = None,
        disabled: bool = False,
    ) -> PrincipalInfo:
        values = {
            "id": id,
            "display_name": display_name,
            "org": org,
            "location": location,
            "screening": screening,
            "roles": list(roles),
            "purposes": list(purposes),
            "vkey": vkey,
            "disabled": disabled,
        }
        return PrincipalInfo.from_json(self._op("create_principal", values))

    def update_principal(self, principal_id: str, **changes: Any) -> PrincipalInfo:
        for key in ("roles", "purposes"):
            if key in changes and changes[key] is not None:
                changes[key] = list(changes[key])
        return PrincipalInfo.from_json(self._op("update_principal", principal_id, changes))

    def disable_principal(self, principal_id: str) -> PrincipalInfo:
        return self.update_principal(principal_id, disabled=True)

    def delete_principal(self, principal_id: str) -> None:
        self._op("delete_principal", principal_id)

    def issue_token(
        self, *, label: str, principal: str | None = None, lifetime_seconds: int | None = None
    ) -> NewToken:
        return NewToken.from_json(
            self._op("issue_token", label=label, for_principal=principal, lifetime_seconds=lifetime_seconds)
        )

    def list_tokens(self, *, principal: str | None = None) -> list[TokenRecord]:
        return [TokenRecord.from_json(t) for t in self._op("list_tokens", of=principal)["items"]]

    def revoke_token(self, token_id: str) -> TokenRecord:
        return TokenRecord.from_json(self._op("revoke_token", token_id))

    # subjects and records
    def create_subject(self, subject_id: str, region: str) -> Subject:
        return Subject.from_json(self._op("create_subject", subject_id, region))

    def get_subject(self, subject_id: str) -> Subject:
        return Subject.from_json(self._op("get_subject", subject_id))

    def issue_subject_token(
        self, subject_id: str, *, lifetime: timedelta = timedelta(days=7)
    ) -> dict[str, Any]:
        """Support's side of a data-subject request: a token (shown once) for the subject's own report."""
        token: dict[str, Any] = self._op("issue_subject_token", subject_id, lifetime=lifetime)
        return token

    def subject_access_report(self, subject_id: str) -> dict[str, Any]:
        """Every log entry about the subject, each with a base64 C2SP tlog-proof (support and custodian)."""
        report: dict[str, Any] = self._op("subject_report_for", subject_id)
        return report

    def erase_subject(
        self, subject_id: str, *, reason: str, purpose: str = "data_subject_request"
    ) -> Erasure:
        return Erasure.from_json(self._op("erase_subject", subject_id, reason=reason, purpose=purpose))

    def get_record(
        self,
        subject_id: str,
        collection: str,
        record_id: str,
        *,
        purpose: str,
        fields: Sequence[str] | None = None,
    ) -> RecordData:
        return RecordData.from_json(
            self._op(
                "get_record",
                subject_id,
                collection,
                record_id,
                purpose=purpose,
                fields=None if fields is None else list(fields),
            )
        )

    def list_records(
        self,
        subject_id: str,
        collection: str,
        *,
        purpose: str,
        fields: Sequence[str] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> RecordPage:
        return RecordPage.from_json(
            self._op(
                "list_records",
                subject_id,
                collection,
                purpose=purpose,
                fields=None if fields is None else list(fields),
                limit=limit,
                cursor=cursor,
            )
        )

    def put_record(
        self,
        subject_id: str,
        collection: str,
        record_id: str,
        values: Mapping[str, Any],
        *,
        purpose: str,
        expected_version: int | None = None,
        region: str | None = None,
    ) -> RecordData:
        return RecordData.from_json(
            self._op(
                "put_record",
                subject_id,
                collection,
                record_id,
                values=dict(values),
                purpose=purpose,
                expected_version=expected_version,
                region=region,
            )
        )

    def delete_record(
        self, subject_id: str, collection: str, record_id: str, *, purpose: str, expected_version: int
    ) -> Deletion:
        return Deletion.from_json(
            self._op(
                "delete_record",
                subject_id,
                collection,
                record_id,
                purpose=purpose,
                expected_version=expected_version,
            )
        )

    # access requests
    def request_access(
        self,
        *,
        region: str,
        fields: Sequence[str],
        purpose: str,
        ticket: str,
        duration_seconds: int,
        subjects: Sequence[str] = (),
        bulk_limit: int | None = None,
        start_at: str | None = None,
        clock_mode: str = "at_approval",
    ) -> AccessRequestInfo:
        return AccessRequestInfo.from_json(
            self._op(
                "request_access",
                region=region,
                fields=list(fields),
                purpose=purpose,
                ticket=ticket,
                duration_seconds=duration_seconds,
                subjects=list(subjects),
                bulk_limit=bulk_limit,
                start_at=start_at,
                clock_mode=clock_mode,
            )
        )

    def break_glass(
        self,
        *,
        region: str,
        fields: Sequence[str],
        purpose: str,
        ticket: str,
        duration_seconds: int,
        subjects: Sequence[str] = (),
        bulk_limit: int | None = None,
    ) -> AccessRequestInfo:
        return AccessRequestInfo.from_json(
            self._op(
                "request_access",
                region=region,
                fields=list(fields),
                purpose=purpose,
                ticket=ticket,
                duration_seconds=duration_seconds,
                subjects=list(subjects),
                bulk_limit=bulk_limit,
                break_glass=True,
            )
        )

    def list_access_requests(
        self, *, state: str | None = None, requester: str | None = None, limit: int = 100
    ) -> list[AccessRequestInfo]:
        items = self._op("list_access_requests", state=state, requester=requester, limit=limit)["items"]
        return [AccessRequestInfo.from_json(r) for r in items]

    def get_access_request(self, request_id: str) -> AccessRequestInfo:
        return AccessRequestInfo.from_json(self._op("get_access_request", request_id))

    def submit_approval(self, request_id: str, note: bytes | str) -> AccessRequestInfo:
        """Post a signed approval (or denial) note made with the approver's own key."""
        text = note.decode("utf-8") if isinstance(note, bytes) else note
        return AccessRequestInfo.from_json(self._op("add_approval", request_id, text))

    def submit_review(self, request_id: str, note: bytes | str) -> AccessRequestInfo:
        text = note.decode("utf-8") if isinstance(note, bytes) else note
        return AccessRequestInfo.from_json(self._op("add_review", request_id, text))

    def approve(
        self, request_id: str, signer: Signer, *, decision: str = "approve", approver: str | None = None
    ) -> AccessRequestInfo:
        """Fetch the request, sign the decision locally with ``signer`` (the key never leaves), post it."""
        from rempart.access.approvals import sign_approval

        info = self.get_access_request(request_id)
        note = sign_approval(
            signer,
            info.record.request,
            approver=approver or self.whoami().id,
            decision=ApprovalDecision(decision),
            time=SystemClock().now(),
        )
        return self.submit_approval(request_id, note)

    def review(
        self, request_id: str, signer: Signer, *, verdict: str = "upheld", reviewer: str | None = None
    ) -> AccessRequestInfo:
        """Sign a break-glass review locally and post it."""
        from rempart.access.approvals import sign_review

        info = self.get_access_request(request_id)
        note = sign_review(
            signer,
            info.record.request,
            reviewer=reviewer or self.whoami().id,
            verdict=ReviewVerdict(verdict),
            time=SystemClock().now(),
        )
        return self.submit_review(request_id, note)

    def withdraw(self, request_id: str) -> AccessRequestInfo:
        return AccessRequestInfo.from_json(self._op("withdraw", request_id))

    def revoke(self, request_id: str, *, reason: str) -> AccessRequestInfo:
        return AccessRequestInfo.from_json(self._op("revoke", request_id, reason=reason))

    # egress and releases
    def egress(
        self,
        *,
        region: str,
        collection: str,
        fields: Sequence[str],
        purpose: str,
        destination: str,
        subject_ids: Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
        limit: int = 10_000,
    ) -> EgressResult:
        return EgressResult.from_json(
            self._op(
                "egress",
                region=region,
                collection=collection,
                fields=list(fields),
                purpose=purpose,
                destination=destination,
                subject_ids=None if subject_ids is None else list(subject_ids),
                where=dict(where or {}),
                limit=limit,
            )
        )

    def verify_release(self, digest: str, region: str) -> ReleaseStatus:
        return _release_status(self._op("verify_release", digest, region))

    # the public log
    def inclusion_proof(self, index: int, size: int) -> InclusionProof:
        return InclusionProof.from_json(self._op("inclusion_proof", index, size))

    def consistency_proof(self, old: int, new: int) -> ConsistencyProof:
        return ConsistencyProof.from_json(self._op("consistency_proof", old, new))

    def witnessing(self) -> WitnessingInfo:
        return WitnessingInfo.from_json(self._op("witnessing"))

    def checkpoint(self) -> bytes:
        """The latest signed checkpoint note."""
        return self.log_resource("checkpoint")

    def log_resource(self, path: str) -> bytes:
        """``checkpoint`` or a tile path under ``/log/`` (C2SP tlog-tiles)."""
        raise NotImplementedError

    def health(self) -> dict[str, str]:
        raise NotImplementedError

    def ready(self) -> Readiness:
        raise NotImplementedError


# -- remote ------------------------------------------------------------------------------------


def _p(value: str) -> str:
    return quote(value, safe="")


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


_Route = Callable[..., tuple[str, str, dict[str, Any] | None, Any]]


def _access_route(
    *, break_glass: bool = False, start_at: str | None = None, clock_mode: str = "at_approval", **body: Any
) -> tuple[str, str, dict[str, Any] | None, Any]:
    if break_glass:
        return "POST", "/access/break-glass", None, _drop_none(body)
    return (
        "POST",
        "/access/requests",
        None,
        _drop_none({**body, "start_at": start_at, "clock_mode": clock_mode}),
    )


_ROUTES: dict[str, _Route] = {
    "whoami": lambda: ("GET", "/me", None, None),
    "list_principals": lambda org=None: ("GET", "/principals", _drop_none({"org": org}), None),
    "get_principal": lambda pid: ("GET", f"/principals/{_p(pid)}", None, None),
    "create_principal": lambda values: ("POST", "/principals", None, values),
    "update_principal": lambda pid, changes: ("PATCH", f"/principals/{_p(pid)}", None, changes),
    "delete_principal": lambda pid: ("DELETE", f"/principals/{_p(pid)}", None, None),
    "issue_token": lambda label, for_principal, lifetime_seconds: (
        "POST",
        "/tokens",
        None,
        _drop_none({"label": label, "principal": for_principal, "lifetime_seconds": lifetime_seconds}),
    ),
    "list_tokens": lambda of=None: ("GET", "/tokens", _drop_none({"principal": of}), None),
    "revoke_token": lambda tid: ("DELETE", f"/tokens/{_p(tid)}", None, None),
    "create_subject": lambda sid, region: ("POST", "/subjects", None, {"subject_id": sid, "region": region}),
    "get_subject": lambda sid: ("GET", f"/subjects/{_p(sid)}", None, None),
    "issue_subject_token": lambda sid, lifetime: (
        "POST",
        f"/subjects/{_p(sid)}/report-tokens",
        None,
        {"lifetime_seconds": int(lifetime.total_seconds())},
    ),
    "subject_report_for": lambda sid: ("GET", f"/subjects/{_p(sid)}/access-report", None, None),
    "erase_subject": lambda sid, reason, purpose: (
        "POST",
        f"/subjects/{_p(sid)}/erase",
        None,
        {"reason": reason, "purpose": purpose},
    ),
    "get_record": lambda sid, coll, rid, purpose, fields: (
        "GET",
        f"/subjects/{_p(sid)}/records/{_p(coll)}/{_p(rid)}",
        _drop_none({"purpose": purpose, "fields": fields}),
        None,
    ),
    "list_records": lambda sid, coll, purpose, fields, limit, cursor: (
        "GET",
        f"/subjects/{_p(sid)}/records/{_p(coll)}",
        _drop_none({"purpose": purpose, "fields": fields, "limit": limit, "cursor": cursor}),
        None,
    ),
    "put_record": lambda sid, coll, rid, values, purpose, expected_version, region: (
        "PUT",
        f"/subjects/{_p(sid)}/records/{_p(coll)}/{_p(rid)}",
        {"purpose": purpose},
        _drop_none({"values": values, "expected_version": expected_version, "region": region}),
    ),
    "delete_record": lambda sid, coll, rid, purpose, expected_version: (
        "DELETE",
        f"/subjects/{_p(sid)}/records/{_p(coll)}/{_p(rid)}",
        {"purpose": purpose, "expected_version": expected_version},
        None,
    ),
    "request_access": lambda **kw: _access_route(**kw),
    "list_access_requests": lambda state, requester, limit: (
        "GET",
        "/access/requests",
        _drop_none({"state": state, "requester": requester, "limit": limit}),
        None,
    ),
    "get_access_request": lambda rid: ("GET", f"/access/requests/{_p(rid)}", None, None),
    "add_approval": lambda rid, note: ("POST", f"/access/requests/{_p(rid)}/approvals", None, {"note": note}),
    "add_review": lambda rid, note: ("POST", f"/access/requests/{_p(rid)}/reviews", None, {"note": note}),
    "withdraw": lambda rid: ("POST", f"/access/requests/{_p(rid)}/withdraw", None, None),
    "revoke": lambda rid, reason: ("POST", f"/access/requests/{_p(rid)}/revoke", None, {"reason": reason}),
    "egress": lambda **body: ("POST", "/egress", None, _drop_none(body)),
    "verify_release": lambda digest, region: (
        "GET",
        "/releases/verify",
        {"digest": digest, "region": region},
        None,
    ),
    "inclusion_proof": lambda index, size: (
        "GET",
        "/log/proof/inclusion",
        {"index": index, "size": size},
        None,
    ),
    "consistency_proof": lambda old, new: ("GET", "/log/proof/consistency", {"old": old, "new": new}, None),
    "witnessing": lambda: ("GET", "/log/witnessing", None, None),
}


class Client(_Operations):
    """Rempart over HTTP: ``Client("http://127.0.0.1:8080", token="rpt_…")``; close it (or use ``with``)."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise InvalidInput(f"server URL {base_url!r} must start with http:// or https://")
        headers = {"Accept": "application/json", "User-Agent": "rempart-sdk/1"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            transport=transport,
        )

    def _send(
        self, method: str, path: str, *, query: Mapping[str, Any] | None = None, body: Any = None
    ) -> httpx.Response:
        try:
            response = self._http.request(method, path, params=query, json=body)
        except httpx.TimeoutException as exc:
            raise StorageUnavailable(f"{method} {self.base_url}{path}: timed out ({exc})") from exc
        except httpx.HTTPError as exc:
            raise StorageUnavailable(
                f"{method} {self.base_url}{path}: unreachable ({exc}); is `rempart serve` running?"
            ) from exc
        if response.status_code >= 400:
            raise error_from_problem(response.status_code, response.content)
        return response

    def _op(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        method, path, query, body = _ROUTES[name](*args, **kwargs)
        return self._send(method, path, query=query, body=body).json()

    def log_resource(self, path: str) -> bytes:
        return self._send("GET", f"/log/{path.lstrip('/')}").content

    def health(self) -> dict[str, str]:
        data: dict[str, str] = self._send("GET", "/health").json()
        return data

    def ready(self) -> Readiness:
        try:
            data = self._send("GET", "/ready").json()
        except StorageUnavailable as exc:
            return Readiness(False, dict(exc.details.get("checks", {})))
        return Readiness(bool(data["ready"]), dict(data["checks"]))

    def metrics(self) -> str:
        return self._send("GET", "/metrics").text

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- embedded ----------------------------------------------------------------------------------


def resolve_config(target: Any) -> Any:
    """A :class:`~rempart.config.Config` from a Config, a TOML file, or a data folder.

    A data folder holding ``rempart.toml`` uses that file; any other folder is
    the embedded default (SQLite everywhere, keys created on first run).
    """
    from rempart.config import Config, default_config, load_config

    if isinstance(target, Config):
        return target
    path = Path(target)
    if path.is_file():
        return load_config(path)
    if (path / "rempart.toml").is_file():
        return load_config(path / "rempart.toml")
    if path.exists() and not path.is_dir():
        raise InvalidInput(f"{path} is neither a TOML file nor a data folder")
    return default_config(path)


class Embedded(_Operations):
    """The same operations in-process, acting as one principal (no token: the process is trusted)."""

    _PUBLIC: ClassVar[frozenset[str]] = frozenset({"inclusion_proof", "consistency_proof", "witnessing"})

    def __init__(self, deployment: Any, principal: str | None = None, *, owns: bool = False) -> None:
        from rempart.api.operations import Operations

        self.deployment = deployment
        self.principal_id = principal
        self._owns = owns
        self._ops = Operations(deployment)

    def acting_as(self, principal: str) -> Embedded:
        """Another view of the same open deployment, acting as ``principal`` (closing it closes nothing)."""
        return Embedded(self.deployment, principal)

    def _principal(self) -> Any:
        if self.principal_id is None:
            raise Unauthenticated("no principal: open with rempart.open(…, principal='operator:…')")
        principal = self.deployment.principals.find(self.principal_id)
        if principal is None:
            raise Unauthenticated(f"no principal {self.principal_id!r} in this deployment")
        if principal.disabled:
            raise Unauthenticated(f"principal {principal.id} is disabled")
        return principal

    def _op(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        call = getattr(self._ops, name)
        if name in self._PUBLIC:
            return call(*args, **kwargs)
        return call(self._principal(), *args, **kwargs)

    def log_resource(self, path: str) -> bytes:
        body: bytes = self.deployment.read_path.get(path.lstrip("/")).body
        return body

    def health(self) -> dict[str, str]:
        return {"status": "ok"}

    def ready(self) -> Readiness:
        report = self._ops.readiness()
        return Readiness(bool(report["ready"]), dict(report["checks"]))

    def close(self) -> None:
        if self._owns:
            self.deployment.close()

    def __enter__(self) -> Embedded:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def my_access_report(base_url: str, subject_token: str, *, timeout: float = 30.0) -> dict[str, Any]:
    """For a data subject: fetch your own access report with the ``rps_…`` token support gave you.

    Check each line's proof offline with :func:`rempart.tlog.proof_file.verify_proof_file`
    (or any C2SP tlog-proof tool) and the log's public key.
    """
    with httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout) as http:
        try:
            response = http.get("/me/access-report", headers={"Authorization": f"Bearer {subject_token}"})
        except httpx.HTTPError as exc:
            raise StorageUnavailable(f"GET {base_url}/me/access-report: unreachable ({exc})") from exc
    if response.status_code >= 400:
        raise error_from_problem(response.status_code, response.content)
    report: dict[str, Any] = response.json()
    return report


def open(target: Any, principal: str | None = None) -> Embedded:
    """Open a deployment in-process (a Config, a TOML file, or a data folder) acting as ``principal``."""
    from rempart.deployment import Deployment

    deployment = Deployment.open(resolve_config(target))
    return Embedded(deployment, principal, owns=True)
