"""The governance room's tables in the control database, as numbered schema steps.

Times are stored as RFC 3339 text (``clock.format_time``), which sorts in time
order; signed documents are stored exactly as signed, so they can be handed
out and re-verified byte for byte.
"""

from __future__ import annotations

from rempart.db import Database

__all__ = ["GOVERNANCE_SCHEMA", "migrate"]

GOVERNANCE_SCHEMA: list[tuple[str, str]] = [
    (
        "governance-0001-trust-roots",
        """
        CREATE TABLE governance_trust_roots (
            version {bigint} PRIMARY KEY,
            signed_note TEXT NOT NULL,
            tuf_signatures TEXT NOT NULL,
            installed TEXT NOT NULL,
            proposal TEXT
        )
        """,
    ),
    (
        "governance-0002-proposals",
        """
        CREATE TABLE governance_proposals (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            text TEXT NOT NULL,
            drafted_by TEXT NOT NULL,
            drafted TEXT NOT NULL,
            expires TEXT NOT NULL,
            status TEXT NOT NULL,
            closed TEXT,
            result TEXT
        );
        CREATE TABLE governance_proposal_signatures (
            proposal TEXT NOT NULL REFERENCES governance_proposals (id),
            member TEXT NOT NULL,
            signature_line TEXT NOT NULL,
            signed TEXT NOT NULL,
            PRIMARY KEY (proposal, member)
        )
        """,
    ),
    (
        "governance-0003-releases",
        """
        CREATE TABLE governance_releases (
            id TEXT PRIMARY KEY,
            region TEXT NOT NULL,
            digest TEXT NOT NULL,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            length {bigint} NOT NULL,
            submission TEXT NOT NULL,
            submitter TEXT NOT NULL,
            submitted TEXT NOT NULL,
            approved TEXT,
            revoked TEXT,
            revocation TEXT,
            UNIQUE (region, digest)
        );
        CREATE TABLE governance_release_reviews (
            release TEXT NOT NULL REFERENCES governance_releases (id),
            reviewer TEXT NOT NULL,
            signature_line TEXT NOT NULL,
            signed TEXT NOT NULL,
            PRIMARY KEY (release, reviewer)
        )
        """,
    ),
    (
        "governance-0004-egress-exceptions",
        """
        CREATE TABLE governance_egress_exceptions (
            id TEXT PRIMARY KEY,
            proposal TEXT NOT NULL,
            region TEXT NOT NULL,
            fields TEXT NOT NULL,
            purpose TEXT NOT NULL,
            destination TEXT NOT NULL,
            not_before TEXT NOT NULL,
            not_after TEXT NOT NULL
        )
        """,
    ),
]


def migrate(db: Database) -> None:
    """Create or update the governance tables (idempotent)."""
    db.migrate(GOVERNANCE_SCHEMA)
