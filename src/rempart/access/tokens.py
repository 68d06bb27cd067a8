"""Bearer tokens for the HTTP API: shown once, stored as a hash, refused when stale.

A token reads ``rpt_<id>_<secret>``: ``id`` (16 hex digits) names the row, so
a leaked token can be found and revoked from its prefix; ``secret`` (32
random bytes, base64url) is kept only as its SHA-256. Authentication looks the
row up by id and compares hashes in constant time (:func:`hmac.compare_digest`);
unknown, mistyped, expired and revoked tokens and disabled principals are
refused with :class:`~rempart.errors.Unauthenticated` and the reason.

>>> parse_token("rpt_0123456789abcdef_" + "A" * 43)
('0123456789abcdef', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from rempart.access.principals import Principal, check_principal_id
from rempart.access.principals import _from_row as _principal_from_row
from rempart.clock import Clock, format_time, parse_time
from rempart.db import Database
from rempart.errors import InvalidInput, NotFound, Unauthenticated
from rempart.events import Event, EventRecorder

__all__ = ["TOKEN_PREFIX", "IssuedToken", "TokenInfo", "TokenStore", "parse_token"]

TOKEN_PREFIX: Final = "rpt_"  # noqa: S105 - a prefix, not a secret
_TOKEN = re.compile(r"rpt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_MAX_LABEL = 100

SCHEMA_STEPS = [
    (
        "access-0002-tokens",
        """
        CREATE TABLE access_tokens (
            id TEXT PRIMARY KEY,
            principal_id TEXT NOT NULL REFERENCES access_principals (id),
            secret_sha256 TEXT NOT NULL,
            label TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            revoked_at TEXT
        );
        CREATE INDEX access_tokens_principal ON access_tokens (principal_id)
        """,
    ),
]


def parse_token(token: str) -> tuple[str, str]:
    """Split ``rpt_<id>_<secret>`` into (id, secret); Unauthenticated if it is not one."""
    if not isinstance(token, str):
        raise Unauthenticated("the token is not a string")
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise Unauthenticated("the token is malformed: expected rpt_<16 hex digits>_<43-character secret>")
    return match.group(1), match.group(2)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly issued token: ``token`` is the secret, shown this once and never stored."""

    id: str
    principal_id: str
    label: str
    expires_at: datetime
    token: str

    def __repr__(self) -> str:
        return f"IssuedToken(id={self.id!r}, principal_id={self.principal_id!r}, label={self.label!r})"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What is known about a token, without its secret."""

    id: str
    principal_id: str
    label: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


def _check_label(label: object) -> str:
    if not isinstance(label, str) or not label.strip():
        raise InvalidInput("a token label must be a non-empty string (what the token is for)")
    if len(label) > _MAX_LABEL:
        raise InvalidInput(f"a token label is at most {_MAX_LABEL} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in label):
        raise InvalidInput("a token label may not contain control characters")
    return label


class TokenStore:
    """Issue, authenticate, list and revoke API tokens (``access_tokens`` in the control database)."""

    def __init__(self, database: Database, *, recorder: EventRecorder, clock: Clock) -> None:
        self.db = database
        self.recorder = recorder
        self.clock = clock
        database.migrate(SCHEMA_STEPS)

    def issue(self, principal_id: str, *, expires_at: datetime, label: str) -> IssuedToken:
        """Issue a token for an enabled principal; records ``access.token.issued`` (no secret)."""
        check_principal_id(principal_id)
        _check_label(label)
        now = self.clock.now()
        if not isinstance(expires_at, datetime) or expires_at.tzinfo is None:
            raise InvalidInput("expires_at must be a timezone-aware time")
        if expires_at <= now:
            raise InvalidInput(
                f"expires_at {format_time(expires_at)} is not in the future (now {format_time(now)})"
            )
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        with self.db.transaction() as tx:
            row = tx.execute(
                "SELECT disabled FROM access_principals WHERE id = ?", (principal_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no principal {principal_id!r}", principal=principal_id)
            if row[0]:
                raise InvalidInput(f"principal {principal_id} is disabled; enable it before issuing a token")
            tx.execute(
                "INSERT INTO access_tokens (id, principal_id, secret_sha256, label, created_at, "
                "expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (token_id, principal_id, _hash(secret), label, format_time(now), format_time(expires_at)),
            )
            self.recorder.record(
                Event(
                    "access.token.issued",
                    now,
                    {
                        "token_id": token_id,
                        "principal": principal_id,
                        "label": label,
                        "expires_at": format_time(expires_at),
                    },
                )
            )
        return IssuedToken(token_id, principal_id, label, expires_at, f"{TOKEN_PREFIX}{token_id}_{secret}")

    def authenticate(self, token: str, now: datetime) -> Principal:
        """The principal a token stands for, or Unauthenticated with the reason."""
        token_id, secret = parse_token(token)
        row = self.db.query_one(
            "SELECT t.secret_sha256, t.expires_at, t.revoked_at, p.id, p.display_name, p.org, "
            "p.location, p.screening, p.roles, p.purposes, p.vkey, p.disabled "
            "FROM access_tokens t JOIN access_principals p ON p.id = t.principal_id WHERE t.id = ?",
            (token_id,),
        )
        presented = _hash(secret)
        # Compare even when the id is unknown, so both failures take the same time.
        stored = str(row[0]) if row is not None else "0" * 64
        if not hmac.compare_digest(presented, stored) or row is None:
            raise Unauthenticated("the token is not recognised")
        expires_at, revoked_at = str(row[1]), row[2]
        if revoked_at is not None:
            raise Unauthenticated(f"the token was revoked at {revoked_at}")
        if now >= parse_time(expires_at):
            raise Unauthenticated(f"the token expired at {expires_at}")
        principal = _principal_from_row(tuple(row[3:]))
        if principal.disabled:
            raise Unauthenticated(f"principal {principal.id} is disabled")
        return principal

    def revoke(self, token_id: str, *, actor: str = "system") -> TokenInfo:
        """Revoke a token at once; revoking it again changes nothing; NotFound if unknown."""
        if not isinstance(token_id, str) or not re.fullmatch(r"[0-9a-f]{16}", token_id):
            raise InvalidInput(f"token id {token_id!r} is not 16 hex digits (the part after rpt_)")
        now = self.clock.now()
        with self.db.transaction() as tx:
            cursor = tx.execute(
                "UPDATE access_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (format_time(now), token_id),
            )
            row = tx.execute(
                "SELECT id, principal_id, label, created_at, expires_at, revoked_at "
                "FROM access_tokens WHERE id = ?",
                (token_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"no token {token_id}", token=token_id)
            info = _info(row)
            if cursor.rowcount == 0:
                return info  # already revoked: nothing changes, nothing to record
            self.recorder.record(
                Event(
                    "access.token.revoked",
                    now,
                    {"token_id": token_id, "principal": info.principal_id, "actor": actor},
                )
            )
        return info

    def list(self, principal_id: str) -> builtins.list[TokenInfo]:
        """The principal's tokens, newest first, without secrets."""
        rows = self.db.query_all(
            "SELECT id, principal_id, label, created_at, expires_at, revoked_at FROM access_tokens "
            "WHERE principal_id = ? ORDER BY created_at DESC, id",
            (principal_id,),
        )
        return [_info(r) for r in rows]


def _info(row: tuple[Any, ...]) -> TokenInfo:
    ident, principal, label, created, expires, revoked = row
    return TokenInfo(
        str(ident),
        str(principal),
        str(label),
        parse_time(str(created)),
        parse_time(str(expires)),
        None if revoked is None else parse_time(str(revoked)),
    )
