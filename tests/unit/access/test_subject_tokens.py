"""Subject-scoped tokens: shown once, stored hashed, expiring, revocable, every change on the record."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rempart.access.subject_tokens import SubjectTokenStore
from rempart.db import Database
from rempart.errors import InvalidInput, NotFound, Unauthenticated
from rempart.events import Event, LogRecorder
from rempart.log.memory import MemoryLogStorage
from rempart.log.sequencer import TransparencyLog

NOW = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
COMMITMENT = "c" * 64


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[SubjectTokenStore, TransparencyLog, Database]]:
    log = TransparencyLog(storage=MemoryLogStorage(), origin="t/log", sign=lambda cp: b"")
    db = Database.open(f"sqlite:///{tmp_path / 'control.db'}")
    yield SubjectTokenStore(db, recorder=LogRecorder(log)), log, db
    log.close()
    db.close()


def events(log: TransparencyLog) -> list[Event]:
    return [Event.decode(e) for e in log.storage.read_entries(0, log.size)]


def test_issue_authenticate_expire_revoke(world: tuple[SubjectTokenStore, TransparencyLog, Database]) -> None:
    tokens, log, db = world
    issued = tokens.issue(
        "u1", commitment=COMMITMENT, issued_by="operator:alice", now=NOW, expires_at=NOW + timedelta(hours=1)
    )
    assert issued.token.startswith(f"rps_{issued.id}_")
    assert issued.token not in repr(issued)
    stored = db.query_one("SELECT secret_sha256 FROM access_subject_tokens WHERE id = ?", (issued.id,))
    assert stored is not None and issued.token.split("_", 2)[2] not in str(stored[0])
    assert tokens.authenticate(issued.token, NOW) == "u1"
    with pytest.raises(Unauthenticated, match="has expired"):
        tokens.authenticate(issued.token, NOW + timedelta(hours=1))
    with pytest.raises(Unauthenticated, match="unknown subject token"):
        tokens.authenticate(issued.token[:-1] + ("A" if issued.token[-1] != "A" else "B"), NOW)
    with pytest.raises(InvalidInput, match="16 hex digits"):
        tokens.revoke("nope", by="operator:alice", now=NOW)
    tokens.revoke(issued.id, by="operator:alice", now=NOW)
    with pytest.raises(Unauthenticated, match="was revoked"):
        tokens.authenticate(issued.token, NOW)
    with pytest.raises(NotFound, match="no live subject token"):
        tokens.revoke(issued.id, by="operator:alice", now=NOW)
    kinds = [(e.type, e.body.get("subject"), e.body.get("revoked_by")) for e in events(log)]
    assert kinds == [
        ("access.subject_token.issued", COMMITMENT, None),
        ("access.subject_token.revoked", None, "operator:alice"),
    ]


def test_a_token_that_expires_before_it_is_issued_is_refused(
    world: tuple[SubjectTokenStore, TransparencyLog, Database],
) -> None:
    tokens, log, _ = world
    with pytest.raises(InvalidInput, match="must expire after"):
        tokens.issue("u1", commitment=COMMITMENT, issued_by="operator:alice", now=NOW, expires_at=NOW)
    assert log.size == 0
