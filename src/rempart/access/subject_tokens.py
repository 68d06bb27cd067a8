"""Tokens scoped to one data subject: "who accessed my data", without an account.

The operator's support flow issues one to a data subject (a data-subject
request): it reads ``rps_<id>_<secret>`` and lets its holder fetch that
subject's access report, nothing else. Like principal tokens it is shown
once, kept as a SHA-256, compared in constant time, expires and can be
revoked. Issuing one is recorded (``access.subject_token.issued``), with the
subject as its keyed commitment, before the token is handed out.

>>> parse_subject_token("rps_0123456789abcdef_" + "A" * 43)[0]
'0123456789abcdef'
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from rempart.access.tokens import _hash
from rempart.clock import format_time, parse_time
from rempart.db import Database
from rempart.errors import InvalidInput, NotFound, Unauthenticated
from rempart.events import Event, EventRecorder

__all__ = [
    "SUBJECT_TOKEN_PREFIX",
    "IssuedSubjectToken",
    "SubjectTokenStore",
    "parse_subject_token",
]

SUBJECT_TOKEN_PREFIX: Final = "rps_"  # noqa: S105 - a prefix, not a secret
_TOKEN = re.compile(r"rps_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")

SCHEMA_STEPS = [
    (
        "access-0010-subject-tokens",
        """
        CREATE TABLE access_subject_tokens (
            id TEXT PRIMARY KEY,
            subject_id TEXT NOT NULL,
            secret_sha256 TEXT NOT NULL,
            issued_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            revoked_at TEXT
        );
        CREATE INDEX access_subject_tokens_subject ON access_subject_tokens (subject_id)
        """,
    ),
]


def parse_subject_token(token: str) -> tuple[str, str]:
    """Split ``rps_<id>_<secret>``; Unauthenticated if it is not one."""
    match = _TOKEN.fullmatch(token) if isinstance(token, str) else None
    if match is None:
        raise Unauthenticated(
            "the subject token is malformed: expected rps_<16 hex digits>_<43-character secret>"
        )
    return match.group(1), match.group(2)


@dataclass(frozen=True, slots=True)
class IssuedSubjectToken:
    """A fresh subject token: ``token`` is shown this once and never stored."""

    id: str
    subject_id: str
    expires_at: datetime
    token: str

    def __repr__(self) -> str:
        return f"IssuedSubjectToken(id={self.id!r}, expires_at={self.expires_at.isoformat()})"


class SubjectTokenStore:
    def __init__(self, database: Database, *, recorder: EventRecorder) -> None:
        self.db = database
        self.recorder = recorder
        database.migrate(SCHEMA_STEPS)

    def issue(
        self,
        subject_id: str,
        *,
        commitment: str,
        issued_by: str,
        now: datetime,
        expires_at: datetime,
    ) -> IssuedSubjectToken:
        """A token for ``subject_id``'s report; recorded first (fail closed)."""
        if expires_at <= now:
            raise InvalidInput("a subject token must expire after it is issued")
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        self.recorder.record(
            Event(
                "access.subject_token.issued",
                now,
                {
                    "token": token_id,
                    "subject": commitment,
                    "issued_by": issued_by,
                    "expires_at": format_time(expires_at),
                },
            )
        )
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO access_subject_tokens "
                "(id, subject_id, secret_sha256, issued_by, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (token_id, subject_id, _hash(secret), issued_by, format_time(now), format_time(expires_at)),
            )
        token = f"{SUBJECT_TOKEN_PREFIX}{token_id}_{secret}"
        return IssuedSubjectToken(token_id, subject_id, expires_at, token)

    def authenticate(self, token: str, now: datetime) -> str:
        """The subject id a token stands for, or Unauthenticated with the reason."""
        token_id, secret = parse_subject_token(token)
        row = self.db.query_one(
            "SELECT subject_id, secret_sha256, expires_at, revoked_at "
            "FROM access_subject_tokens WHERE id = ?",
            (token_id,),
        )
        if row is None or not hmac.compare_digest(str(row[1]), _hash(secret)):
            raise Unauthenticated("unknown subject token")
        if row[3] is not None:
            raise Unauthenticated("this subject token was revoked")
        if parse_time(str(row[2])) <= now:
            raise Unauthenticated("this subject token has expired; ask support for a new one")
        return str(row[0])

    def revoke(self, token_id: str, *, by: str, now: datetime) -> None:
        """Stop a subject token working; recorded (``access.subject_token.revoked``) first."""
        if not isinstance(token_id, str) or not re.fullmatch(r"[0-9a-f]{16}", token_id):
            raise InvalidInput(f"a subject token id is 16 hex digits, got {str(token_id)[:40]!r}")
        with self.db.transaction() as tx:
            row = tx.execute(
                "SELECT revoked_at FROM access_subject_tokens WHERE id = ?", (token_id,)
            ).fetchone()
            if row is None or row[0] is not None:
                raise NotFound(f"no live subject token {token_id!r}")
            self.recorder.record(
                Event("access.subject_token.revoked", now, {"token": token_id, "revoked_by": by})
            )
            tx.execute(
                "UPDATE access_subject_tokens SET revoked_at = ? WHERE id = ?",
                (format_time(now), token_id),
            )
