"""The subject directory: which region is each subject's home. Lives in the control database.

It holds subject ids, home regions and creation times: no personal data. The
directory row is the claim on a subject id (its primary key makes creation
race-free) and the one place routing reads from.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from rempart.clock import format_time
from rempart.db import Database
from rempart.errors import Conflict, NotFound
from rempart.store._sql import chunks, in_clause, insert_rows

__all__ = ["SCHEMA", "SubjectDirectory", "SubjectEntry"]

SCHEMA: list[tuple[str, str]] = [
    (
        "store-directory-0001",
        """
        CREATE TABLE store_subjects (
            subject_id TEXT PRIMARY KEY,
            home_region TEXT NOT NULL,
            created_at TEXT NOT NULL,
            relocating_to TEXT
        );
        CREATE INDEX store_subjects_by_region ON store_subjects (home_region, subject_id)
        """,
    )
]


@dataclass(frozen=True, slots=True)
class SubjectEntry:
    subject_id: str
    home_region: str
    created_at: str
    relocating_to: str | None = None


class SubjectDirectory:
    """subject id → home region, in the control database."""

    def __init__(self, database: Database) -> None:
        self.db = database
        database.migrate(SCHEMA)

    def find(self, subject_id: str) -> SubjectEntry | None:
        row = self.db.query_one(
            "SELECT home_region, created_at, relocating_to FROM store_subjects WHERE subject_id = ?",
            (subject_id,),
        )
        return None if row is None else SubjectEntry(subject_id, row[0], row[1], row[2])

    def get(self, subject_id: str) -> SubjectEntry:
        entry = self.find(subject_id)
        if entry is None:
            raise NotFound("no such subject in the directory", subject=True)
        return entry

    def add(self, subject_id: str, region: str, created_at: datetime) -> SubjectEntry:
        """Claim a subject id for a home region; Conflict if the id is taken."""
        when = format_time(created_at)
        with self.db.transaction() as tx:
            cur = tx.execute(
                "INSERT INTO store_subjects (subject_id, home_region, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (subject_id) DO NOTHING",
                (subject_id, region, when),
            )
            if cur.rowcount != 1:
                raise Conflict("a subject with this id already exists")
        return SubjectEntry(subject_id, region, when)

    def begin_move(self, subject_id: str, from_region: str, to_region: str) -> None:
        """Mark a relocation in progress (writes are refused meanwhile); Conflict if the home changed."""
        with self.db.transaction() as tx:
            cur = tx.execute(
                "UPDATE store_subjects SET relocating_to = ? WHERE subject_id = ? AND home_region = ? "
                "AND (relocating_to IS NULL OR relocating_to = ?)",
                (to_region, subject_id, from_region, to_region),
            )
            if cur.rowcount != 1:
                raise Conflict("the subject's home changed, or another relocation is in progress")

    def cancel_move(self, subject_id: str) -> None:
        with self.db.transaction() as tx:
            tx.execute("UPDATE store_subjects SET relocating_to = NULL WHERE subject_id = ?", (subject_id,))

    def finish_move(self, subject_id: str, from_region: str, to_region: str) -> None:
        """Switch the home region: from here on, the subject is routed to ``to_region``."""
        with self.db.transaction() as tx:
            cur = tx.execute(
                "UPDATE store_subjects SET home_region = ?, relocating_to = NULL "
                "WHERE subject_id = ? AND home_region = ? AND relocating_to = ?",
                (to_region, subject_id, from_region, to_region),
            )
            if cur.rowcount != 1:
                raise Conflict("the subject's relocation was cancelled or changed meanwhile")

    def homes(self, subject_ids: Collection[str]) -> dict[str, str]:
        """subject id → home region for those of the ids the directory knows (one query per 500)."""
        out: dict[str, str] = {}
        for ids in chunks(subject_ids):
            clause, params = in_clause(self.db.dialect, "subject_id", ids)
            sql = f"SELECT subject_id, home_region FROM store_subjects WHERE {clause}"
            out.update(self.db.query_all(sql, params))
        return out

    def claim(self, entries: Mapping[str, str], created_at: datetime) -> int:
        """Claim subject ids for their home regions in one transaction; returns how many were new.

        Idempotent: an id already claimed for the same region is left as it is;
        an id whose home is another region raises Conflict and nothing is claimed.
        """
        when = format_time(created_at)
        rows = [(s, r, when) for s, r in sorted(entries.items())]
        if not rows:
            return 0
        with self.db.transaction() as tx:
            added = insert_rows(
                tx,
                self.db.dialect,
                "store_subjects",
                [("subject_id", "text"), ("home_region", "text"), ("created_at", "text")],
                rows,
                on_conflict="ON CONFLICT (subject_id) DO NOTHING",
            )
            if added != len(rows):
                homes = self.homes(entries)
                clash = sorted(s for s, r in entries.items() if homes.get(s, r) != r)
                if clash:
                    raise Conflict(
                        f"{len(clash)} of these subjects already have another home region",
                        subjects=len(clash),
                    )
        return added

    def remove_many(self, subject_ids: Collection[str]) -> None:
        """Give back claimed ids (a bulk creation whose keys could not be stored)."""
        with self.db.transaction() as tx:
            tx.executemany("DELETE FROM store_subjects WHERE subject_id = ?", [(s,) for s in subject_ids])

    def remove(self, subject_id: str) -> bool:
        with self.db.transaction() as tx:
            return bool(tx.execute("DELETE FROM store_subjects WHERE subject_id = ?", (subject_id,)).rowcount)

    def in_region(self, region: str, *, after: str = "", limit: int = 1000) -> list[SubjectEntry]:
        rows = self.db.query_all(
            "SELECT subject_id, home_region, created_at, relocating_to FROM store_subjects "
            "WHERE home_region = ? AND subject_id > ? ORDER BY subject_id LIMIT ?",
            (region, after, limit),
        )
        return [SubjectEntry(*r) for r in rows]
